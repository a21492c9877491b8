"""Isolated-margin arithmetic of a linear (USDT/USDC-margined) perpetual. Pure, Decimal.

Conventions: `side` is +1 for a long and -1 for a short; `quantity` is the absolute
position size in base units; prices are quote per base; money is quote units.

- initial margin = quantity x entry / leverage (the isolated wallet balance `WB`);
- maintenance margin (MM) = notional x MMR - cum, of the notional's tier (`tiers`);
- margin balance = WB + unrealized PnL, unrealized PnL = side x quantity x (mark - entry);
- margin ratio = MM / margin balance: the position is liquidated when it reaches 1,
  i.e. when the margin balance falls to the maintenance margin;
- liquidation price, Binance USDⓈ-M (one-way mode, isolated: TMM = UPNL = 0)::

      LP = (WB + cum - side x quantity x entry) / (quantity x MMR - side x quantity)

  which is the mark at which margin balance == maintenance margin. MMR and cum are those
  of the tier the notional *at the liquidation price* falls in: the tier of the entry
  notional is tried first and, as the exchange's notes say, the price is recomputed with
  the tier it lands in. MM is continuous in the notional, so exactly one tier's solution
  lies in its own range;
- funding: payment = side x quantity x mark x rate is paid by the position (a positive
  rate: longs pay shorts). `funding_received` returns what the position receives.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from enum import IntEnum

from module_runtime.futures.tiers import Tier, TierTable
from module_runtime.positions import ACCOUNTING_CONTEXT

ZERO = Decimal(0)
ONE = Decimal(1)


class Direction(IntEnum):
    LONG = 1
    SHORT = -1


def initial_margin(quantity: Decimal, price: Decimal, leverage: Decimal) -> Decimal:
    if leverage < 1:
        raise ValueError(f"leverage must be >= 1, got {leverage}")
    with localcontext(ACCOUNTING_CONTEXT):
        return abs(quantity) * price / leverage


def unrealized_pnl(side: Direction, quantity: Decimal, entry: Decimal, mark: Decimal) -> Decimal:
    with localcontext(ACCOUNTING_CONTEXT):
        return int(side) * quantity * (mark - entry)


def margin_balance(
    side: Direction, quantity: Decimal, entry: Decimal, wallet: Decimal, mark: Decimal
) -> Decimal:
    with localcontext(ACCOUNTING_CONTEXT):
        return wallet + unrealized_pnl(side, quantity, entry, mark)


def maintenance_margin(quantity: Decimal, mark: Decimal, tiers: TierTable) -> Decimal:
    with localcontext(ACCOUNTING_CONTEXT):
        return tiers.maintenance_margin(quantity * mark)


def margin_ratio(
    side: Direction,
    quantity: Decimal,
    entry: Decimal,
    wallet: Decimal,
    mark: Decimal,
    tiers: TierTable,
) -> Decimal:
    """MM / margin balance; >= 1 means liquidation (infinite once the balance is gone)."""
    balance = margin_balance(side, quantity, entry, wallet, mark)
    mm = maintenance_margin(quantity, mark, tiers)
    if balance <= 0:
        return Decimal("Infinity")
    with localcontext(ACCOUNTING_CONTEXT):
        return mm / balance


def _lp_with(
    side: Direction, quantity: Decimal, entry: Decimal, wallet: Decimal, tier: Tier
) -> Decimal:
    s = int(side)
    return (wallet + tier.cum - s * quantity * entry) / (quantity * tier.mmr - s * quantity)


def liquidation_price(
    side: Direction, quantity: Decimal, entry: Decimal, wallet: Decimal, tiers: TierTable
) -> Decimal:
    """The mark at which the isolated position is liquidated (0 if none: a long whose
    margin covers a fall to zero)."""
    if quantity <= 0 or entry <= 0:
        raise ValueError("quantity and entry must be > 0")
    with localcontext(ACCOUNTING_CONTEXT):
        first = tiers.for_notional(quantity * entry)
        candidates = [first, *(t for t in tiers.tiers if t is not first)]
        for tier in candidates:
            price = _lp_with(side, quantity, entry, wallet, tier)
            if price <= 0:
                if side is Direction.LONG:
                    return ZERO
                continue
            if tier.floor <= quantity * price < tier.cap:
                return price
        # beyond the last tier's cap (a short with an enormous margin): the last tier
        return max(ZERO, _lp_with(side, quantity, entry, wallet, tiers.tiers[-1]))


def liquidated(side: Direction, mark: Decimal, liquidation: Decimal) -> bool:
    """Whether `mark` has reached the liquidation price (at or beyond it)."""
    if side is Direction.LONG:
        return mark <= liquidation
    return mark >= liquidation


def funding_received(side: Direction, quantity: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """What the position receives at a funding time (negative: it pays)."""
    with localcontext(ACCOUNTING_CONTEXT):
        return -int(side) * quantity * mark * rate
