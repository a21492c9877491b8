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
RECONCILE_ERRORS = Counter(
    "tradeplane_operator_reconcile_errors_total",
    "Reconcile passes that raised (the daemon retries them), by exception type.",
    ["error"],
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


class ModuleStates(Collector):
    """Per-module state sets, for the alert rules and the fleet dashboard.

    `tradeplane_operator_module_phase{namespace,module,phase}`,
    `..._module_health{namespace,module,health}` and
    `..._module_breaker_state{namespace,module,state}`: 1 for the module's current value,
    0 for the others (the kube-state-metrics convention), so `== 1` selects and a
    change of state never leaves a stale series behind.
    """

    PHASES = ("Pending", "Running", "Disabled", "Failed")
    HEALTHS = ("Healthy", "Unhealthy", "Unknown")
    BREAKER = ("closed", "open", "half-open")

    def __init__(self) -> None:
        # uid -> (namespace, name, phase, health, breaker state)
        self.modules: dict[str, tuple[str, str, str, str, str]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sets = (
            ("phase", "Modules' phase (1 = current).", 2, self.PHASES),
            ("health", "Modules' health (1 = current).", 3, self.HEALTHS),
            ("breaker_state", "Modules' circuit breaker state (1 = current).", 4, self.BREAKER),
        )
        rows = sorted(self.modules.values())
        for name, doc, index, values in sets:
            label = "state" if name == "breaker_state" else name
            family = GaugeMetricFamily(
                f"tradeplane_operator_module_{name}", doc, labels=["namespace", "module", label]
            )
            for row in rows:
                for value in values:
                    family.add_metric([row[0], row[1], value], 1 if row[index] == value else 0)
            yield family


MODULE_STATES = ModuleStates()
REGISTRY.register(MODULE_STATES)
