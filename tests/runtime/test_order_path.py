"""OrderPath with a real PaperBroker, InMemoryLedger and metrics registry."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from module_runtime.clock import ManualClock
from module_runtime.ledger import InMemoryLedger
from module_runtime.order_path import OrderPath
from module_runtime.orders import Fill, Order, OrderStatus
from module_runtime.paper_broker import PaperBroker, PriceQuotes
from module_runtime.prom import ModuleMetrics
from module_runtime.risk import RejectReason, RiskLimits

from .conftest import MutablePrice, buy, make_limits, sell

D = Decimal


class Rig:
    """The real pieces of an order path, with a price the test moves."""

    def __init__(self, clock: ManualClock, limits: RiskLimits | None = None) -> None:
        self.price = MutablePrice("1000")
        self.ledger = InMemoryLedger()
        self.broker = PaperBroker(PriceQuotes(self.price), fee_bps=D(0), clock=clock)
        self.metrics = ModuleMetrics(module="m1", namespace="ns", module_type="custom")
        self.path = OrderPath(
            broker=self.broker,
            ledger=self.ledger,
            limits=limits or make_limits(),
            clock=clock,
            metrics=self.metrics,
        )

    def metrics_text(self) -> str:
        return generate_latest(self.metrics.registry).decode()


def code(fill: Fill) -> str:
    assert fill.status is OrderStatus.REJECTED and fill.reason is not None
    return fill.reason.split(":", 1)[0]


async def test_a_rejected_order_never_reaches_the_broker(clock: ManualClock) -> None:
    rig = Rig(clock)
    fill = await rig.path.submit(buy("5", "1000"))  # 5000 > max position size 2000
    assert code(fill) == RejectReason.MAX_POSITION_SIZE
    assert rig.broker.executions == 0
    assert rig.ledger.intents() == []
    [rejection] = rig.ledger.rejections()
    assert rejection.reason.startswith("max_position_size: ")


async def test_intent_is_recorded_before_the_broker_is_called(clock: ManualClock) -> None:
    rig = Rig(clock)
    seen: list[list[Order]] = []

    class InspectingBroker:
        name = "inspecting"

        async def execute(self, order: Order) -> Fill:
            seen.append(await rig.ledger.open_intents())
            return await rig.broker.execute(order)

    path = OrderPath(
        broker=InspectingBroker(), ledger=rig.ledger, limits=make_limits(), clock=clock
    )
    order = buy("1", "1000")
    fill = await path.submit(order)
    assert fill.status is OrderStatus.FILLED
    assert seen == [[order]]
    assert await rig.ledger.open_intents() == []


async def test_a_duplicate_outcome_is_idempotent(clock: ManualClock) -> None:
    rig = Rig(clock)
    await rig.path.submit(buy("1", "1000"))
    rig.price.value = D(1100)
    fill = await rig.path.submit(sell("1", "1100"))
    before = rig.path.stats()
    await rig.ledger.record_outcome(fill)  # delivered again
    await rig.path.restore()
    assert rig.path.stats() == before
    assert before.trades == 1 and before.realized_pnl == D(100)


async def test_fills_update_positions_capital_and_pnl(clock: ManualClock) -> None:
    rig = Rig(clock)
    await rig.path.submit(buy("1.5", "1000"))
    assert rig.path.state.capital_in_use == D(1500)
    rig.path.mark("WETH", "USDC", D(900))
    assert rig.path.stats().unrealized_pnl == D(-150)
    rig.price.value = D(900)
    await rig.path.submit(sell("1.5", "900"))
    stats = rig.path.stats()
    assert (stats.trades, stats.losses, stats.realized_pnl) == (1, 1, D(-150))
    assert rig.path.state.realized_pnl_today == D(-150)
    assert rig.path.state.capital_in_use == 0


async def test_submissions_are_serialized(clock: ManualClock) -> None:
    # two 600 buys on 1000 of capital: without the lock both would pass the capital
    # check while the first waits for its quote
    async def slow(base: str, quote: str) -> Decimal:
        await asyncio.sleep(0)
        return D(1000)

    limits = make_limits(allocation=D(1000), max_position_size=D(1000), max_daily_loss=D(1000))
    rig = Rig(clock, limits)
    rig.path = OrderPath(
        broker=PaperBroker(PriceQuotes(slow), fee_bps=D(0), clock=clock),
        ledger=rig.ledger,
        limits=limits,
        clock=clock,
    )
    first, second = await asyncio.gather(
        rig.path.submit(buy("0.6", "1000")), rig.path.submit(buy("0.6", "1000", base="WBTC"))
    )
    assert first.status is OrderStatus.FILLED
    assert code(second) == RejectReason.INSUFFICIENT_CAPITAL


async def test_a_raising_broker_leaves_the_intent_open(clock: ManualClock) -> None:
    class Exploding:
        name = "exploding"
        calls = 0

        async def execute(self, order: Order) -> Fill:
            self.calls += 1
            raise TimeoutError("rpc timed out after broadcast")

    ledger = InMemoryLedger()
    path = OrderPath(broker=Exploding(), ledger=ledger, limits=make_limits(), clock=clock)
    order = buy("1", "1000")
    fill = await path.submit(order)  # does not raise
    assert fill.status is OrderStatus.PENDING and "outcome unknown" in (fill.reason or "")
    assert await ledger.open_intents() == [order]
    assert path.state.reserved == D(1000)  # still counted against capital
    assert path.errors == 1 and any("unknown outcome" in p for p in path.problems())


async def test_halt_on_daily_loss_blocks_everything_until_resume(clock: ManualClock) -> None:
    limits = make_limits(max_daily_loss=D(100))
    rig = Rig(clock, limits)
    await rig.path.submit(buy("1", "1000"))
    await rig.path.submit(buy("0.5", "1000"))
    rig.price.value = D(850)
    await rig.path.submit(sell("1", "850"))  # realizes -150: breach
    assert rig.path.halted and rig.path.halt_info is not None
    assert rig.path.halt_info.reason == "max_daily_loss"
    assert code(await rig.path.submit(buy("0.1", "850"))) == RejectReason.HALTED
    assert code(await rig.path.submit(sell("0.5", "850", reduces_position=True))) == "halted"
    executions = rig.broker.executions
    rig.path.resume()
    fill = await rig.path.submit(sell("0.5", "850", reduces_position=True))
    assert fill.status is OrderStatus.FILLED and rig.broker.executions == executions + 1
    assert "tradeplane_module_halted" in rig.metrics_text()


async def test_halt_on_drawdown_blocks_everything_until_resume(clock: ManualClock) -> None:
    rig = Rig(clock, make_limits(max_drawdown_percent=D(10)))
    await rig.path.submit(buy("2", "1000"))
    rig.path.mark("WETH", "USDC", D(600))  # equity 10000 - 800: 8 % down
    assert not rig.path.halted
    rig.path.mark("WETH", "USDC", D(400))  # equity 10000 - 1200: 12 % down
    assert rig.path.halt_info is not None and rig.path.halt_info.reason == "max_drawdown"
    rig.path.mark("WETH", "USDC", D(1000))  # recovering does not lift a halt
    assert code(await rig.path.submit(sell("2", "1000", reduces_position=True))) == "halted"
    assert code(await rig.path.submit(buy("1", "1000"))) == "halted"
    rig.path.resume()
    assert not rig.path.halted
    assert (await rig.path.submit(sell("2", "1000"))).status is OrderStatus.FILLED


async def test_paused_rejects_new_exposure(clock: ManualClock) -> None:
    rig = Rig(clock)
    await rig.path.submit(buy("1", "1000"))
    rig.path.set_paused(True)
    assert code(await rig.path.submit(buy("1", "1000"))) == RejectReason.PAUSED
    assert (await rig.path.submit(sell("1", "1000"))).status is OrderStatus.FILLED


async def test_metrics_text(clock: ManualClock) -> None:
    rig = Rig(clock)
    await rig.path.submit(buy("1", "1000"))
    rig.price.value = D(1100)
    await rig.path.submit(sell("1", "1100"))  # +100: one winning trade
    await rig.path.submit(sell("1", "1100"))  # nothing left: rejected
    text = rig.metrics_text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    base = (("module", "m1"), ("namespace", "ns"), ("type", "custom"))

    def value(name: str, **extra: str) -> float:
        return samples[(name, tuple(sorted((*base, *extra.items()))))]

    assert value("tradeplane_module_trades_total") == 1
    assert value("tradeplane_module_wins_total") == 1
    assert value("tradeplane_module_losses_total") == 0
    assert value("tradeplane_module_orders_total", status="filled") == 2
    assert value("tradeplane_module_orders_total", status="rejected") == 1
    assert value("tradeplane_module_orders_rejected_total", reason="short_not_supported") == 1
    assert value("tradeplane_module_orders_rejected_total", reason="halted") == 0
    assert value("tradeplane_module_realized_pnl") == 100
    assert value("tradeplane_module_unrealized_pnl") == 0
    assert value("tradeplane_module_win_rate_ratio") == 1
    assert value("tradeplane_module_profit_factor") == math.inf
    assert value("tradeplane_module_max_drawdown") == 0
    assert value("tradeplane_module_max_drawdown_ratio") == 0
    assert math.isnan(value("tradeplane_module_sharpe_ratio"))  # one trade: undefined
    assert value("tradeplane_module_capital_in_use") == 0
    assert value("tradeplane_module_halted") == 0
    rig.path.halt("manual", "test")
    assert 'tradeplane_module_halted{module="m1",namespace="ns",type="custom"} 1.0' in (
        rig.metrics_text()
    )
