"""`PgLedger`: the `Ledger` protocol (module_runtime.ledger) on PostgreSQL.

Semantics are `InMemoryLedger`'s, record for record; what PostgreSQL adds is that every
record is committed before the call returns (`synchronous_commit` forced on for the
session), so the order path's "intent before the broker, outcome after" survives a crash
of the runtime at any point.

- Every order that passed the risk checks is one `orders` row, keyed by `order_id` (the
  idempotency key): `record_intent` inserts it (status `pending`), `record_outcome`
  updates it. A retried intent or outcome never adds a row; a different final outcome for
  a settled order raises `LedgerConflict`.
- A FILLED outcome is booked once, in the same UPDATE that settles the row: the row gets
  the next `booking_seq` and, for a closing fill, the trade's realized PnL. Positions and
  closed trades are not stored separately: at connect they are re-derived by replaying
  the booked fills in `booking_seq` order through `module_runtime.positions`, the same
  code the in-memory ledger uses, and then kept up to date in memory.
- Rejections are `risk_events` rows (kind `rejection`), once per order id.

One runtime per module writes its ledger: `connect()` takes a session advisory lock on the
module's row and fails with `ModuleLocked` while another live session holds it (a killed
runtime's session, and so its lock, ends with its connection).

The database can go away at any time. Every call then raises `LedgerUnavailable`, reads
included, so the order path sends nothing (no intent, no order) and reports the ledger as
failing. What could not be written is kept: an outcome whose write failed (the broker
*did* answer) is written when the connection is back, and an intent whose INSERT may or
may not have committed (the broker was *not* called) is settled as `cancelled`. The ledger
never reconnects by itself: `reconnect()` is called by its supervisor
(`module_runtime.db.runtime`), which also re-syncs the order path before writes resume.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg

from module_runtime.futures.events import EventKind, PositionEvent
from module_runtime.ledger import (
    FINAL_STATUSES,
    LedgerConflict,
    LedgerError,
    Rejection,
    UnknownOrder,
    book_event,
    known_event,
    outcome_of,
)
from module_runtime.orders import Fill, Market, Order, OrderStatus, Side
from module_runtime.positions import ClosedTrade, Position, PositionBook, PositionError

from .migrate import LOCK_CLASS, check_schema

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a lost or unreachable server looks like to asyncpg.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
)

SESSION_SETTINGS = {
    "synchronous_commit": "on",  # a returned commit is durable, whatever the server default
    "application_name": "tradeplane-runtime",
}


class LedgerUnavailable(LedgerError):
    """The database cannot be reached: nothing was recorded (or the commit is unknown)."""


class ModuleLocked(LedgerUnavailable):
    """Another live runtime holds this module's ledger."""


@dataclass(frozen=True, slots=True)
class ModuleRef:
    """Which module a ledger belongs to (the `modules` row)."""

    namespace: str
    name: str
    type: str = "custom"
    uid: str | None = None
    version: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class LedgerState:
    """A module's ledger as loaded from the database (oldest intent first)."""

    intents: dict[str, Order] = field(default_factory=dict)
    latest: dict[str, Fill] = field(default_factory=dict)
    rejected: set[str] = field(default_factory=set)
    book: PositionBook = field(default_factory=PositionBook)
    trades: list[ClosedTrade] = field(default_factory=list)
    tx_hashes: set[str] = field(default_factory=set)
    events: dict[str, PositionEvent] = field(default_factory=dict)

    def open_intents(self) -> list[Order]:
        return [
            order
            for order_id, order in self.intents.items()
            if (fill := self.latest.get(order_id)) is None or fill.status not in FINAL_STATUSES
        ]


def module_lock_key(module_id: int) -> int:
    """The bigint advisory lock key of one module's ledger."""
    return (LOCK_CLASS << 32) | (module_id & 0xFFFFFFFF)


def order_from_row(row: Mapping[str, Any]) -> Order:
    return Order(
        venue=row["venue"],
        side=Side(row["side"]),
        base=row["base"],
        quote=row["quote"],
        quantity=row["quantity"],
        price=row["price"],
        leverage=row["leverage"],
        min_out=row["min_out"],
        reduces_position=row["reduces_position"],
        order_id=row["order_id"],
        created_at=row["created_at"],
        market=Market(row["market"]),
    )


def event_from_row(row: Mapping[str, Any]) -> PositionEvent:
    return PositionEvent(
        event_id=row["event_id"],
        kind=EventKind(row["kind"]),
        base=row["base"],
        quote=row["quote"],
        price=row["price"],
        amount=row["amount"],
        rate=row["rate"],
        quantity=row["quantity"],
        at=row["at"],
    )


