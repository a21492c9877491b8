"""Positions and closed trades: average-cost accounting, shared by every ledger.

The in-memory ledger and the PostgreSQL ledger (later) must book fills identically, so
the accounting lives here, apart from storage. Only spot longs exist today; `Position`
carries a `side` and the book refuses what it cannot account for (a sell beyond the
held quantity, i.e. a short) instead of guessing, so shorts and futures can be added as
new branches rather than by changing what a long means.

Conventions (quote units throughout):
- entry fees are part of the cost: a buy adds `quantity x price + fee` to the cost;
- a sell closes quantity at the average cost and realizes
  `(sell price - average cost) x quantity - sell fee`;
- each fill that closes quantity is one `ClosedTrade` (a position closed in two
  partial sells counts as two trades).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Context, Decimal, localcontext
from enum import StrEnum

from module_runtime.orders import Fill, Order, OrderStatus, Side

PositionKey = tuple[str, str]  # (base, quote)

# Money arithmetic runs in this context, not the thread's default (28 digits): an
# 18-decimal token quantity times a price needs more, and average cost needs a division.
ACCOUNTING_CONTEXT = Context(prec=60)

ZERO = Decimal(0)


class PositionSide(StrEnum):
    LONG = "long"


class PositionError(ValueError):
    """A fill the book cannot account for (e.g. selling more than is held)."""


@dataclass(frozen=True, slots=True)
class Position:
    """An open position. `cost` is the total quote paid (fees included) for `quantity`."""

    base: str
    quote: str
    quantity: Decimal
    cost: Decimal
    side: PositionSide = PositionSide.LONG
    opened_at: datetime | None = None

    @property
    def key(self) -> PositionKey:
        return (self.base, self.quote)

    @property
    def avg_cost(self) -> Decimal:
        """Average entry price in quote per base, fees included."""
        with localcontext(ACCOUNTING_CONTEXT):
            return self.cost / self.quantity

    def market_value(self, mark: Decimal | None) -> Decimal:
        """Value at `mark`; at cost when there is no mark yet."""
        with localcontext(ACCOUNTING_CONTEXT):
            return self.cost if mark is None else self.quantity * mark

    def unrealized_pnl(self, mark: Decimal | None) -> Decimal:
        """Gain if closed at `mark` before exit fees; zero without a mark."""
        with localcontext(ACCOUNTING_CONTEXT):
            return self.market_value(mark) - self.cost


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """Realized result of one closing fill.

    `capital` is the cost basis of the closed quantity: the capital the trade put at
    risk, so `pnl / capital` is the trade's return.
    """

    pnl: Decimal
    capital: Decimal
    base: str = ""
    quote: str = ""
    quantity: Decimal = ZERO
    entry_price: Decimal = ZERO
    exit_price: Decimal = ZERO
    fee: Decimal = ZERO
    order_id: str = ""
    closed_at: datetime | None = None
    side: PositionSide = PositionSide.LONG

    def __post_init__(self) -> None:
        if not isinstance(self.pnl, Decimal) or not isinstance(self.capital, Decimal):
            raise TypeError("ClosedTrade.pnl and .capital must be Decimal")
        if self.capital <= 0:
            raise ValueError(f"ClosedTrade.capital must be > 0, got {self.capital}")

    @property
    def ret(self) -> Decimal:
        """Return on the capital the trade used."""
        with localcontext(ACCOUNTING_CONTEXT):
            return self.pnl / self.capital


@dataclass(slots=True)
class PositionBook:
    """Average-cost positions per (base, quote), updated by filled orders."""

    _positions: dict[PositionKey, Position] = field(default_factory=dict)

    def get(self, key: PositionKey) -> Position | None:
        return self._positions.get(key)

    def positions(self) -> list[Position]:
        return list(self._positions.values())

    def apply(self, order: Order, fill: Fill) -> ClosedTrade | None:
        """Book a FILLED fill of `order`; returns the trade it closes, if any.

        Validates everything before changing anything: a refused fill leaves the book
        as it was.
        """
        with localcontext(ACCOUNTING_CONTEXT):
            return self._apply(order, fill)

    def _apply(self, order: Order, fill: Fill) -> ClosedTrade | None:
        if fill.status is not OrderStatus.FILLED:
            raise PositionError(f"only FILLED fills are booked, got {fill.status}")
        if fill.order_id != order.order_id:
            raise PositionError(f"fill {fill.order_id} does not belong to order {order.order_id}")
        if fill.quantity < 0 or fill.price < 0 or fill.fee < 0:
            raise PositionError("fill quantity, price and fee must not be negative")
        if fill.quantity == 0:
            return None
        if fill.price == 0:
            raise PositionError("a filled quantity needs a price > 0")
        key = (order.base, order.quote)
        current = self._positions.get(key)
        if order.side is Side.BUY:
            self._positions[key] = self._increase(current, order, fill)
            return None
        return self._decrease(current, key, order, fill)

    def _increase(self, current: Position | None, order: Order, fill: Fill) -> Position:
        added_cost = fill.quantity * fill.price + fill.fee
        if current is None:
            return Position(order.base, order.quote, fill.quantity, added_cost, opened_at=fill.at)
        return Position(
            current.base,
            current.quote,
            current.quantity + fill.quantity,
            current.cost + added_cost,
            current.side,
            current.opened_at,
        )

    def _decrease(
        self, current: Position | None, key: PositionKey, order: Order, fill: Fill
    ) -> ClosedTrade:
        held = ZERO if current is None else current.quantity
        if current is None or fill.quantity > held:
            raise PositionError(
                f"sell of {fill.quantity} {order.base} exceeds the held {held}: "
                "short positions are not supported"
            )
        if fill.quantity == current.quantity:
            closed_cost = current.cost  # exact on a full close
            del self._positions[key]
        else:
            closed_cost = current.cost * fill.quantity / current.quantity
            self._positions[key] = Position(
                current.base,
                current.quote,
                current.quantity - fill.quantity,
                current.cost - closed_cost,
                current.side,
                current.opened_at,
            )
        pnl = fill.quantity * fill.price - fill.fee - closed_cost
        return ClosedTrade(
            pnl=pnl,
            capital=closed_cost,
            base=order.base,
            quote=order.quote,
            quantity=fill.quantity,
            entry_price=current.avg_cost,
            exit_price=fill.price,
            fee=fill.fee,
            order_id=order.order_id,
            closed_at=fill.at,
        )
