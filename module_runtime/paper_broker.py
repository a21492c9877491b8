"""Simulated fills for paper mode: a `Broker` that never sends anything anywhere.

Orders fill against a `QuoteSource` (the expected average execution price for a size),
then the broker applies slippage and a fee, both in basis points, and enforces
`order.min_out` the way a DEX router does: below it, the order is REVERTED.

Swap semantics follow on-chain routers (exact input):
- a buy spends `order.notional` quote (quantity x the price the strategy saw); the fee
  is taken from that, and the rest buys base at the execution price, so the base
  received (`Fill.quantity`) can be a little less than `order.quantity`;
- a sell spends `order.quantity` base and receives quote less the fee.
`min_out` bounds what comes out: base for a buy, quote (after fee) for a sell.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Protocol

from module_runtime.clock import Clock, SystemClock
from module_runtime.orders import Fill, Order, OrderStatus, Side
from module_runtime.positions import ACCOUNTING_CONTEXT

log = logging.getLogger(__name__)

BPS = Decimal(10_000)

PriceFn = Callable[[str, str], Awaitable[Decimal]]
ReservesFn = Callable[[str, str], Awaitable[tuple[Decimal, Decimal]]]


class QuoteUnavailable(Exception):
    """No executable price for this size (no data, no liquidity)."""


class QuoteSource(Protocol):
    async def quote(self, side: Side, base: str, quote: str, quantity: Decimal) -> Decimal:
        """Expected average execution price (quote per base) for `quantity` base."""
        ...


class PriceQuotes:
    """Quotes from a price feed (`async price(base, quote)`): infinite depth at that price."""

    def __init__(self, price: PriceFn) -> None:
        self._price = price

    async def quote(self, side: Side, base: str, quote: str, quantity: Decimal) -> Decimal:
        return await self._price(base, quote)


class ConstantProductQuotes:
    """Quotes from an x*y=k pool given its reserves `(base_reserve, quote_reserve)`.

    Buying q base costs `Rq*q/(Rb-q)` quote (average price `Rq/(Rb-q)`); selling q base
    returns `Rq*q/(Rb+q)` (average price `Rq/(Rb+q)`). The pool's own fee is left to
    the broker's `fee_bps`.
    """

    def __init__(self, reserves: ReservesFn) -> None:
        self._reserves = reserves

    async def quote(self, side: Side, base: str, quote: str, quantity: Decimal) -> Decimal:
        base_reserve, quote_reserve = await self._reserves(base, quote)
        if base_reserve <= 0 or quote_reserve <= 0:
            raise QuoteUnavailable(f"{base}/{quote} pool has no liquidity")
        with localcontext(ACCOUNTING_CONTEXT):
            if side is Side.BUY:
                if quantity >= base_reserve:
                    raise QuoteUnavailable(
                        f"buying {quantity} {base} would drain the pool ({base_reserve})"
                    )
                return quote_reserve / (base_reserve - quantity)
            return quote_reserve / (base_reserve + quantity)


class PaperBroker:
    """A `Broker` that simulates fills; counts what it executed, for inspection."""

    def __init__(
        self,
        quotes: QuoteSource,
        *,
        fee_bps: Decimal = Decimal(30),
        slippage_bps: Decimal = Decimal(0),
        clock: Clock | None = None,
        name: str = "paper",
        base_decimals: int = 18,
    ) -> None:
        for label, value in (("fee_bps", fee_bps), ("slippage_bps", slippage_bps)):
            if not isinstance(value, Decimal) or not Decimal(0) <= value < BPS:
                raise ValueError(f"{label} must be a Decimal in [0, 10000), got {value!r}")
        self.name = name
        self._quotes = quotes
        self._fee_bps = fee_bps
        self._slippage_bps = slippage_bps
        self._clock = clock or SystemClock()
        self._step = Decimal(1).scaleb(-base_decimals)  # smallest base unit
        self.executions = 0
        self.fills: list[Fill] = []

    async def execute(self, order: Order) -> Fill:
        self.executions += 1
        fill = await self._simulate(order)
        self.fills.append(fill)
        return fill

    def _outcome(self, order: Order, status: OrderStatus, reason: str) -> Fill:
        return Fill(order.order_id, status, reason=reason, at=self._clock.now())

    async def _simulate(self, order: Order) -> Fill:
        if order.quantity <= 0 or order.price <= 0:
            return self._outcome(order, OrderStatus.REVERTED, "quantity and price must be > 0")
        try:
            quoted = await self._quotes.quote(order.side, order.base, order.quote, order.quantity)
        except Exception as error:  # any quote failure means: nothing executed
            log.warning("paper quote failed", extra={"order_id": order.order_id}, exc_info=True)
            return self._outcome(order, OrderStatus.DROPPED, f"quote unavailable: {error}")
        if quoted <= 0:
            return self._outcome(order, OrderStatus.DROPPED, f"no valid quote ({quoted})")
        with localcontext(ACCOUNTING_CONTEXT):
            if order.side is Side.BUY:
                return self._buy(order, quoted)
            return self._sell(order, quoted)

    def _buy(self, order: Order, quoted: Decimal) -> Fill:
        price = quoted * (BPS + self._slippage_bps) / BPS
        spend = order.notional
        fee = spend * self._fee_bps / BPS
        received = ((spend - fee) / price).quantize(self._step, rounding=ROUND_DOWN)
        if order.min_out is not None and received < order.min_out:
            return self._outcome(
                order,
                OrderStatus.REVERTED,
                f"min_out not met: would receive {received} {order.base} < {order.min_out}",
            )
        if received <= 0:
            return self._outcome(order, OrderStatus.REVERTED, "order too small to fill")
        return Fill(order.order_id, OrderStatus.FILLED, received, price, fee, at=self._clock.now())

    def _sell(self, order: Order, quoted: Decimal) -> Fill:
        price = quoted * (BPS - self._slippage_bps) / BPS
        gross = order.quantity * price
        fee = gross * self._fee_bps / BPS
        received = gross - fee
        if order.min_out is not None and received < order.min_out:
            return self._outcome(
                order,
                OrderStatus.REVERTED,
                f"min_out not met: would receive {received} {order.quote} < {order.min_out}",
            )
        return Fill(
            order.order_id, OrderStatus.FILLED, order.quantity, price, fee, at=self._clock.now()
        )
