"""The runtime with a PostgreSQL ledger: reconciliation at start, metrics history, and a
database outage in the middle of trading."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import asyncpg
import pytest

from module_runtime.clock import ManualClock
from module_runtime.db.ledger import PgLedger
from module_runtime.db.reconcile import PaperResolver
from module_runtime.db.runtime import attach, metrics_row
from module_runtime.host import ModuleHost
from module_runtime.market_data import PriceSeries
from module_runtime.orders import Fill, OrderStatus
from module_runtime.paper_broker import PaperBroker
from module_runtime.trade_stats import compute_stats

from ..pg import PgServer
from ..runtime.conftest import T0, buy, make_spec
from ..runtime.test_host import PAIR, PRICES
from .conftest import MODULE
from .rig import FastClock, FlipFlopModule, WavePrice, flipflop_spec, new_paper

pytestmark = pytest.mark.postgres
D = Decimal


async def wait_for(condition: Callable[[], bool], seconds: float = 10, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.01)


async def test_open_intents_are_settled_before_the_first_order(
    db_url: str, db: asyncpg.Connection
) -> None:
    # a previous runtime died with two intents open (one with a non-final outcome)
    before = PgLedger(db_url, MODULE)
    await before.connect()
    left = [buy("0.5", "100"), buy("0.6", "100")]
    for order in left:
        await before.record_intent(order)
    await before.record_outcome(Fill(left[1].order_id, OrderStatus.PENDING, reason="boom", at=T0))
    await before.close()

    clock = ManualClock(T0)
    series = PriceSeries(clock, {PAIR: PRICES}, interval=timedelta(seconds=60))
    ledger = PgLedger(db_url, MODULE)
    host = ModuleHost(
        make_spec(), name="m1", namespace="ns", market=series, clock=clock, ledger=ledger
    )
    assert isinstance(host.broker, PaperBroker)
    async with attach(host, ledger, PaperResolver()) as persistence:
        assert host.broker.executions == 0  # nothing sent yet ...
        assert await ledger.open_intents() == []  # ... and nothing left open
        assert [f.status for f in persistence.reconciled] == [OrderStatus.DROPPED] * 2
        assert host.order_path.state.pending == []
    statuses = await db.fetch(
        "SELECT status FROM orders WHERE order_id = ANY($1)", [o.order_id for o in left]
    )
    assert {r["status"] for r in statuses} == {"dropped"}


async def test_the_metrics_snapshot_is_the_ledger_summary(
    db_url: str, db: asyncpg.Connection
) -> None:
    clock = ManualClock(T0)
    series = PriceSeries(clock, {PAIR: PRICES}, interval=timedelta(seconds=60))
    ledger = PgLedger(db_url, MODULE)
    host = ModuleHost(
        make_spec(), name="m1", namespace="ns", market=series, clock=clock, ledger=ledger
    )
    async with attach(host, ledger, PaperResolver(), snapshot_seconds=0.05, probe_seconds=0.01):
        stop = asyncio.Event()
        task = asyncio.create_task(host.run(stop))
        await wait_for(lambda: series.exhausted, what="the price series")
        stop.set()
        await task
        marks = dict(host.order_path.state.marks)
        halted = host.order_path.halted
        await asyncio.sleep(0.2)  # a few periodic snapshots
    # the last snapshot (written at stop) against statistics derived afresh from the ledger
    fresh = PgLedger(db_url, MODULE)
    await fresh.connect()
    trades, positions = await fresh.closed_trades(), await fresh.positions()
    await fresh.close()
    derived = compute_stats(trades, capital=D(10_000), positions=positions, marks=marks)
    assert derived.trades >= 2 and derived.wins >= 1 and derived.losses >= 1
    row = await db.fetchrow("SELECT * FROM module_metrics ORDER BY id DESC LIMIT 1")
    expected = metrics_row(derived, halted=halted, open_orders=0)
    columns = ["trades", "wins", "losses", "realized_pnl", "unrealized_pnl", "capital_in_use"]
    columns += ["max_drawdown", "win_rate", "profit_factor", "halted", "open_orders"]
    for column in columns:
        assert row[column] == expected[column], column
    assert json.loads(row["stats"]) == derived.as_json()
    assert await db.fetchval("SELECT count(*) FROM module_metrics") >= 3  # periodic ones too


async def test_trading_stops_while_the_database_is_down_and_resumes(
    db_url: str, pg_server: PgServer
) -> None:
    clock, market = FastClock(), WavePrice()
    paper = new_paper(clock, market)
    ledger = PgLedger(db_url, MODULE)
    host = ModuleHost(
        flipflop_spec(), name="m1", namespace="ns", market=market, clock=clock,
        broker=paper, ledger=ledger, module_class=FlipFlopModule,
    )  # fmt: skip
    stop = asyncio.Event()
    async with attach(
        host, ledger, PaperResolver(), probe_seconds=0.05, backoff_initial=0.05, backoff_max=0.4
    ) as persistence:
        task = asyncio.create_task(host.run(stop))
        await wait_for(lambda: paper.executions >= 20, what="20 orders")
        assert host.health()["status"] == "ok"

        await asyncio.to_thread(pg_server.stop, "fast")
        await wait_for(lambda: host.health()["status"] == "degraded", what="degraded")
        health = host.health()
        assert any(p.startswith("ledger:") for p in health["problems"]), health
        assert pg_server.password not in json.dumps(health)
        down_at = paper.executions
        ticks_at = host.module.ticks
        for _ in range(20):  # one second of ticks: every one of them sends nothing
            await asyncio.sleep(0.05)
            assert paper.executions == down_at
            assert host.health()["status"] == "degraded"
        assert host.module.ticks > ticks_at + 20  # the module kept deciding meanwhile

        await asyncio.to_thread(pg_server.start)
        await wait_for(lambda: host.health()["status"] == "ok", what="ok again")
        await wait_for(lambda: paper.executions >= down_at + 20, what="20 more orders")
        stop.set()
        await task
        assert persistence.outages >= 1
    # the ledger is complete: every execution once, each with the broker's numbers
    db = await asyncpg.connect(db_url)  # a new session: the server was restarted
    try:
        rows = {r["order_id"]: r for r in await db.fetch("SELECT * FROM orders")}
    finally:
        await db.close()
    executed = {f.order_id: f for f in paper.fills}
    assert len(paper.fills) == len(executed)
    filled = {k: r for k, r in rows.items() if r["status"] == "filled"}
    assert set(filled) == {k for k, f in executed.items() if f.status is OrderStatus.FILLED}
    for order_id, row in filled.items():
        fill = executed[order_id]
        assert (row["filled_quantity"], row["fill_price"], row["fee"]) == (
            fill.quantity,
            fill.price,
            fill.fee,
        )
    others = {r["status"] for k, r in rows.items() if k not in filled}
    assert others <= {"cancelled"}, others  # intents whose INSERT outcome was unknown
    assert not [r for r in rows.values() if r["status"] in ("pending", "sent")]
    print(
        f"outage: {len(executed)} orders executed, {down_at} before the outage, "
        f"{host.module.ticks} ticks, {persistence.outages} outage(s)"
    )
