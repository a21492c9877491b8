"""`PaperFuturesBroker`: simulated perpetual fills, funding and liquidations.

- Market orders fill at the mark, moved `slippage_bps` against the order, and pay the
  taker fee on the filled notional (quote units). Unknown pairs and leverage above the
  pair's tier are refused (REVERTED), as the exchange would.
- Funding: at every funding time (multiples of `funding_interval` since the epoch, UTC:
  00:00, 08:00, 16:00 for 8 h) after a position was opened, the position receives
  `-side x quantity x mark x rate`, the rate taken from `funding_rates` (a series, one
  rate per funding time, cycled by the funding time's index). Every funding time since
  the position opened is reported each time; the ledger books each once (its id is the
  pair and the time), so nothing is lost when a write fails. The mark is the one when the
  payment is booked (the tick right after the funding time).
- Liquidation: when the mark reaches the position's liquidation price (isolated margin,
  `module_runtime.futures.margin`), the position is closed there and its margin is lost.

Both come out of `position_events()`, which the order path books as ledger entries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

from module_runtime.clock import Clock
from module_runtime.futures.events import (
    EventKind,
    PositionEvent,
    funding_id,
    liquidation_id,
)
from module_runtime.futures.margin import (
    Direction,
    funding_received,
    liquidated,
    liquidation_price,
)
from module_runtime.futures.tiers import TierTable
from module_runtime.market_data import MarketData
from module_runtime.orders import Fill, Market, Order, OrderStatus, Side
from module_runtime.positions import ACCOUNTING_CONTEXT, Position, PositionKey, PositionSide

log = logging.getLogger(__name__)

BPS = Decimal(10_000)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def direction(position: Position) -> Direction:
    return Direction.LONG if position.side is PositionSide.LONG else Direction.SHORT


def position_liquidation_price(position: Position, tiers: TierTable) -> Decimal:
    """The liquidation price of an open perpetual position (its margin is the wallet)."""
    return liquidation_price(
        direction(position), position.quantity, position.avg_cost, position.margin, tiers
    )


def funding_times(after: datetime, until: datetime, interval: timedelta) -> list[datetime]:
    """Funding times t with after < t <= until."""
    if interval <= timedelta(0):
        raise ValueError("the funding interval must be positive")
    first = (after - EPOCH) // interval + 1
    last = (until - EPOCH) // interval
    return [EPOCH + i * interval for i in range(first, last + 1)]


class FundingSeries:
    """One funding rate per funding time: `rates[index % len(rates)]`."""

    def __init__(self, rates: Sequence[Decimal], interval: timedelta) -> None:
        if not rates:
            raise ValueError("a funding series needs at least one rate")
        if interval <= timedelta(0):
            raise ValueError("the funding interval must be positive")
        self.rates = tuple(rates)
        self.interval = interval

    def rate(self, at: datetime) -> Decimal:
        return self.rates[((at - EPOCH) // self.interval) % len(self.rates)]


class PaperFuturesBroker:
    def __init__(
        self,
        market: MarketData,
        tiers: Mapping[PositionKey, TierTable],
        funding: FundingSeries,
        *,
        clock: Clock,
        taker_fee_bps: Decimal = Decimal(5),
        slippage_bps: Decimal = Decimal(0),
        name: str = "futures-paper",
    ) -> None:
        for label, value in (("taker_fee_bps", taker_fee_bps), ("slippage_bps", slippage_bps)):
            if not isinstance(value, Decimal) or not Decimal(0) <= value < BPS:
                raise ValueError(f"{label} must be a Decimal in [0, 10000), got {value!r}")
        self.name = name
        self._market = market
        self.tiers = dict(tiers)
        self.funding = funding
        self._clock = clock
        self._taker = taker_fee_bps
        self._slippage = slippage_bps
        self.fills: list[Fill] = []

    async def execute(self, order: Order) -> Fill:
        fill = await self._simulate(order)
        self.fills.append(fill)
        return fill

    def _refuse(self, order: Order, reason: str) -> Fill:
        return Fill(order.order_id, OrderStatus.REVERTED, reason=reason, at=self._clock.now())

    async def _simulate(self, order: Order) -> Fill:
        if order.market is not Market.PERP:
            return self._refuse(order, "the futures venue trades perpetuals only")
        tiers = self.tiers.get((order.base, order.quote))
        if tiers is None:
            return self._refuse(order, f"unknown symbol {order.base}{order.quote}")
        if order.quantity <= 0:
            return self._refuse(order, "quantity must be > 0")
        try:
            mark = await self._market.price(order.base, order.quote)
        except Exception as error:
            return Fill(
                order.order_id,
                OrderStatus.DROPPED,
                reason=f"no mark price: {error}",
                at=self._clock.now(),
            )
        with localcontext(ACCOUNTING_CONTEXT):
            move = self._slippage if order.side is Side.BUY else -self._slippage
            price = mark * (BPS + move) / BPS
            notional = order.quantity * price
            if not order.reduces_position and order.leverage > tiers.max_leverage_for(notional):
                return self._refuse(
                    order, f"leverage {order.leverage} above the tier maximum for {notional}"
                )
            fee = notional * self._taker / BPS
        return Fill(
            order.order_id, OrderStatus.FILLED, order.quantity, price, fee, at=self._clock.now()
        )

    async def position_events(self, positions: list[Position]) -> list[PositionEvent]:
        now = self._clock.now()
        events: list[PositionEvent] = []
        for position in positions:
            if not position.is_perp:
                continue
            key = position.key
            tiers = self.tiers.get(key)
            if tiers is None:
                log.error("no tiers for an open position", extra={"pair": f"{key[0]}/{key[1]}"})
                continue
            mark = await self._market.price(position.base, position.quote)
            side = direction(position)
            # every funding time since the position opened: the ledger books each once (by
            # its id), so one refused during an outage is booked at the next call
            for at in funding_times(position.opened_at or now, now, self.funding.interval):
                rate = self.funding.rate(at)
                amount = funding_received(side, position.quantity, mark, rate)
                events.append(
                    PositionEvent(
                        funding_id(key[0], key[1], at),
                        EventKind.FUNDING,
                        key[0],
                        key[1],
                        price=mark,
                        amount=amount,
                        rate=rate,
                        quantity=position.quantity,
                        at=at,
                    )
                )
            liquidation = position_liquidation_price(position, tiers)
            if liquidated(side, mark, liquidation):
                events.append(
                    PositionEvent(
                        liquidation_id(key[0], key[1], position.opened_at, now),
                        EventKind.LIQUIDATION,
                        key[0],
                        key[1],
                        price=liquidation,
                        quantity=position.quantity,
                        at=now,
                    )
                )
        return events
