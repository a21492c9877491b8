"""`make bench`: speed and memory of the hot paths, as ratios to a baseline.

Absolute times depend on the machine and on what else it is doing, so every result is
printed next to a baseline measured in the same run: a fixed pure-Python Decimal
workload for speed, and a bare interpreter's RSS for memory. Compare ratios across
commits, not seconds. No test asserts on these numbers.

    python -m bench            # all
    python -m bench decide     # the ones whose name contains "decide"
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from module_runtime.clock import ManualClock
from module_runtime.ledger import InMemoryLedger
from module_runtime.order_path import OrderPath
from module_runtime.orders import Order, Side
from module_runtime.paper_broker import PaperBroker, PriceQuotes
from module_runtime.positions import ClosedTrade
from module_runtime.risk import RiskLimits, RiskState, check
from module_runtime.trade_stats import compute_stats
from tradeplane_operator import resources
from tradeplane_operator.api.models import TradingModuleSpec, TradingModuleStatus
from tradeplane_operator.decisions import Observation, PodView, Probe, decide

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = TradingModuleSpec.model_validate(
    {
        "type": "dex_trading",
        "capital": {"allocation": "100000"},
        "risk": {"maxPositionSize": "5000", "maxDailyLoss": "2000", "maxOpenPositions": 5},
    }
)


def best_of(fn: Callable[[], object], *, repeat: int = 5, number: int = 200) -> float:
    """Seconds per call: the best of `repeat` runs of `number` calls (least noise)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def baseline() -> None:
    """Fixed work: 200 Decimal multiply-adds, the kind of arithmetic the hot paths do."""
    total = Decimal(0)
    step = Decimal("1.0001")
    for i in range(200):
        total = total * step + i


# ---- speed -------------------------------------------------------------------------------


def bench_decide() -> Callable[[], object]:
    module = resources.ModuleRef("dex", "ns", "uid", 1)
    pod = PodView("dex-runtime", "p", "Running", True, False, "h", "127.0.0.2")
    status = decide(
        Observation(module, SPEC, TradingModuleStatus(), [pod], "h", NOW, "dex-runtime")
    ).status
    probe = Probe(cause="ok", at=NOW)
    obs = Observation(module, SPEC, status, [pod], "h", NOW, "dex-runtime", probe)
    return lambda: decide(obs)


def bench_risk_check() -> Callable[[], object]:
    limits = RiskLimits.from_spec(SPEC.risk, SPEC.capital)
    state = RiskState.initial(limits, NOW)
    order = Order("paper", Side.BUY, "WETH", "USDC", Decimal("1.5"), Decimal("3000"))
    return lambda: check(order, state, limits)


def bench_order_path() -> Callable[[], object]:
    """One buy and one sell through risk, ledger, paper broker, ledger, metrics."""
    clock = ManualClock(NOW)
    price = Decimal("3000")

    async def quote(base: str, quote: str) -> Decimal:
        return price

    path = OrderPath(
        broker=PaperBroker(PriceQuotes(quote), clock=clock),
        ledger=InMemoryLedger(),
        limits=RiskLimits.from_spec(SPEC.risk, SPEC.capital),
        clock=clock,
    )
    loop = asyncio.new_event_loop()

    async def round_trip() -> None:
        bought = await path.submit(Order("paper", Side.BUY, "WETH", "USDC", Decimal("0.5"), price))
        await path.submit(
            Order("paper", Side.SELL, "WETH", "USDC", bought.quantity, price, reduces_position=True)
        )
        clock.advance(timedelta(seconds=1))

    return lambda: loop.run_until_complete(round_trip())


def bench_trade_stats() -> Callable[[], object]:
    trades = [
        ClosedTrade(pnl=Decimal((i * 37) % 200 - 90) / 10, capital=Decimal(1000))
        for i in range(1000)
    ]
    return lambda: compute_stats(trades, capital=Decimal(100000))


def bench_crd_render() -> Callable[[], object]:
    from tradeplane_operator.api import crd

    return crd.render


SPEED: dict[str, tuple[Callable[[], Callable[[], object]], int]] = {
    "decide (one reconcile decision)": (bench_decide, 200),
    "risk.check (one order)": (bench_risk_check, 500),
    "order_path (buy+sell, paper)": (bench_order_path, 50),
    "trade_stats (1000 trades)": (bench_trade_stats, 5),
    "crd.render (whole CRD)": (bench_crd_render, 5),
}


# ---- latency: p99 of one order through the order path -----------------------------------