def fill_from_row(row: Mapping[str, Any]) -> Fill:
    return Fill(
        order_id=row["order_id"],
        status=OrderStatus(row["status"]),
        quantity=row["filled_quantity"],
        price=row["fill_price"],
        fee=row["fee"],
        tx_hash=row["tx_hash"],
        reason=row["reason"],
        at=row["outcome_at"],
        gas_fee=row["gas_fee"],
    )


def order_json(order: Order) -> str:
    return json.dumps(
        {
            "venue": order.venue,
            "side": order.side.value,
            "base": order.base,
            "quote": order.quote,
            "quantity": str(order.quantity),
            "price": str(order.price),
            "leverage": str(order.leverage),
            "minOut": None if order.min_out is None else str(order.min_out),
            "reducesPosition": order.reduces_position,
            "createdAt": order.created_at.isoformat(),
        }
    )


async def load_state(conn: Any, module_id: int) -> LedgerState:
    """Read a module's ledger and replay its booked fills into positions and trades."""
    state = LedgerState()
    rows = await conn.fetch(
        "SELECT * FROM orders WHERE module_id = $1 ORDER BY intent_seq", module_id
    )
    booked = []
    for row in rows:
        order = order_from_row(row)
        state.intents[order.order_id] = order
        if row["outcome_at"] is not None:
            state.latest[order.order_id] = fill_from_row(row)
        if row["tx_hash"]:
            state.tx_hashes.add(row["tx_hash"].lower())
        if row["booking_seq"] is not None:
            booked.append(row)
    events = await conn.fetch(
        "SELECT * FROM position_events WHERE module_id = $1 ORDER BY booking_seq", module_id
    )
    booked.extend(events)
    booked.sort(key=lambda r: r["booking_seq"])
    for row in booked:
        try:
            if "event_id" in row:
                event, trade = book_event(state.book, event_from_row(row))
                state.events[event.event_id] = event
            else:
                trade = state.book.apply(state.intents[row["order_id"]], fill_from_row(row))
        except PositionError as error:
            what = row["event_id"] if "event_id" in row else row["order_id"]
            raise LedgerError(f"booked entry {what} does not replay: {error}") from None
        if trade is not None:
            state.trades.append(trade)
    state.rejected = {
        r["order_id"]
        for r in await conn.fetch(
            "SELECT order_id FROM risk_events WHERE module_id = $1 AND kind = 'rejection'",
            module_id,
        )
    }
    return state


async def upsert_module(conn: Any, module: ModuleRef) -> int:
    module_id: int = await conn.fetchval(
        """
        INSERT INTO modules (namespace, name, uid, type, version, config)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb)
        ON CONFLICT (namespace, name) DO UPDATE SET
            uid = COALESCE(EXCLUDED.uid, modules.uid),
            type = EXCLUDED.type,
            version = COALESCE(EXCLUDED.version, modules.version),
            config = EXCLUDED.config,
            updated_at = now()
        RETURNING id
        """,
        module.namespace,
        module.name,
        module.uid,
        module.type,
        module.version,
        json.dumps(dict(module.config)),
    )
    return module_id


def _copy_book(book: PositionBook) -> PositionBook:
    return PositionBook({p.key: p for p in book.positions()})


