"""`ModuleHost`: one TradingModule spec wired into a running module.

    spec -> registry module class
         -> OrderPath(risk limits, ledger, broker, clock, metrics)
         -> module.run(stop)

The runtime process (cli/server) builds one host and serves `health()`, `summary()`
and `registry` (it satisfies `module_runtime.server.Observable`). Paper and backtest
modes default to a `PaperBroker` quoting from the module's market data and an
`InMemoryLedger`; live mode needs a real broker (the chain client's) and refuses to
start without one. Invalid strategy parameters or an unknown module fail here, in the
constructor, before any order.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from module_runtime.clock import Clock, SystemClock
from module_runtime.ledger import InMemoryLedger, Ledger
from module_runtime.market_data import MarketData
from module_runtime.modules.base import BaseModule
from module_runtime.modules.registry import module_class_for
from module_runtime.order_path import OrderPath
from module_runtime.orders import Broker
from module_runtime.paper_broker import PaperBroker, PriceQuotes
from module_runtime.prom import ModuleMetrics, summary_json
from module_runtime.risk import HaltReason, RiskLimits
from tradeplane_operator.api.models import Mode, TradingModuleSpec

if TYPE_CHECKING:
    from module_runtime.db.signals import SignalBus

log = logging.getLogger(__name__)


class ModuleHost:
    def __init__(
        self,
        spec: TradingModuleSpec,
        *,
        name: str,
        namespace: str,
        market: MarketData,
        clock: Clock | None = None,
        broker: Broker | None = None,
        ledger: Ledger | None = None,
        registry: CollectorRegistry | None = None,
        module_class: type[BaseModule[Any]] | None = None,
        fee_bps: Decimal = Decimal(30),
        slippage_bps: Decimal = Decimal(10),
        start_halted: str | None = None,
        signals: SignalBus | None = None,
        portfolio_halt: str | None = None,
    ) -> None:
        """`broker`/`ledger` default to paper ones (not in live mode); `module_class`
        defaults to the registry's class for the spec; `start_halted` starts halted with
        that reason (the operator's TRADEPLANE_START_HALTED); `signals` is the module's
        `self.signals` (its counters go on this host's registry; the caller runs it)."""
        self.spec = spec
        self.name = name
        self.namespace = namespace
        self.clock: Clock = clock or SystemClock()
        cls = module_class or module_class_for(spec)
        own_paper = getattr(cls, "paper_broker", None)  # e.g. futures: perpetual fills
        if broker is None:
            if spec.mode is Mode.LIVE:
                raise ValueError("live mode needs a broker (module_runtime.chain): none given")
            if own_paper is not None:
                broker = own_paper(spec, market, self.clock)
        if broker is None:
            broker = PaperBroker(
                PriceQuotes(market.price),
                fee_bps=fee_bps,
                slippage_bps=slippage_bps,
                clock=self.clock,
            )
        self.broker = broker
        self.ledger: Ledger = ledger if ledger is not None else InMemoryLedger()
        self.metrics = ModuleMetrics(
            module=name, namespace=namespace, module_type=spec.type.value, registry=registry
        )
        self.registry = self.metrics.registry
        self.order_path = OrderPath(
            broker=self.broker,
            ledger=self.ledger,
            limits=RiskLimits.from_spec(spec.risk, spec.capital),
            clock=self.clock,
            metrics=self.metrics,
        )
        if start_halted:
            self.order_path.halt(HaltReason.MANUAL.value, start_halted)
        if portfolio_halt:
            self.order_path.set_portfolio_halt(portfolio_halt, "at start (pod environment)")
        self.module = cls(
            name=name,
            spec=spec,
            order_path=self.order_path,
            market=market,
            clock=self.clock,
            venue=self.broker.name,
        )
        self.signals = signals
        if signals is not None:
            signals.attach_metrics(self.registry, self.metrics.labels)
            self.module.signals = signals
        self._crash: str | None = None

    # ---- what the server reads -------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.module.started and not self.module.stopped

    @property
    def alive(self) -> bool:
        """False only when the module loop died of an error (not for halts)."""
        return self._crash is None

    def health(self) -> dict[str, Any]:
        """`status`: "halted" (with reason) > "degraded" (with problems) > "ok"."""
        problems = self.order_path.problems()
        if self._crash is not None:
            problems.insert(0, f"module loop died: {self._crash}")
        if self.module.consecutive_errors:
            problems.append(
                f"{self.module.consecutive_errors} tick(s) failed in a row: "
                f"{self.module.last_error}"
            )
        body: dict[str, Any] = {
            "status": "ok",
            "mode": self.spec.mode.value,
            "paused": self.order_path.paused,
            "ticks": self.module.ticks,
        }
        halt = self.order_path.halt_info
        if halt is not None:
            body["status"] = "halted"
            body["halt"] = {
                "reason": halt.reason,
                "message": halt.message,
                "since": halt.since.isoformat(),
            }
        elif problems:
            body["status"] = "degraded"
        portfolio_halt = self.order_path.portfolio_halt
        # Not a status of its own: a portfolio halt is the operator's, not the module's.
        body["portfolioHalt"] = (
            None
            if portfolio_halt is None
            else {
                "reason": portfolio_halt.reason,
                "message": portfolio_halt.message,
                "since": portfolio_halt.since.isoformat(),
            }
        )
        if problems:
            body["problems"] = problems
        return body

    def summary(self) -> dict[str, Any]:
        """The `MetricsSummary` JSON (decimal strings) for the resource status."""
        return summary_json(self.order_path.stats())

    # ---- control ---------------------------------------------------------------------

    def pause(self) -> None:
        self.module.pause()

    def unpause(self) -> None:
        self.module.resume()

    def halt(self, reason: str) -> None:
        self.order_path.halt(HaltReason.MANUAL.value, reason)

    def set_portfolio_halt(self, reason: str | None, message: str = "") -> None:
        """The operator's portfolio halt (None: lifted); idempotent."""
        self.order_path.set_portfolio_halt(reason, message)

    def set_paused(self, paused: bool) -> None:
        """spec.paused, as the operator relays it; idempotent."""
        if paused:
            self.module.pause()
        else:
            self.module.resume()

    def resume_halt(self) -> None:
        """Clear a risk halt: a person's decision (operator annotation)."""
        self.order_path.resume()

    async def run(self, stop: asyncio.Event) -> None:
        """Run the module until `stop` is set; then it stops cleanly (ledger flushed)."""
        try:
            await self.module.run(stop)
        except Exception as error:
            self._crash = repr(error)
            log.exception("module loop died", extra={"module_name": self.name})
            raise


async def run_module(
    spec: TradingModuleSpec,
    *,
    name: str,
    namespace: str,
    market: MarketData,
    stop: asyncio.Event,
    **options: Any,
) -> ModuleHost:
    """Build a `ModuleHost` (see its keyword options) and run it until `stop` is set."""
    host = ModuleHost(spec, name=name, namespace=namespace, market=market, **options)
    await host.run(stop)
    return host
