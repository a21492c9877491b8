"""The ledger: the durable record of every order a module wanted and what happened to it.

The order path writes an *intent* before an order reaches a broker and its *outcome*
afterwards, so a crash in between leaves an open intent to reconcile rather than a trade
nobody knows about. Positions and closed trades are derived from the booked outcomes
(`module_runtime.positions`), never kept separately.

Outcomes are idempotent per order id: recording the same outcome again changes nothing;
a *different* final outcome for an already settled order is a conflict and raises.
Non-final outcomes (PENDING, SENT) update what is known but keep the intent open.

`InMemoryLedger` is for paper runs and tests; the PostgreSQL ledger (a later issue)
implements the same protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from module_runtime.futures.events import EventKind, PositionEvent
from module_runtime.orders import Fill, Order, OrderStatus
from module_runtime.positions import ClosedTrade, Position, PositionBook

log = logging.getLogger(__name__)

FINAL_STATUSES = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.REJECTED,
        OrderStatus.REVERTED,
        OrderStatus.DROPPED,
        OrderStatus.CANCELLED,
    }
)


class LedgerError(Exception):
    """The ledger refused a record; nothing was changed."""


class UnknownOrder(LedgerError):
    """An outcome for an order whose intent was never recorded."""


class LedgerConflict(LedgerError):
    """A record that contradicts one already in the ledger for the same order id."""


class Ledger(Protocol):
    async def record_intent(self, order: Order) -> None:
        """Record that `order` is about to be sent. Idempotent for the same order."""
        ...

    async def record_outcome(self, fill: Fill) -> None:
        """Record what happened to an intent; a final FILLED outcome books the fill once."""
        ...

    async def record_rejection(self, order: Order, reason: str) -> None:
        """Record that risk checks refused `order` (it never had an intent)."""
        ...

    async def open_intents(self) -> list[Order]:
        """Intents without a final outcome, oldest first."""
        ...

    async def closed_trades(self) -> list[ClosedTrade]:
        """Every closed trade, in the order the fills were booked."""
        ...

    async def positions(self) -> list[Position]:
        """Open positions."""
        ...

    async def flush(self) -> None:
        """Return once everything recorded so far is durable."""
        ...

    async def record_event(self, event: PositionEvent) -> None:
        """Record a funding payment or a liquidation (perpetuals), once per event id; a
        liquidation closes the position in the book (its loss is a closed trade)."""
        ...

    async def events(self) -> list[PositionEvent]:
        """Funding payments and liquidations, in the order they were booked."""
        ...


@dataclass(frozen=True, slots=True)
class Rejection:
    order: Order
    reason: str


def outcome_of(
    fill: Fill, intents: Mapping[str, Order], latest: Mapping[str, Fill]
) -> Order | None:
    """The order whose intent `fill` is an outcome of; None when `fill` repeats that order's
    final outcome (logged: there is nothing to record). Raises `UnknownOrder` without an
    intent, `LedgerConflict` when the order already has a different final outcome."""
    order = intents.get(fill.order_id)
    if order is None:
        raise UnknownOrder(f"no intent for order {fill.order_id}")
    previous = latest.get(fill.order_id)
    if previous is not None and previous.status in FINAL_STATUSES:
        if same_outcome(previous, fill):
            log.info("duplicate outcome ignored", extra={"order_id": fill.order_id})
            return None
        raise LedgerConflict(
            f"order {fill.order_id} is already {previous.status}; refusing {fill.status}"
        )
    return order


def known_event(event: PositionEvent, known: Mapping[str, PositionEvent]) -> bool:
    """True when `event` was booked already (nothing to do); `LedgerConflict` when its id
    was booked with different content."""
    previous = known.get(event.event_id)
    if previous is None:
        return False
    if (previous.kind, previous.key, previous.price, previous.rate, previous.quantity) != (
        event.kind,
        event.key,
        event.price,
        event.rate,
        event.quantity,
    ) or (event.kind is EventKind.FUNDING and previous.amount != event.amount):
        raise LedgerConflict(f"event {event.event_id} is already booked differently")
    return True


def book_event(
    book: PositionBook, event: PositionEvent
) -> tuple[PositionEvent, ClosedTrade | None]:
    """Apply `event` to `book`: a liquidation closes the position (raises `PositionError`
    without one) and the event carries its loss as `amount`."""
    if event.kind is EventKind.LIQUIDATION:
        trade = book.liquidate(event.key, price=event.price, at=event.at, event_id=event.event_id)
        return replace(event, amount=trade.pnl), trade
    return event, None


def same_outcome(a: Fill, b: Fill) -> bool:
    """Two reports of one outcome (the time it was observed may differ)."""
    return (a.status, a.quantity, a.price, a.fee, a.tx_hash) == (
        b.status,
        b.quantity,
        b.price,
        b.fee,
        b.tx_hash,
    )


class InMemoryLedger:
    """A `Ledger` in process memory: for paper mode, backtests and tests."""

    def __init__(self) -> None:
        self._intents: dict[str, Order] = {}
        self._latest: dict[str, Fill] = {}  # last outcome seen per order (final or not)
        self._rejections: dict[str, Rejection] = {}
        self._book = PositionBook()
        self._trades: list[ClosedTrade] = []
        self._events: dict[str, PositionEvent] = {}
        self._open: dict[str, Order] = {}  # intents without a final outcome, oldest first

    async def record_intent(self, order: Order) -> None:
        known = self._intents.get(order.order_id)
        if known is not None:
            if known != order:
                raise LedgerConflict(f"order {order.order_id} already has a different intent")
            return
        if order.order_id in self._rejections:
            raise LedgerConflict(f"order {order.order_id} was rejected; it cannot be sent")
        self._intents[order.order_id] = order
        self._open[order.order_id] = order

    async def record_outcome(self, fill: Fill) -> None:
        order = outcome_of(fill, self._intents, self._latest)
        if order is None:
            return
        if fill.status is OrderStatus.FILLED:
            trade = self._book.apply(order, fill)  # raises before changing anything
            if trade is not None:
                self._trades.append(trade)
        self._latest[fill.order_id] = fill
        if fill.status in FINAL_STATUSES:
            self._open.pop(fill.order_id, None)

    async def record_rejection(self, order: Order, reason: str) -> None:
        if order.order_id in self._intents:
            raise LedgerConflict(f"order {order.order_id} has an intent; it cannot be rejected")
        self._rejections.setdefault(order.order_id, Rejection(order, reason))

    async def open_intents(self) -> list[Order]:
        return list(self._open.values())

    async def closed_trades(self) -> list[ClosedTrade]:
        return list(self._trades)

    async def positions(self) -> list[Position]:
        return self._book.positions()

    async def flush(self) -> None:
        return None

    async def record_event(self, event: PositionEvent) -> None:
        if known_event(event, self._events):
            return
        booked, trade = book_event(self._book, event)  # raises before changing anything
        if trade is not None:
            self._trades.append(trade)
        self._events[event.event_id] = booked

    async def events(self) -> list[PositionEvent]:
        return list(self._events.values())

    # ---- inspection (not part of the protocol) -------------------------------------

    def outcome(self, order_id: str) -> Fill | None:
        return self._latest.get(order_id)

    def fills(self) -> list[Fill]:
        """The filled outcomes, in the order their intents were recorded."""
        return [
            fill
            for order_id in self._intents
            if (fill := self._latest.get(order_id)) is not None
            and fill.status is OrderStatus.FILLED
        ]

    def rejections(self) -> list[Rejection]:
        return list(self._rejections.values())

    def intents(self) -> list[Order]:
        return list(self._intents.values())
