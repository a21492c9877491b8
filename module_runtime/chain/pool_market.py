"""`PoolMarket`: a module's view of its venues; implements `MarketData`.

Which price. `PoolMarket.price(base, quote)` is the pool's *mid price* (`PoolState.mid`).
Modules mark positions and compare bands against it. What an order actually gets is the exact
quote (`PoolState.swap_out`), fee and impact included, which modules use for `min_out`. With
several venues trading one pair, `price()` answers from the first venue listed (arbitrage:
pool A); `state(name)` reads a named one. A venue's LP token ("WETH-USDC-LP") has a price
too (`PoolState.lp_price`).

The token amounts each liquidity order moved are kept per order in `PoolMarket.receipts`
(`LiquidityReceipt`), for modules that account fees and impermanent loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from web3 import AsyncWeb3

from ..market_data import MarketDataUnavailable
from ..orders import Order
from .pool_state import PoolState
from .rpc import disconnect
from .units import ratio
from .venues import PoolVenue


@dataclass(frozen=True, slots=True)
class LiquidityReceipt:
    """Token amounts (units) one liquidity order moved, and the snapshot it was priced at."""

    order_id: str
    venue: str
    added: bool
    base_amount: int  # deposited (add) or paid out (remove)
    quote_amount: int
    liquidity: int  # LP units minted (add) or burned (remove)
    state: PoolState = field(repr=False)
    tx_hash: str | None = None

    @property
    def value(self) -> Decimal:
        """The tokens' value in quote at the snapshot's mid price."""
        return self.state.value(self.base_amount, self.quote_amount)


class PoolMarket:
    """`MarketData` from pools (mid prices; see the module docstring), plus the snapshots,
    routing and liquidity receipts that modules and brokers share."""

    def __init__(
        self, venues: Sequence[PoolVenue], *, connection: AsyncWeb3[Any] | None = None
    ) -> None:
        if not venues:
            raise ValueError("a PoolMarket needs at least one venue")
        self.venues: dict[str, PoolVenue] = {}
        for venue in venues:
            if venue.name in self.venues:
                raise ValueError(f"two venues named {venue.name!r}")
            self.venues[venue.name] = venue
        self.w3 = connection
        self.receipts: dict[str, LiquidityReceipt] = {}
        self._last: dict[str, PoolState] = {}

    def __repr__(self) -> str:
        return f"PoolMarket({list(self.venues.values())!r})"

    def venue(self, name: str) -> PoolVenue:
        try:
            return self.venues[name]
        except KeyError:
            raise LookupError(f"no venue {name!r} (known: {', '.join(self.venues)})") from None

    async def state(self, name: str) -> PoolState:
        """A fresh snapshot of venue `name` (also kept as its `last_state`)."""
        state = await self.venue(name).state()
        self._last[name] = state
        return state

    def last_state(self, name: str) -> PoolState | None:
        """The snapshot `state()` or `price()` read last for venue `name`."""
        return self._last.get(name)

    async def price(self, base: str, quote: str) -> Decimal:
        """Mid price of `base` in `quote` at the first venue trading the pair (either way
        round), or the value of a venue's LP token."""
        pair = (base.upper(), quote.upper())
        for name, venue in self.venues.items():
            config = venue.config
            tokens = (config.base.upper(), config.quote.upper())
            if pair == tokens:
                return (await self.state(name)).mid
            if pair == tokens[::-1]:
                return ratio(Decimal(1), (await self.state(name)).mid)
            if base == config.lp_symbol and pair[1] == tokens[1]:
                return (await self.state(name)).lp_price
        raise MarketDataUnavailable(f"no venue trades {base}/{quote}")

    def route(self, order: Order) -> tuple[PoolVenue, bool]:
        """(venue, is a liquidity order) for `order`: the venue it names, else the only
        venue that trades its pair (several: the order must name one)."""
        named = self.venues.get(order.venue)
        candidates = [named] if named is not None else list(self.venues.values())
        found: list[tuple[PoolVenue, bool]] = []
        for venue in candidates:
            config = venue.config
            if order.quote.upper() != config.quote.upper():
                continue
            if order.base.upper() == config.base.upper():
                found.append((venue, False))
            elif order.base == config.lp_symbol:
                found.append((venue, True))
        where = f" at venue {order.venue!r}" if named is not None else ""
        if not found:
            raise LookupError(f"no venue trades {order.base}/{order.quote}{where}")
        if len(found) > 1:
            names = ", ".join(v.name for v, _ in found)
            raise LookupError(
                f"{len(found)} venues trade {order.base}/{order.quote} ({names}): "
                "the order must name one"
            )
        return found[0]

    async def close(self) -> None:
        """Close the node connection, if this market owns one."""
        if self.w3 is not None:
            await disconnect(self.w3)