class PgLedger:
    """A `Ledger` in PostgreSQL for one module. `await connect()` before use."""

    def __init__(
        self,
        dsn: str,
        module: ModuleRef,
        *,
        chain_id: int | None = None,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self.module = module
        self.chain_id = chain_id
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._conn: Any = None
        self._lock = asyncio.Lock()  # one statement at a time on the one connection
        self._state = LedgerState()
        self._writable = False
        self.module_id: int | None = None
        self.problem: str | None = "not connected"
        # kept across an outage, written (or settled) when the connection is back
        self._unwritten_outcomes: dict[str, Fill] = {}
        self._unwritten_rejections: dict[str, tuple[Order, str]] = {}
        self._unsure_intents: dict[str, Order] = {}

    def __repr__(self) -> str:  # never the DSN: it holds the password
        return f"PgLedger({self.module.label}, connected={self.connected})"

    # ---- connection ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def available(self) -> bool:
        """Connected and accepting writes."""
        return self._conn is not None and self._writable

    @property
    def backlog(self) -> int:
        """Records kept in memory because the database could not take them yet."""
        return (
            len(self._unwritten_outcomes)
            + len(self._unwritten_rejections)
            + len(self._unsure_intents)
        )

    async def connect(self, *, writable: bool = True) -> None:
        """Connect, check the schema, lock the module, load the ledger and write what an
        outage left unwritten. Raises `LedgerUnavailable` (retry later), `ModuleLocked`
        or `module_runtime.db.migrate.SchemaError` (do not retry: migrate first)."""
        await self.close()
        try:
            conn = await asyncpg.connect(
                self._dsn,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                server_settings=SESSION_SETTINGS,
            )
        except CONNECTION_ERRORS as error:
            raise self._unavailable(error) from None
        try:
            await check_schema(conn)
            module_id = await upsert_module(conn, self.module)
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", module_lock_key(module_id)
            )
            if not locked:
                raise ModuleLocked(f"module {self.module.label} is held by another running runtime")
            state = await load_state(conn, module_id)
        except CONNECTION_ERRORS as error:
            conn.terminate()
            raise self._unavailable(error) from None
        except BaseException:
            conn.terminate()
            raise
        self._conn, self._state, self.module_id = conn, state, module_id
        self._writable = True  # the backlog is written through the normal paths
        try:
            await self._write_backlog()
        finally:
            self._writable = writable and self._conn is not None
        if self._conn is not None:
            self.problem = None
            log.info(
                "ledger connected",
                extra={
                    "module_name": self.module.label,
                    "open_intents": len(self._state.open_intents()),
                },
            )

    async def reconnect(self, *, writable: bool = True) -> None:
        await self.connect(writable=writable)

    def allow_writes(self) -> None:
        """Let writes through again (after the supervisor re-synced the order path)."""
        if self._conn is not None:
            self._writable = True

    async def close(self) -> None:
        conn, self._conn, self._writable = self._conn, None, False
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), timeout=2)
            except Exception:
                conn.terminate()

    async def probe(self) -> None:
        """A round trip to the server; raises `LedgerUnavailable` when it is gone."""
        await self._run(lambda conn: conn.execute("SELECT 1"))

    def _unavailable(self, error: BaseException) -> LedgerUnavailable:
        text = str(error) or type(error).__name__
        self.problem = f"database unreachable: {type(error).__name__}: {text}"
        return LedgerUnavailable(self.problem)

    async def _run(self, action: Callable[[Any], Awaitable[T]]) -> T:
        conn = self._conn
        if conn is None:
            raise LedgerUnavailable(self.problem or "not connected")
        async with self._lock:
            if self._conn is not conn:
                raise LedgerUnavailable(self.problem or "not connected")
            try:
                return await action(conn)
            except CONNECTION_ERRORS as error:
                self._conn, self._writable = None, False
                conn.terminate()
                failure = self._unavailable(error)
                log.warning(
                    "ledger lost the database",
                    extra={"module_name": self.module.label, "error": self.problem},
                )
                raise failure from None

    def _check_readable(self) -> LedgerState:
        if self._conn is None:
            raise LedgerUnavailable(self.problem or "not connected")
        return self._state

    def _check_writable(self) -> LedgerState:
        state = self._check_readable()
        if not self._writable:
            raise LedgerUnavailable("ledger is re-syncing after an outage; not writing yet")
        return state

    # ---- the Ledger protocol ---------------------------------------------------------

    async def record_intent(self, order: Order) -> None:
        state = self._check_writable()
        known = state.intents.get(order.order_id)
        if known is not None:
            if known != order:
                raise LedgerConflict(f"order {order.order_id} already has a different intent")
            return
        if order.order_id in state.rejected:
            raise LedgerConflict(f"order {order.order_id} was rejected; it cannot be sent")
        try:
            inserted = await self._run(lambda conn: self._insert_intent(conn, order))
        except LedgerUnavailable:
            self._unsure_intents[order.order_id] = order  # it may have committed
            raise
        if inserted is None:
            raise LedgerConflict(f"order id {order.order_id} belongs to another module")
        state.intents[order.order_id] = order

    async def _insert_intent(self, conn: Any, order: Order) -> Any:
        return await conn.fetchval(
            """
            INSERT INTO orders (
                order_id, module_id, venue, chain_id, side, base, quote, quantity, price,
                leverage, min_out, reduces_position, created_at, market
            ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
            ON CONFLICT (order_id) DO NOTHING
            RETURNING intent_seq
            """,
            order.order_id,
            self.module_id,
            order.venue,
            self.chain_id,
            order.side.value,
            order.base,
            order.quote,
            order.quantity,
            order.price,
            order.leverage,
            order.min_out,
            order.reduces_position,
            order.created_at,
            order.market.value,
        )

    async def record_outcome(self, fill: Fill) -> None:
        try:
            self._check_writable()
            await self._record_outcome(fill)
        except LedgerUnavailable:
            self._unwritten_outcomes[fill.order_id] = fill  # the venue answered: keep it
            raise

    async def _record_outcome(self, fill: Fill) -> None:
        state = self._state
        order = outcome_of(fill, state.intents, state.latest)
        if order is None:
            return
        book, trade = state.book, None
        if fill.status is OrderStatus.FILLED:
            book = _copy_book(state.book)
            trade = book.apply(order, fill)  # raises before anything is written
        updated = await self._run(lambda conn: self._update_outcome(conn, fill, trade))
        if updated != 1:
            raise LedgerConflict(f"order {fill.order_id} was settled by someone else")
        state.book = book
        if trade is not None:
            state.trades.append(trade)
        if fill.tx_hash:
            state.tx_hashes.add(fill.tx_hash.lower())
        state.latest[fill.order_id] = fill

    async def _update_outcome(self, conn: Any, fill: Fill, trade: ClosedTrade | None) -> int:
        final = fill.status in FINAL_STATUSES
        booked = fill.status is OrderStatus.FILLED
        result: str = await conn.execute(
            """
            UPDATE orders SET
                status = $3, filled_quantity = $4, fill_price = $5, fee = $6, gas_fee = $7,
                tx_hash = COALESCE($8, tx_hash), reason = $9, outcome_at = $10,
                settled_at = CASE WHEN $11 THEN now() END,
                booking_seq = CASE WHEN $12 THEN nextval('order_booking_seq') END,
                realized_pnl = $13, closed_cost = $14
            WHERE order_id = $1 AND module_id = $2 AND status IN ('pending', 'sent')
            """,
            fill.order_id,
            self.module_id,
            fill.status.value,
            fill.quantity,
            fill.price,
            fill.fee,
            fill.gas_fee,
            fill.tx_hash,
            fill.reason,
            fill.at,
            final,
            booked,
            None if trade is None else trade.pnl,
            None if trade is None else trade.capital,
        )
        return int(result.split()[-1])

    async def record_rejection(self, order: Order, reason: str) -> None:
        state = self._check_writable()
        if order.order_id in state.intents:
            raise LedgerConflict(f"order {order.order_id} has an intent; it cannot be rejected")
        if order.order_id in state.rejected:
            return
        try:
            await self._write_rejection(order, reason)
        except LedgerUnavailable:
            self._unwritten_rejections[order.order_id] = (order, reason)
            raise

    async def _write_rejection(self, order: Order, reason: str) -> None:
        await self._run(lambda conn: self._insert_rejection(conn, order, reason))
        self._state.rejected.add(order.order_id)

    async def _insert_rejection(self, conn: Any, order: Order, reason: str) -> None:
        code = reason.split(":", 1)[0].strip() or "rejected"
        await conn.execute(
            """
            INSERT INTO risk_events (module_id, kind, reason, message, order_id, detail, at)
            VALUES ($1, 'rejection', $2, $3, $4, $5::jsonb, now())
            ON CONFLICT (order_id) WHERE kind = 'rejection' DO NOTHING
            """,
            self.module_id,
            code,
            reason,
            order.order_id,
            order_json(order),
        )

    async def record_event(self, event: PositionEvent) -> None:
        """A funding payment or a liquidation, committed before it is booked in memory.
        Not kept through an outage: the venue still reports it when asked again."""
        state = self._check_writable()
        if known_event(event, state.events):
            return
        book = _copy_book(state.book)
        booked, trade = book_event(book, event)  # raises before anything is written
        inserted = await self._run(lambda conn: self._insert_event(conn, booked))
        if inserted is None:
            raise LedgerConflict(f"event {event.event_id} is booked already (another module?)")
        state.book = book
        if trade is not None:
            state.trades.append(trade)
        state.events[booked.event_id] = booked

    async def _insert_event(self, conn: Any, event: PositionEvent) -> Any:
        return await conn.fetchval(
            """
            INSERT INTO position_events (
                event_id, module_id, kind, base, quote, price, amount, rate, quantity, at
            ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (event_id) DO NOTHING
            RETURNING booking_seq
            """,
            event.event_id,
            self.module_id,
            event.kind.value,
            event.base,
            event.quote,
            event.price,
            event.amount,
            event.rate,
            event.quantity,
            event.at,
        )

    async def events(self) -> list[PositionEvent]:
        return list(self._check_readable().events.values())

    async def open_intents(self) -> list[Order]:
        return self._check_readable().open_intents()

    async def closed_trades(self) -> list[ClosedTrade]:
        return list(self._check_readable().trades)

    async def positions(self) -> list[Position]:
        return self._check_readable().book.positions()

    async def flush(self) -> None:
        """Every record returned only once committed; what an outage left unwritten is
        written now, or this raises `LedgerUnavailable`."""
        if self.backlog and self._conn is not None:
            await self._write_backlog()
        if self.backlog:
            raise LedgerUnavailable(f"{self.backlog} record(s) not yet in the database")

    # ---- after an outage -------------------------------------------------------------

    async def _write_backlog(self) -> None:
        for order_id, order in list(self._unsure_intents.items()):
            fill = self._state.latest.get(order_id)
            if order_id in self._state.intents and (
                fill is None or fill.status not in FINAL_STATUSES
            ):
                # the INSERT did commit after all; the broker was never called
                log.warning("settling an intent that was never sent", extra={"order_id": order_id})
                await self._record_outcome(
                    Fill(
                        order_id,
                        OrderStatus.CANCELLED,
                        reason="intent write failed (database unreachable); never sent",
                        at=order.created_at,
                    )
                )
            del self._unsure_intents[order_id]
        for order_id, fill in list(self._unwritten_outcomes.items()):
            try:
                await self._record_outcome(fill)
            except (LedgerConflict, UnknownOrder, PositionError) as error:
                log.error(
                    "an outcome kept through an outage was refused",
                    extra={"order_id": order_id, "error": repr(error)},
                )
            del self._unwritten_outcomes[order_id]
        for order_id, (order, reason) in list(self._unwritten_rejections.items()):
            if order_id not in self._state.intents:
                await self._write_rejection(order, reason)
            del self._unwritten_rejections[order_id]

    # ---- history (not part of the protocol) ------------------------------------------

    async def record_metrics(self, snapshot: Mapping[str, Any], at: datetime) -> None:
        """One `module_metrics` row (see module_runtime.db.runtime.metrics_row)."""
        await self._run(
            lambda conn: conn.execute(
                """
                INSERT INTO module_metrics (
                    module_id, at, trades, wins, losses, realized_pnl, unrealized_pnl,
                    capital_in_use, max_drawdown, win_rate, profit_factor, halted,
                    open_orders, stats
                ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb)
                """,
                self.module_id,
                at,
                snapshot["trades"],
                snapshot["wins"],
                snapshot["losses"],
                snapshot["realized_pnl"],
                snapshot["unrealized_pnl"],
                snapshot["capital_in_use"],
                snapshot["max_drawdown"],
                snapshot["win_rate"],
                snapshot["profit_factor"],
                snapshot["halted"],
                snapshot["open_orders"],
                json.dumps(snapshot["stats"]),
            )
        )

    async def record_risk_event(self, kind: str, reason: str, message: str, at: datetime) -> None:
        """A halt or resume of the module (rejections go through `record_rejection`)."""
        await self._run(
            lambda conn: conn.execute(
                "INSERT INTO risk_events (module_id, kind, reason, message, at) "
                "VALUES ($1, $2, $3, $4, $5)",
                self.module_id,
                kind,
                reason,
                message,
                at,
            )
        )

    # ---- inspection (like InMemoryLedger's) ------------------------------------------

    def outcome(self, order_id: str) -> Fill | None:
        return self._state.latest.get(order_id)

    def intents(self) -> list[Order]:
        return list(self._state.intents.values())

    def known_tx_hashes(self) -> frozenset[str]:
        """Lower-case tx hashes of every outcome recorded (for reconciliation)."""
        return frozenset(self._state.tx_hashes)

    async def rejections(self) -> list[Rejection]:
        rows = await self._run(
            lambda conn: conn.fetch(
                "SELECT order_id, message, detail FROM risk_events "
                "WHERE module_id = $1 AND kind = 'rejection' ORDER BY id",
                self.module_id,
            )
        )
        found = []
        for row in rows:
            d = json.loads(row["detail"])
            order = Order(
                venue=d["venue"],
                side=Side(d["side"]),
                base=d["base"],
                quote=d["quote"],
                quantity=Decimal(d["quantity"]),
                price=Decimal(d["price"]),
                leverage=Decimal(d["leverage"]),
                min_out=None if d["minOut"] is None else Decimal(d["minOut"]),
                reduces_position=d["reducesPosition"],
                order_id=row["order_id"],
                created_at=datetime.fromisoformat(d["createdAt"]),
            )
            found.append(Rejection(order, row["message"]))
        return found
