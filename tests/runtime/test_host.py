"""ModuleHost: a paper run over a deterministic price series, end to end."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from module_runtime.clock import ManualClock
from module_runtime.host import ModuleHost
from module_runtime.ledger import InMemoryLedger
from module_runtime.market_data import PriceSeries
from module_runtime.modules.base import InvalidStrategyParams
from module_runtime.orders import OrderStatus, Side
from module_runtime.paper_broker import PaperBroker
from module_runtime.server import Observable
from module_runtime.trade_stats import compute_stats
from tradeplane_operator.api.models import MetricsSummary

from .conftest import make_spec

D = Decimal
PAIR = ("WETH", "USDC")
# flat (EMA warm-up), a dip and recovery (a win), a dip that keeps falling through the
# 5 % stop (a loss), recovery, another dip and recovery
PRICES = [
    *map(D, (100, 100, 100, 100, 97, 99, 101, 100, 100, 97, 95)),
    *map(D, (92, 90, 95, 100, 100, 100, 97, 98, 100, 100)),
]


def make_host(
    clock: ManualClock, prices: list[Decimal], **options: Any
) -> tuple[ModuleHost, PriceSeries, InMemoryLedger]:
    series = PriceSeries(clock, {PAIR: prices}, interval=timedelta(seconds=60))
    ledger = InMemoryLedger()
    spec = options.pop("spec", None) or make_spec()
    host = ModuleHost(
        spec, name="band", namespace="ns", market=series, clock=clock, ledger=ledger, **options
    )
    return host, series, ledger


async def run_until_done(host: ModuleHost, series: PriceSeries, ticks: int) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(host.run(stop))
    async with asyncio.timeout(10):
        while host.module.ticks < ticks and not task.done():  # noqa: ASYNC110 (polls a counter)
            await asyncio.sleep(0)
    stop.set()
    await task


async def test_paper_run_trades_with_consistent_metrics(clock: ManualClock) -> None:
    host, series, ledger = make_host(clock, PRICES)
    served: Observable = host  # what the runtime's HTTP server reads (checked by mypy)
    assert served.alive and not served.ready
    assert host.health()["status"] == "ok" and not host.ready
    await run_until_done(host, series, len(PRICES))
    assert series.exhausted and host.module.stopped

    trades = await ledger.closed_trades()
    positions = await ledger.positions()
    marks = host.order_path.state.marks
    stats = compute_stats(trades, capital=D(10_000), positions=positions, marks=marks)
    assert stats.trades >= 2 and stats.wins >= 1 and stats.losses >= 1
    assert stats == host.order_path.stats()
    assert await ledger.open_intents() == []
    assert isinstance(host.broker, PaperBroker)
    assert host.broker.executions == len(ledger.intents())
    assert all(f.status is OrderStatus.FILLED for f in host.broker.fills)

    summary = host.summary()
    MetricsSummary.model_validate(summary)  # the operator can read it
    assert summary["trades"] == stats.trades
    # the summary shows money to 6 places, rounded half-even from the exact ledger sum
    assert D(summary["realizedPnl"]) == sum((t.pnl for t in trades), D(0)).quantize(D("1E-6"))

    families = {
        f.name: f.samples[0].value
        for f in text_string_to_metric_families(generate_latest(host.registry).decode())
        if f.samples and f.name.startswith("tradeplane_module_") and len(f.samples) == 1
    }
    assert families["tradeplane_module_trades"] == stats.trades
    assert families["tradeplane_module_wins"] == stats.wins
    assert families["tradeplane_module_realized_pnl"] == pytest.approx(float(stats.realized_pnl))
    assert host.health()["status"] == "ok"


async def test_stop_loss_exits_a_falling_position(clock: ManualClock) -> None:
    prices = [D(p) for p in ["100", "100", "100", "100", "97", "94", "91", "88", "85", "80"]]
    host, series, ledger = make_host(clock, prices)
    await run_until_done(host, series, len(prices))
    # in at 97 (+ slippage and fee), stopped out at 91 (the first mark below the 5 % stop)
    first, *others = await ledger.closed_trades()
    assert first.exit_price == D("90.909")  # 91 less 10 bps slippage
    for trade in (first, *others):
        assert trade.pnl < 0 and trade.exit_price <= trade.entry_price * D("0.95")
    # no re-entry on the tick of the stop: the next buy comes a tick later, at 88
    entries = [o.price for o in ledger.intents() if o.side is Side.BUY]
    assert entries[:2] == [D(97), D(88)]


async def test_paused_spec_opens_nothing(clock: ManualClock) -> None:
    host, series, _ = make_host(clock, PRICES, spec=make_spec(paused=True))
    await run_until_done(host, series, len(PRICES))
    assert host.summary()["trades"] == 0
    assert host.order_path.paused and host.health()["paused"]


async def test_start_halted_and_health(clock: ManualClock) -> None:
    host, series, _ = make_host(clock, PRICES, start_halted="ops")
    health = host.health()
    assert health["status"] == "halted" and health["halt"]["message"] == "ops"
    await run_until_done(host, series, len(PRICES))
    assert host.summary()["trades"] == 0 and host.alive


def test_construction_fails_before_any_order(clock: ManualClock) -> None:
    bad = make_spec(strategy={"base": "WETH", "quote": "USDC", "orderSize": "1", "emaPeriod": 0})
    with pytest.raises(InvalidStrategyParams, match=r"strategy\.emaPeriod"):
        make_host(clock, PRICES, spec=bad)
    live = make_spec(mode="live", walletSecretRef={"name": "wallet", "key": "pk"})
    with pytest.raises(ValueError, match="live mode needs a broker"):
        make_host(clock, PRICES, spec=live)
