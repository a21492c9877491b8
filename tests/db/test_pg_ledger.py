"""PgLedger beyond the protocol: durability across restarts, retries, the module lock,
intent-before-broker seen from another connection, and what an outage leaves behind."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from module_runtime.clock import ManualClock
from module_runtime.db.ledger import LedgerUnavailable, ModuleLocked, ModuleRef, PgLedger
from module_runtime.order_path import OrderPath
from module_runtime.orders import Fill, Order, OrderStatus
from module_runtime.paper_broker import PaperBroker, PriceQuotes

from ..pg import PgServer
from ..runtime.conftest import T0, MutablePrice, buy, make_limits, sell
from .conftest import MODULE, LedgerFactory

pytestmark = pytest.mark.postgres
D = Decimal


def filled(order: Order, quantity: str, price: str, fee: str = "0") -> Fill:
    return Fill(order.order_id, OrderStatus.FILLED, D(quantity), D(price), D(fee), at=T0)


async def test_a_restarted_ledger_has_the_same_positions_and_trades(
    make_pg_ledger: LedgerFactory, db_url: str
) -> None:
    first: PgLedger = await make_pg_ledger()
    b1, b2, s1 = buy("1", "100"), buy("2", "130"), sell("1.5", "140")
    open_one = buy("0.1", "100")
    for order, fill in ((b1, filled(b1, "1", "100", "0.3")), (b2, filled(b2, "2", "130", "0.7"))):
        await first.record_intent(order)
        await first.record_outcome(fill)
    await first.record_intent(s1)
    await first.record_outcome(filled(s1, "1.5", "140", "0.21"))
    await first.record_intent(open_one)
    await first.record_outcome(Fill(open_one.order_id, OrderStatus.SENT, tx_hash="0x01", at=T0))
    before = (await first.positions(), await first.closed_trades(), await first.open_intents())
    await first.close()

    second = PgLedger(db_url, MODULE)
    await second.connect()
    try:
        after = (
            await second.positions(),
            await second.closed_trades(),
            await second.open_intents(),
        )
        assert after == before
        assert second.outcome(open_one.order_id) == Fill(
            open_one.order_id, OrderStatus.SENT, tx_hash="0x01", at=T0
        )
        # a retry of an already booked outcome after the restart books nothing twice
        await second.record_outcome(filled(s1, "1.5", "140", "0.21"))
        assert await second.closed_trades() == before[1]
    finally:
        await second.close()


async def test_retries_never_add_rows(
    make_pg_ledger: LedgerFactory, db: asyncpg.Connection
) -> None:
    ledger: PgLedger = await make_pg_ledger()
    order = buy("1", "100")
    rejected = buy("5", "100")
    for _ in range(3):
        await ledger.record_intent(order)
        await ledger.record_outcome(filled(order, "1", "100"))
        await ledger.record_rejection(rejected, "max_position_size: too big")
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    assert await db.fetchval("SELECT count(*) FROM risk_events") == 1
    row = await db.fetchrow("SELECT * FROM orders")
    assert (row["status"], row["booking_seq"] is not None, row["settled_at"] is not None) == (
        "filled",
        True,
        True,
    )
    event = await db.fetchrow("SELECT reason, message, detail FROM risk_events")
    assert (event["reason"], event["message"]) == (
        "max_position_size",
        "max_position_size: too big",
    )


async def test_realized_pnl_is_stored_with_the_closing_fill(
    make_pg_ledger: LedgerFactory, db: asyncpg.Connection
) -> None:
    ledger: PgLedger = await make_pg_ledger()
    b, s = buy("2", "100"), sell("2", "110")
    await ledger.record_intent(b)
    await ledger.record_outcome(filled(b, "2", "100", "1"))
    await ledger.record_intent(s)
    await ledger.record_outcome(filled(s, "2", "110", "1"))
    pnl = await db.fetchval("SELECT realized_pnl FROM orders WHERE order_id = $1", s.order_id)
    assert pnl == D(220) - D(1) - D(201) == (await ledger.closed_trades())[0].pnl


async def test_one_runtime_per_module(make_pg_ledger: LedgerFactory, db_url: str) -> None:
    first: PgLedger = await make_pg_ledger()
    second = PgLedger(db_url, MODULE)
    with pytest.raises(ModuleLocked):
        await second.connect()
    other = PgLedger(db_url, ModuleRef("ns", "m2"))  # another module is independent
    await other.connect()
    await other.close()
    await first.close()  # the lock goes with the session
    await second.connect()
    await second.close()


async def test_order_ids_are_global(make_pg_ledger: LedgerFactory) -> None:
    one: PgLedger = await make_pg_ledger()
    two: PgLedger = await make_pg_ledger(ModuleRef("ns", "m2"))
    order = buy("1", "100")
    await one.record_intent(order)
    with pytest.raises(Exception, match="another module"):
        await two.record_intent(order)


async def test_the_intent_is_durable_before_the_broker_is_called(
    make_pg_ledger: LedgerFactory, db: asyncpg.Connection
) -> None:
    clock = ManualClock(T0)
    ledger: PgLedger = await make_pg_ledger()
    paper = PaperBroker(PriceQuotes(MutablePrice("1000")), fee_bps=D(0), clock=clock)
    seen: list[str] = []

    class Inspecting:
        name = "paper"

        async def execute(self, order: Order) -> Fill:
            # another session (another process, after a crash) sees the committed intent
            status = await db.fetchval(
                "SELECT status FROM orders WHERE order_id = $1", order.order_id
            )
            seen.append(status)
            return await paper.execute(order)

    path = OrderPath(broker=Inspecting(), ledger=ledger, limits=make_limits(), clock=clock)
    fill = await path.submit(buy("1", "1000"))
    assert fill.status is OrderStatus.FILLED and seen == ["pending"]
    assert await db.fetchval("SELECT status FROM orders") == "filled"


async def test_an_outage_keeps_what_could_not_be_written(
    make_pg_ledger: LedgerFactory, pg_server: PgServer, db_url: str
) -> None:
    ledger: PgLedger = await make_pg_ledger()
    sent = buy("1", "100")
    await ledger.record_intent(sent)
    with pg_server.down():
        # the broker answered, but the database is gone: the outcome is kept
        with pytest.raises(LedgerUnavailable):
            await ledger.record_outcome(filled(sent, "1", "100"))
        with pytest.raises(LedgerUnavailable):  # no intent while down: nothing gets sent
            await ledger.record_intent(buy("1", "100"))
        with pytest.raises(LedgerUnavailable):
            await ledger.positions()
        assert not ledger.available and ledger.backlog == 1
        with pytest.raises(LedgerUnavailable):
            await ledger.flush()
        with pytest.raises(LedgerUnavailable):
            await ledger.reconnect()
    await ledger.reconnect()
    assert ledger.available and ledger.backlog == 0
    [position] = await ledger.positions()
    assert position.quantity == 1 and await ledger.open_intents() == []
    await ledger.flush()
    # and it is in the database, not only in memory
    await ledger.close()
    fresh = PgLedger(db_url, MODULE)
    await fresh.connect()
    assert [p.quantity for p in await fresh.positions()] == [1]
    await fresh.close()


async def test_the_password_is_never_shown(db_url: str, pg_server: PgServer) -> None:
    ledger = PgLedger(db_url, MODULE)
    assert pg_server.password not in repr(ledger)
    with pg_server.down(), pytest.raises(LedgerUnavailable) as caught:
        await ledger.connect()
    assert pg_server.password not in str(caught.value)
    assert pg_server.password not in (ledger.problem or "")
