"""The Grafana dashboards (charts/tradeplane/dashboards/) against the runtime and operator.

The per-module dashboard (tradeplane.json) draws the runtime's series; the fleet
dashboard (fleet.json) adds the operator's per-module state sets (health, breaker state,
phase). Every test below runs over both.

Every metric name, label and variable the dashboard uses must exist in the real `/metrics`
output of a paper-mode `ModuleHost`: renaming a metric in module_runtime/prom.py, or
dropping a label, breaks this test instead of leaving an empty panel in production.

The `prometheus`-marked test goes further: a real Prometheus scrapes a real
`tradeplane-runtime run` process and evaluates every dashboard expression through its
HTTP API; each must return at least one series.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from module_runtime.clock import ManualClock
from module_runtime.host import ModuleHost
from module_runtime.market_data import PriceSeries
from tests.runtime.conftest import T0, make_spec

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "tradeplane" / "dashboards" / "tradeplane.json"
FLEET = ROOT / "charts" / "tradeplane" / "dashboards" / "fleet.json"
SAMPLE = ROOT / "config" / "samples" / "custom.yaml"

# What the dashboard is for: one panel at least over each of these (the runtime's names).
REQUIRED = {
    "tradeplane_module_realized_pnl",
    "tradeplane_module_unrealized_pnl",
    "tradeplane_module_win_rate_ratio",
    "tradeplane_module_max_drawdown",
    "tradeplane_module_capital_in_use",
    "tradeplane_module_trades_total",
    "tradeplane_module_orders_rejected_total",
    "tradeplane_module_halted",
}
SERIES_LABELS = {"module", "namespace", "type"}
# The fleet dashboard: PnL, capital, health and breaker state by module and namespace.
FLEET_REQUIRED = {
    "tradeplane_module_realized_pnl",
    "tradeplane_module_unrealized_pnl",
    "tradeplane_module_capital_in_use",
    "tradeplane_operator_module_health",
    "tradeplane_operator_module_breaker_state",
}
# The operator's per-module series carry the module's identity but not its type.
OPERATOR_LABELS = {"module", "namespace"}
DASHBOARDS = {
    "modules": (DASHBOARD, REQUIRED, ("namespace", "module")),
    "fleet": (FLEET, FLEET_REQUIRED, ("namespace",)),
}


@pytest.fixture(params=sorted(DASHBOARDS))
def dashboard(request: pytest.FixtureRequest) -> Path:
    path: Path = DASHBOARDS[request.param][0]
    return path


def expected_labels(metric: str) -> set[str]:
    return OPERATOR_LABELS if metric.startswith("tradeplane_operator_") else SERIES_LABELS


def operator_module_states(namespace: str) -> None:
    """What the operator's handlers record for a running module (operator/handlers.py)."""
    from tradeplane_operator import metrics

    metrics.MODULE_STATES.modules["dashboard-uid"] = (
        namespace,
        "band",
        "Running",
        "Healthy",
        "closed",
    )


# PromQL words that are not metric names: functions, aggregations, keywords.
_PROMQL_WORDS = """
    abs absent absent_over_time avg avg_over_time bool bottomk by ceil changes clamp
    clamp_max clamp_min count count_over_time count_values delta deriv exp floor group
    group_left group_right histogram_quantile idelta ignoring increase irate label_join
    label_replace last_over_time ln log2 log10 max max_over_time min min_over_time
    offset on quantile quantile_over_time rate resets round scalar sgn sort sort_desc
    stddev stddev_over_time stdvar sum sum_over_time time timestamp topk vector without
    and or unless inf nan
"""
PROMQL_WORDS = set(_PROMQL_WORDS.split())
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_VARIABLE = re.compile(r"\$\{?(\w+)")


