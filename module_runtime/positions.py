"""Positions and closed trades: average-cost accounting, shared by every ledger.

The in-memory ledger and the PostgreSQL ledger (later) must book fills identically, so
the accounting lives here, apart from storage. Spot is long only: the book refuses what
it cannot account for (a spot sell beyond the held quantity) instead of guessing.
Perpetual futures (`Market.PERP`) are a branch of their own: long or short, isolated
margin, closing PnL `side x (exit - entry) x quantity - fees`, and liquidation (the
margin is lost). A position never flips side in one fill: close it first.

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

from module_runtime.orders import Fill, Market, Order, OrderStatus, Side

PositionKey = tuple[str, str]  # (base, quote)

# Money arithmetic runs in this context, not the thread's default (28 digits): an
# 18-decimal token quantity times a price needs more, and average cost needs a division.
ACCOUNTING_CONTEXT = Context(prec=60)

ZERO = Decimal(0)


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"  # perpetual futures only


class PositionError(ValueError):
    """A fill the book cannot account for (e.g. selling more than is held)."""


@dataclass(frozen=True, slots=True)
class Position:
    """An open position. Spot: `cost` is the total quote paid (fees included) for
    `quantity`. Perpetual (`market` PERP): `cost` is the entry notional (quantity x
    average entry price, no fees), `margin` the isolated margin posted, `fees` the entry
    fees not yet closed out, and `side` long or short."""

    base: str
    quote: str
    quantity: Decimal
    cost: Decimal
    side: PositionSide = PositionSide.LONG
    opened_at: datetime | None = None
    market: Market = Market.SPOT
    leverage: Decimal = Decimal(1)
    margin: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def key(self) -> PositionKey:
        return (self.base, self.quote)

    @property
    def is_perp(self) -> bool:
        return self.market is Market.PERP

    @property
    def direction(self) -> int:
        """+1 for a long, -1 for a short."""
        return 1 if self.side is PositionSide.LONG else -1

    @property
    def avg_cost(self) -> Decimal:
        """Average entry price in quote per base (spot: fees included; perp: without)."""
        with localcontext(ACCOUNTING_CONTEXT):
            return self.cost / self.quantity

    @property
    def capital(self) -> Decimal:
        """Capital the position ties up: spot its cost, a perpetual its isolated margin."""
        return self.margin if self.is_perp else self.cost

    def market_value(self, mark: Decimal | None) -> Decimal:
        """Value at `mark` (a perpetual: its notional); at cost when there is no mark yet."""
        with localcontext(ACCOUNTING_CONTEXT):
            return self.cost if mark is None else self.quantity * mark

    def unrealized_pnl(self, mark: Decimal | None) -> Decimal:
        """Gain if closed at `mark` before exit fees (entry fees included); zero without
        a mark."""
        with localcontext(ACCOUNTING_CONTEXT):
            if mark is None:
                return ZERO
            if self.is_perp:
                return self.direction * (self.quantity * mark - self.cost) - self.fees
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
        if current is not None and current.market is not order.market:
            raise PositionError(
                f"{order.market} order on a {current.market} position in {key[0]}/{key[1]}"
            )
        if order.market is Market.PERP:
            return self._apply_perp(current, key, order, fill)
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

    # ---- perpetual futures -----------------------------------------------------------

    def _apply_perp(
        self, current: Position | None, key: PositionKey, order: Order, fill: Fill
    ) -> ClosedTrade | None:
        side = PositionSide.LONG if order.side is Side.BUY else PositionSide.SHORT
        if order.leverage < 1:
            raise PositionError(f"a perpetual order needs leverage >= 1, got {order.leverage}")
        notional = fill.quantity * fill.price
        if current is None or current.side is side:
            if current is None:
                self._positions[key] = Position(
                    order.base,
                    order.quote,
                    fill.quantity,
                    notional,
                    side,
                    fill.at,
                    Market.PERP,
                    order.leverage,
                    notional / order.leverage,
                    fill.fee,
                )
            else:
                margin = current.margin + notional / order.leverage
                cost = current.cost + notional
                self._positions[key] = Position(
                    current.base,
                    current.quote,
                    current.quantity + fill.quantity,
                    cost,
                    side,
                    current.opened_at,
                    Market.PERP,
                    cost / margin,  # the position's effective leverage
                    margin,
                    current.fees + fill.fee,
                )
            return None
        if fill.quantity > current.quantity:
            raise PositionError(
                f"{order.side} of {fill.quantity} {order.base} exceeds the {current.side} "
                f"position of {current.quantity}: close it before opening the other side"
            )
        closed = self._close_perp(current, key, fill.quantity)
        pnl = current.direction * (fill.quantity * fill.price - closed.cost) - closed.fees
        return ClosedTrade(
            pnl=pnl - fill.fee,
            capital=closed.margin,
            base=order.base,
            quote=order.quote,
            quantity=fill.quantity,
            entry_price=current.avg_cost,
            exit_price=fill.price,
            fee=closed.fees + fill.fee,
            order_id=order.order_id,
            closed_at=fill.at,
            side=current.side,
        )

    def _close_perp(self, current: Position, key: PositionKey, quantity: Decimal) -> Position:
        """Take `quantity` out of a perpetual position; returns the part taken out."""
        if quantity == current.quantity:
            del self._positions[key]
            return current
        share = quantity / current.quantity
        part = Position(
            current.base,
            current.quote,
            quantity,
            current.cost * share,
            current.side,
            current.opened_at,
            Market.PERP,
            current.leverage,
            current.margin * share,
            current.fees * share,
        )
        self._positions[key] = Position(
            current.base,
            current.quote,
            current.quantity - quantity,
            current.cost - part.cost,
            current.side,
            current.opened_at,
            Market.PERP,
            current.leverage,
            current.margin - part.margin,
            current.fees - part.fees,
        )
        return part

    def liquidate(
        self, key: PositionKey, *, price: Decimal, at: datetime, event_id: str
    ) -> ClosedTrade:
        """The venue closed the whole perpetual position at its liquidation price: its
        isolated margin is lost (the exchange keeps what is left of it), and so are the
        entry fees already paid. Raises `PositionError` without such a position."""
        with localcontext(ACCOUNTING_CONTEXT):
            current = self._positions.get(key)
            if current is None or not current.is_perp:
                raise PositionError(f"no perpetual position in {key[0]}/{key[1]} to liquidate")
            del self._positions[key]
            return ClosedTrade(
                pnl=-current.margin - current.fees,
                capital=current.margin,
                base=current.base,
                quote=current.quote,
                quantity=current.quantity,
                entry_price=current.avg_cost,
                exit_price=price,
                fee=current.fees,
                order_id=event_id,
                closed_at=at,
                side=current.side,
            )