def order_latencies(futures: bool, orders: int = 1000) -> list[float]:
    """Seconds per order (open or close, alternating) through risk, ledger, paper broker,
    ledger, metrics: spot on `PaperBroker`, or a perpetual on `PaperFuturesBroker`."""
    from module_runtime.futures.paper import FundingSeries, PaperFuturesBroker
    from module_runtime.futures.tiers import default_tables
    from module_runtime.orders import Market

    clock = ManualClock(NOW)
    price = Decimal("3000")

    async def quote(base: str, quote: str) -> Decimal:
        return price

    class Feed:
        async def price(self, base: str, quote: str) -> Decimal:
            return price

    limits = RiskLimits.from_spec(SPEC.risk, SPEC.capital)
    if futures:
        tiers = default_tables()
        broker: object = PaperFuturesBroker(
            Feed(), tiers, FundingSeries([Decimal("0.0001")], timedelta(hours=8)), clock=clock
        )
        limits = RiskLimits.from_spec(
            SPEC.risk.model_copy(update={"max_leverage": Decimal(5)}), SPEC.capital
        )
    else:
        broker = PaperBroker(PriceQuotes(quote), clock=clock)
    limits = dataclasses.replace(limits, max_daily_loss=limits.allocation)  # fees add up
    path = OrderPath(broker=broker, ledger=InMemoryLedger(), limits=limits, clock=clock)  # type: ignore[arg-type]
    if futures:
        path.use_tiers(tiers)
    loop = asyncio.new_event_loop()
    times: list[float] = []

    async def run() -> None:
        for i in range(orders):
            base, quote_ = ("ETH", "USDT") if futures else ("WETH", "USDC")
            if i % 2 == 0:
                order = Order("paper", Side.BUY, base, quote_, Decimal("0.5"), price)
                if futures:
                    order = Order(
                        "paper",
                        Side.BUY,
                        base,
                        quote_,
                        Decimal("0.5"),
                        price,
                        leverage=Decimal(3),
                        market=Market.PERP,
                    )
            else:
                (held,) = path.positions()
                order = Order(
                    "paper",
                    Side.SELL,
                    base,
                    quote_,
                    held.quantity,
                    price,
                    leverage=held.leverage,
                    reduces_position=True,
                    market=Market.PERP if futures else Market.SPOT,
                )
            start = time.perf_counter()
            fill = await path.submit(order)
            times.append(time.perf_counter() - start)
            assert fill.status.value == "filled", fill
            clock.advance(timedelta(seconds=1))

    loop.run_until_complete(run())
    loop.close()
    return times


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


LATENCY = {
    "order_path p99 (one spot order, paper)": False,
    "order_path p99 (one futures order, paper)": True,
}


# ---- memory ------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def settled_rss(cmd: list[str], env: dict[str, str], seconds: float) -> int:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(seconds)
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd} exited {proc.returncode}")
        return rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def memory() -> list[tuple[str, float, float]]:
    env = dict(os.environ)
    base = settled_rss([sys.executable, "-c", "import time; time.sleep(30)"], env, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "module.json"
        config.write_text(
            json.dumps(
                {
                    "metadata": {"name": "bench", "namespace": "bench"},
                    "spec": {
                        **SPEC.model_dump(mode="json", by_alias=True, exclude_none=True),
                        "strategy": {"base": "WETH", "quote": "USDC", "orderSize": "500"},
                    },
                }
            )
        )
        env.update(
            TRADEPLANE_CONFIG_FILE=str(config),
            TRADEPLANE_LISTEN_ADDRESS="127.0.0.250",
            TRADEPLANE_PORT="18099",
        )
        runtime = settled_rss(
            [str(Path(sys.executable).parent / "tradeplane-runtime"), "run"], env, 4.0
        )
    return [("runtime process RSS (idle, paper)", runtime / 1024, runtime / base)]


def main(argv: list[str]) -> None:
    wanted = argv[0] if argv else ""
    base = best_of(baseline, number=200)
    print(f"baseline: {base * 1e6:.1f} us per call (200 Decimal multiply-adds)\n")
    print(f"{'benchmark':40} {'per call':>12} {'x baseline':>11}")
    for name, (make, number) in SPEED.items():
        if wanted not in name:
            continue
        per_call = best_of(make(), number=number)
        print(f"{name:40} {per_call * 1e6:>9.1f} us {per_call / base:>11.2f}")
    print(
        f"\n{'latency (1000 orders, history grows)':40} {'p99':>12} {'x baseline':>11} {'p50':>12}"
    )
    for name, futures in LATENCY.items():
        if wanted not in name:
            continue
        gc.collect()
        samples = order_latencies(futures)
        value, median = p99(samples), statistics.median(samples)
        print(f"{name:40} {value * 1e6:>9.1f} us {value / base:>11.2f} {median * 1e6:>9.1f} us")
    if wanted in "memory":
        print(f"\n{'memory':40} {'MiB':>12} {'x bare python':>13}")
        for name, mib, ratio in memory():
            print(f"{name:40} {mib:>12.1f} {ratio:>13.2f}")
    if wanted in "backtest":
        from bench import backtest  # pandas: a dev/bench dependency only

        backtest.main()
    spread = statistics.pstdev([best_of(baseline, repeat=1) for _ in range(5)]) / base
    print(f"\nbaseline noise this run: {spread:.1%} (ratios are that good at best)")


if __name__ == "__main__":
    main(sys.argv[1:])