def parse_expr(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) used by a PromQL expression.

    Small on purpose: string literals, `{...}` matchers, `[...]` ranges and grouping
    clauses are taken out first; every identifier left that is not a PromQL word is a
    metric name (a typo in a function name therefore fails too, which is fine).
    """
    labels: set[str] = set()
    text = _STRING.sub('""', expr)
    for body in _MATCHERS.findall(text):
        labels.update(m.group(0) for m in re.finditer(r"[A-Za-z_]\w*(?=\s*(?:=~|!~|!=|=))", body))
    text = _MATCHERS.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    for group in _GROUPING.findall(text):
        labels.update(_IDENT.findall(group))
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", " ", text)
    metrics = {word for word in _IDENT.findall(text) if word.lower() not in PROMQL_WORDS}
    return metrics, labels


def test_parse_expr_sees_metrics_and_labels() -> None:
    metrics, labels = parse_expr(
        'sum by (namespace, reason) (rate(foo_total{module=~"$module", a!="x{y}"}[5m])) / bar'
    )
    assert metrics == {"foo_total", "bar"}
    assert labels == {"namespace", "reason", "module", "a"}


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels") or [])  # rows hold their own panels


def panel_targets(path: Path = DASHBOARD) -> list[tuple[str, dict[str, Any]]]:
    return [
        (panel["title"], target)
        for panel in all_panels(load_dashboard(path)["panels"])
        if panel.get("type") != "row"
        for target in panel.get("targets") or []
    ]


def variables(path: Path = DASHBOARD) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in load_dashboard(path)["templating"]["list"]}


def variable_query(var: dict[str, Any]) -> str:
    query = var["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def label_values_args(query: str) -> tuple[str, str]:
    found = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query)
    assert found, f"not a label_values(metric, label) query: {query}"
    return found.group(1), found.group(2)


@pytest.fixture(scope="module")
def exposition() -> dict[str, set[str]]:
    """Sample name -> its label names, from a real paper-mode host's registry."""
    clock = ManualClock(T0)
    prices = {("WETH", "USDC"): [Decimal(100)] * 3}
    market = PriceSeries(clock, prices, interval=timedelta(seconds=60))
    host = ModuleHost(make_spec(), name="band", namespace="ns", market=market, clock=clock)
    operator_module_states("ns")
    text = generate_latest(host.registry).decode() + generate_latest().decode()
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def test_dashboards_are_distinct() -> None:
    docs = [load_dashboard(path) for path, _, _ in DASHBOARDS.values()]
    assert len({d["uid"] for d in docs}) == len({d["title"] for d in docs}) == len(docs)


