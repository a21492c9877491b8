"""The operator's own Prometheus metrics (served by `--metrics-bind`)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RECONCILE_SECONDS = Histogram(
    "tradeplane_operator_reconcile_duration_seconds",
    "Time of one observe-decide-act pass for a module.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PROBES = Counter(
    "tradeplane_operator_probes_total",
    "Health probes of runtime pods, by result (ok, degraded, halted, or the failure cause).",
    ["result"],
)
RESTARTS = Counter(
    "tradeplane_operator_restarts_total", "Runtime pods replaced after a failure.", ["reason"]
)
BREAKER_TRANSITIONS = Counter(
    "tradeplane_operator_breaker_transitions_total",
    "Circuit breaker transitions, by the state entered.",
    ["state"],
)
STATUS_WRITES = Counter(
    "tradeplane_operator_status_writes_total", "Status patches written to TradingModules."
)


class ModulesByState(Collector):
    """`tradeplane_operator_modules{phase,health}`: computed at scrape time."""

    def __init__(self) -> None:
        self.states: dict[str, tuple[str, str]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "tradeplane_operator_modules",
            "Modules by phase and health.",
            labels=["phase", "health"],
        )
        for (phase, health), count in sorted(Tally(self.states.values()).items()):
            family.add_metric([phase, health], count)
        yield family


MODULES = ModulesByState()
REGISTRY.register(MODULES)
