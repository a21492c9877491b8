"""The futures_trading module through the host: a long and a short round trip on a
scripted price series, its position gauges, funding booked as the clock passes a
funding time, and the stop loss on a short."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from module_runtime.clock import ManualClock
from module_runtime.futures.events import EventKind
from module_runtime.futures.margin import Direction, liquidation_price
from module_runtime.futures.paper import FundingSeries
from module_runtime.futures.tiers import default_tables
from module_runtime.host import ModuleHost
from module_runtime.market_data import PriceSeries
from module_runtime.positions import PositionSide
from tradeplane_operator.api.models import TradingModuleSpec

D = Decimal
SAMPLE: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "config/samples/futures_trading.yaml").read_text()
)
T0 = datetime(2026, 1, 5, 7, 59, 45, tzinfo=UTC)  # 8:00 UTC (a funding time) is 15 s away


def host_for(prices: list[str], **strategy: Any) -> tuple[ModuleHost, ManualClock]:
    doc = copy.deepcopy(SAMPLE["spec"])
    doc["strategy"].update({"emaPeriod": 2, "bandPercent": 1, "tickSeconds": 5, **strategy})
    spec = TradingModuleSpec.model_validate(doc)
    clock = ManualClock(T0)
    market = PriceSeries(
        clock, {("BTC", "USDC"): [D(p) for p in prices]}, interval=timedelta(seconds=5)
    )
    return ModuleHost(spec, name="f", namespace="ns", market=market, clock=clock), clock


async def run(host: ModuleHost, clock: ManualClock, steps: int) -> None:
    if not host.module.started:
        await host.module.start()
    for _ in range(steps):
        await host.module.step()
        clock.advance(timedelta(seconds=5))


async def test_long_then_short_round_trips() -> None:
    # warm-up at 30000, a dip (long), back to the mean (close), a spike (short), back
    host, clock = host_for(["30000", "30000", "29000", "30000", "30000", "31000", "30000"])
    await run(host, clock, 3)
    (position,) = host.order_path.positions()
    assert position.side is PositionSide.LONG and position.leverage == D(3)
    assert position.quantity == D("0.034")  # 1000 / 29000, 3 decimals, rounded down
    # the gauges: the liquidation price of this position by the exchange's formula
    (collector,) = host.module.metric_collectors(host.metrics.labels)  # type: ignore[attr-defined]
    families = {f.name: f for f in collector.collect()}
    (sample,) = families["tradeplane_futures_liquidation_price"].samples
    expected = liquidation_price(
        Direction.LONG,
        position.quantity,
        position.avg_cost,
        position.margin,
        default_tables()[("BTC", "USDC")],
    )
    assert D(str(sample.value)).quantize(D("0.01")) == expected.quantize(D("0.01"))
    assert sample.labels["pair"] == "BTC/USDC" and sample.labels["side"] == "long"
    await run(host, clock, 1)
    assert host.order_path.positions() == []
    await run(host, clock, 2)
    (short,) = host.order_path.positions()
    assert short.side is PositionSide.SHORT
    await run(host, clock, 1)
    assert host.order_path.positions() == []
    long_trade, short_trade = await host.ledger.closed_trades()
    assert long_trade.side is PositionSide.LONG and long_trade.pnl > 0
    assert short_trade.side is PositionSide.SHORT and short_trade.pnl > 0
    # 8:00 passed while the long was open: one funding payment, in realized PnL
    funding = [e for e in await host.ledger.events() if e.kind is EventKind.FUNDING]
    (paid,) = funding
    rates = [D(r) for r in SAMPLE["spec"]["strategy"]["fundingRates"]]
    rate = FundingSeries(rates, timedelta(hours=8)).rate(paid.at)
    assert paid.at == datetime(2026, 1, 5, 8, tzinfo=UTC)
    assert paid.amount == -D("0.034") * D(30000) * rate  # the long pays at the 8:00 mark
    stats = host.order_path.stats()
    assert stats.realized_pnl == long_trade.pnl + short_trade.pnl + sum(e.amount for e in funding)
    assert stats.trades == 2 and stats.liquidations == 0
    assert host.health()["status"] == "ok"


async def test_a_short_is_stopped_out_above_entry() -> None:
    # a spike opens a short; the price keeps rising past the 2 % stop: closed by the stop
    host, clock = host_for(["30000", "30000", "31000", "31500", "32000", "32000"])
    await run(host, clock, 3)
    (short,) = host.order_path.positions()
    assert short.side is PositionSide.SHORT
    await run(host, clock, 2)
    assert host.order_path.positions() == []
    (trade,) = await host.ledger.closed_trades()
    assert trade.pnl < 0 and trade.exit_price >= short.avg_cost * D("1.02")