def test_dashboard_model_is_grafana_shaped(dashboard: Path) -> None:
    doc = load_dashboard(dashboard)
    assert 36 <= doc["schemaVersion"] <= 41
    assert doc["uid"] and doc["title"]
    ds = variables(dashboard)["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    for name in next(v[2] for v in DASHBOARDS.values() if v[0] == dashboard):
        assert variables(dashboard)[name]["type"] == "query"
        assert variable_query(variables(dashboard)[name]).startswith("label_values(")
    ids = [p["id"] for p in all_panels(doc["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in all_panels(doc["panels"]):
        if panel.get("type") == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target.get("expr"), f"panel {panel['title']!r} has an empty query"
            assert target["datasource"]["uid"] == "${datasource}"


def test_every_metric_in_every_panel_exists(
    exposition: dict[str, set[str]], dashboard: Path
) -> None:
    used: set[str] = set()
    for title, target in panel_targets(dashboard):
        metrics, labels = parse_expr(target["expr"])
        assert metrics, f"{title}: no metric in {target['expr']}"
        for metric in metrics:
            assert metric in exposition, f"{title}: {metric} is not in the runtime's /metrics"
            # Every series the dashboard draws carries the module's identity.
            assert exposition[metric] >= expected_labels(metric), f"{metric} lacks labels"
        known = set().union(*(exposition[m] for m in metrics))
        assert labels <= known, f"{title}: labels {labels - known} not on {metrics}"
        legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        assert legend_labels <= known, f"{title}: legend uses {legend_labels - known}"
        used |= metrics
    required = next(v[1] for v in DASHBOARDS.values() if v[0] == dashboard)
    assert used >= required, f"no panel for {required - used}"


def test_variables_query_real_labels(exposition: dict[str, set[str]], dashboard: Path) -> None:
    defined = set(variables(dashboard))
    for name, var in variables(dashboard).items():
        if var["type"] != "query":
            continue
        assert var.get("definition", variable_query(var)) == variable_query(var), name
        selector, label = label_values_args(variable_query(var))
        metrics, labels = parse_expr(selector)
        assert metrics and metrics <= exposition.keys(), f"variable {name}: {selector}"
        assert {label, *labels} <= set().union(*(exposition[m] for m in metrics))
    for _, target in panel_targets(dashboard):
        assert set(_VARIABLE.findall(target["expr"])) <= defined, target["expr"]


# ---- a real Prometheus over a real runtime process ---------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(probe: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except OSError as error:
            last = error
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def concrete(expr: str) -> str:
    """A dashboard expression as Grafana sends it with every variable set to All."""
    return re.sub(r"\$\{?(namespace|type|module)\}?", ".+", expr)


@pytest.fixture
def runtime_target(tmp_path: Path) -> Iterator[str]:
    """`tradeplane-runtime run` on the custom sample, as the runtime pod runs it."""
    address = "127.0.0.1"
    port = free_port(address)
    env = {
        **os.environ,
        "TRADEPLANE_CONFIG_FILE": str(SAMPLE),
        "TRADEPLANE_MODULE_NAMESPACE": "dashboards",
        "TRADEPLANE_LISTEN_ADDRESS": address,
        "TRADEPLANE_PORT": str(port),
    }
    log = (tmp_path / "runtime.log").open("wb")
    script = shutil.which("tradeplane-runtime", path=str(Path(sys.executable).parent))
    assert script, "tradeplane-runtime is not installed in this virtualenv"
    proc = subprocess.Popen([script, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: get_json(f"http://{address}:{port}/readyz") is not None,
            30,
            "the runtime's /readyz",
        )
        yield f"{address}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def operator_target() -> Iterator[str]:
    """The operator's exporter (its real registry and collectors, served as `--metrics-bind`
    serves it), holding the state the handlers record for the runtime's module."""
    import prometheus_client

    operator_module_states("dashboards")
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def prometheus(tmp_path: Path, runtime_target: str, operator_target: str) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `apt-get install prometheus` (Debian package)")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: tradeplane-runtime\n"
        f"    static_configs:\n      - targets: ['{runtime_target}']\n"
        "  - job_name: tradeplane-operator\n"
        f"    static_configs:\n      - targets: ['{operator_target}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        targets = get_json(f"{url}/api/v1/targets")["data"]["activeTargets"]
        return len(targets) == 2 and all(t["health"] == "up" for t in targets)

    try:
        wait_for(up, 60, f"Prometheus scraping the runtime (log: {tmp_path / 'prometheus.log'})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.prometheus
def test_every_dashboard_expression_returns_series(prometheus: str) -> None:
    def query(expr: str) -> list[Any]:
        params = urllib.parse.urlencode({"query": expr})
        body = get_json(f"{prometheus}/api/v1/query?{params}")
        assert body["status"] == "success", body
        result: list[Any] = body["data"]["result"]
        return result

    for path, _, _ in DASHBOARDS.values():
        for name, var in variables(path).items():
            if var["type"] != "query":
                continue
            selector, label = label_values_args(variable_query(var))
            selector = concrete(selector)
            values = wait_for(
                lambda s=selector, lb=label: {r["metric"].get(lb) for r in query(s)} - {None},
                30,
                f"{path.name}: values of variable {name}",
            )
            assert values, name
        # rate()/increase() need two samples in their window: a few scrapes, then every
        # expression must answer with at least one series.
        for title, target in panel_targets(path):
            expr = concrete(target["expr"])
            series = wait_for(lambda e=expr: query(e), 30, f"{path.name} {title}: {expr}")
            assert series, f"{path.name} {title}: {expr} returned no series"
