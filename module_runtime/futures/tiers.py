"""Notional tiers ("leverage brackets"): what an exchange requires of a position by size.

Each tier covers position notionals in `[floor, cap)` and sets the highest leverage
allowed there and the maintenance margin rate (MMR). The maintenance amount (`cum`)
makes the maintenance margin `notional x MMR - cum` continuous across tiers; the
exchange publishes it, and it follows from the table itself:

    cum[0] = 0,   cum[n] = cum[n-1] + floor[n] x (MMR[n] - MMR[n-1])

`TierTable` checks that the published amounts agree with that recurrence, so a typo in a
table cannot silently shift every liquidation price.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from module_runtime.positions import ACCOUNTING_CONTEXT

ZERO = Decimal(0)
D = Decimal


@dataclass(frozen=True, slots=True)
class Tier:
    floor: Decimal  # notional, quote units, inclusive
    cap: Decimal  # exclusive
    max_leverage: Decimal
    mmr: Decimal  # maintenance margin rate, a fraction (0.004 = 0.4 %)
    cum: Decimal  # maintenance amount, quote units


class TierTable:
    """The tiers of one symbol, ascending and contiguous from a floor of 0."""

    def __init__(self, symbol: str, tiers: Sequence[Tier]) -> None:
        if not tiers:
            raise ValueError(f"{symbol}: a tier table needs at least one tier")
        with localcontext(ACCOUNTING_CONTEXT):
            previous: Tier | None = None
            for tier in tiers:
                if previous is None:
                    if tier.floor != 0 or tier.cum != 0:
                        raise ValueError(f"{symbol}: the first tier starts at 0 with cum 0")
                else:
                    if tier.floor != previous.cap:
                        raise ValueError(f"{symbol}: tiers must be contiguous at {tier.floor}")
                    expected = previous.cum + tier.floor * (tier.mmr - previous.mmr)
                    if tier.cum != expected:
                        raise ValueError(
                            f"{symbol}: maintenance amount {tier.cum} at {tier.floor} "
                            f"should be {expected}"
                        )
                if not (tier.cap > tier.floor and 0 < tier.mmr < 1 and tier.max_leverage >= 1):
                    raise ValueError(f"{symbol}: invalid tier {tier}")
                previous = tier
        self.symbol = symbol
        self.tiers = tuple(tiers)

    @property
    def max_leverage(self) -> Decimal:
        return self.tiers[0].max_leverage

    @property
    def max_notional(self) -> Decimal:
        return self.tiers[-1].cap

    def for_notional(self, notional: Decimal) -> Tier:
        """The tier whose range holds `notional` (abs). Beyond the last cap: ValueError."""
        size = abs(notional)
        for tier in self.tiers:
            if size < tier.cap:
                return tier
        raise ValueError(
            f"{self.symbol}: notional {size} exceeds the largest tier ({self.max_notional})"
        )

    def max_leverage_for(self, notional: Decimal) -> Decimal:
        return self.for_notional(notional).max_leverage

    def maintenance_margin(self, notional: Decimal) -> Decimal:
        """notional x MMR - cum of the notional's tier."""
        tier = self.for_notional(notional)
        with localcontext(ACCOUNTING_CONTEXT):
            return abs(notional) * tier.mmr - tier.cum


def table(symbol: str, rows: Sequence[tuple[str, str, int, str, str]]) -> TierTable:
    """A table from (floor, cap, max leverage, MMR, cum) strings, as exchanges publish it."""
    return TierTable(symbol, [Tier(D(f), D(c), D(lev), D(m), D(cum)) for f, c, lev, m, cum in rows])


# Binance USDⓈ-M BTCUSDT brackets as published (GET /fapi/v1/leverageBracket; the
# "Leverage & Margin" page). Paper runs and the risk checks use these unless the venue
# provides its own. USDC-margined contracts use the same shape of table.
BTC_TIERS = (
    ("0", "50000", 125, "0.004", "0"),
    ("50000", "250000", 100, "0.005", "50"),
    ("250000", "1000000", 50, "0.01", "1300"),
    ("1000000", "10000000", 20, "0.025", "16300"),
    ("10000000", "20000000", 10, "0.05", "266300"),
    ("20000000", "50000000", 5, "0.1", "1266300"),
    ("50000000", "100000000", 4, "0.125", "2516300"),
    ("100000000", "200000000", 3, "0.15", "5016300"),
    ("200000000", "300000000", 2, "0.25", "25016300"),
    ("300000000", "500000000", 1, "0.5", "100016300"),
)
ETH_TIERS = (
    ("0", "10000", 100, "0.005", "0"),
    ("10000", "100000", 75, "0.0065", "15"),
    ("100000", "500000", 50, "0.01", "365"),
    ("500000", "1000000", 25, "0.02", "5365"),
    ("1000000", "2000000", 10, "0.05", "35365"),
    ("2000000", "5000000", 5, "0.1", "135365"),
    ("5000000", "10000000", 4, "0.125", "260365"),
    ("10000000", "20000000", 3, "0.15", "510365"),
    ("20000000", "50000000", 2, "0.25", "2510365"),
    ("50000000", "100000000", 1, "0.5", "15010365"),
)
SOL_TIERS = (
    ("0", "5000", 50, "0.01", "0"),
    ("5000", "25000", 25, "0.025", "75"),
    ("25000", "100000", 20, "0.05", "700"),
    ("100000", "250000", 10, "0.1", "5700"),
    ("250000", "1000000", 5, "0.125", "11950"),
    ("1000000", "3000000", 4, "0.25", "136950"),
    ("3000000", "5000000", 2, "0.5", "886950"),
)
MARGIN_ASSETS = ("USDT", "USDC")


def default_tables() -> Mapping[tuple[str, str], TierTable]:
    """The perpetuals paper mode knows: BTC, ETH and SOL against USDT and USDC."""
    found: dict[tuple[str, str], TierTable] = {}
    for base, rows in (("BTC", BTC_TIERS), ("ETH", ETH_TIERS), ("SOL", SOL_TIERS)):
        for quote in MARGIN_ASSETS:
            found[(base, quote)] = table(f"{base}{quote}", rows)
    return found
