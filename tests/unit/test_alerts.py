"""The chart's alert rules (charts/tradeplane/rules/tradeplane.rules.yaml), offline.

`promtool test rules` (Debian's prometheus package, installed by hack/bootstrap) evaluates
every rule over synthetic series: each alert has a case where it fires and cases where it
must not (healthy modules, a state that does not last its `for`, a neighbour's series).
The series use the names and labels the runtime and operator really export; the names
are checked against the exporters' registries too, so a renamed metric fails here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from module_runtime.clock import ManualClock
from module_runtime.host import ModuleHost
from module_runtime.market_data import PriceSeries
from tests.runtime.conftest import T0, make_spec
from tradeplane_operator import metrics as operator_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts" / "tradeplane" / "rules" / "tradeplane.rules.yaml"
PROMTOOL = shutil.which("promtool")
# Written by the portfolio controller (TradingPortfolio), not by this checkout's code.
EXTERNAL = {"tradeplane_portfolio_halted"}

M1 = 'namespace="prod",module="m1",type="dex_trading"'
M2 = 'namespace="prod",module="m2",type="dex_trading"'
M3 = 'namespace="prod",module="m3",type="dex_trading"'


def rules() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"]}


def fired(alert: str, **labels: str) -> dict[str, Any]:
    """An expected alert: its labels plus the rule's, annotations expanded for them."""
    rule = rules()[alert]

    def expand(text: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], text)

    return {
        "exp_labels": {**labels, **rule.get("labels", {})},
        "exp_annotations": {k: expand(v) for k, v in rule.get("annotations", {}).items()},
    }


def module(name: str, **extra: str) -> dict[str, str]:
    return {"namespace": "prod", "module": name, **extra}


def runtime(name: str) -> dict[str, str]:
    return {"namespace": "prod", "module": name, "type": "dex_trading"}


# alert -> (series, [(eval_time, [expected alerts])]): an empty list = must not fire.
CASES: dict[str, tuple[list[dict[str, str]], list[tuple[str, list[dict[str, Any]]]]]] = {
    "TradeplaneModuleUnhealthy": (
        [
            {
                "series": 'tradeplane_operator_module_health{namespace="prod",module="m1",'
                'health="Unhealthy"}',
                "values": "1x10",
            },
            {
                "series": 'tradeplane_operator_module_health{namespace="prod",module="m2",'
                'health="Unhealthy"}',
                "values": "0x10",
            },
            {
                "series": 'tradeplane_operator_module_health{namespace="prod",module="m3",'
                'health="Unhealthy"}',
                "values": "0 1 0 1 0 1 0 1 0 1 0",  # flapping: never 2 minutes in a row
            },
        ],
        [
            ("1m", []),  # not yet for 2 minutes
            ("5m", [fired("TradeplaneModuleUnhealthy", **module("m1", health="Unhealthy"))]),
        ],
    ),
    "TradeplaneBreakerOpen": (
        [
            {
                "series": 'tradeplane_operator_module_breaker_state{namespace="prod",module="m1",'
                'state="open"}',
                "values": "0 0 1 1 1",
            },
            {
                "series": 'tradeplane_operator_module_breaker_state{namespace="prod",module="m2",'
                'state="open"}',
                "values": "0x4",
            },
        ],
        [
            ("1m", []),
            ("3m", [fired("TradeplaneBreakerOpen", **module("m1", state="open"))]),
        ],
    ),
    "TradeplaneRiskHalt": (
        [
            {"series": f"tradeplane_module_halted{{{M1}}}", "values": "0 0 1 1"},
            {"series": f"tradeplane_module_halted{{{M2}}}", "values": "0x3"},
        ],
        [("1m", []), ("3m", [fired("TradeplaneRiskHalt", **runtime("m1"))])],
    ),
    "TradeplaneDrawdownNearLimit": (
        [
            # m1: 9% against a 10% limit; m2: 5%; m3: at the limit and already halted.
            {"series": f"tradeplane_module_drawdown_ratio{{{M1}}}", "values": "0.02 0.09x5"},
            {"series": f"tradeplane_module_drawdown_limit_ratio{{{M1}}}", "values": "0.1x6"},
            {"series": f"tradeplane_module_halted{{{M1}}}", "values": "0x6"},
            {"series": f"tradeplane_module_drawdown_ratio{{{M2}}}", "values": "0.05x6"},
            {"series": f"tradeplane_module_drawdown_limit_ratio{{{M2}}}", "values": "0.1x6"},
            {"series": f"tradeplane_module_halted{{{M2}}}", "values": "0x6"},
            {"series": f"tradeplane_module_drawdown_ratio{{{M3}}}", "values": "0.1x6"},
            {"series": f"tradeplane_module_drawdown_limit_ratio{{{M3}}}", "values": "0.1x6"},
            {"series": f"tradeplane_module_halted{{{M3}}}", "values": "1x6"},
        ],
        [
            ("1m", []),  # m1 just got there: not yet for a minute
            ("4m", [fired("TradeplaneDrawdownNearLimit", **runtime("m1"))]),
        ],
    ),
    "TradeplaneNoTrades": (
        [
            # m1: Running, no trade for 100 minutes; m2: trades; m3: idle but Disabled.
            {"series": f"tradeplane_module_trades_total{{{M1}}}", "values": "5x100"},
            {
                "series": 'tradeplane_operator_module_phase{namespace="prod",module="m1",'
                'phase="Running"}',
                "values": "1x100",
            },
            {"series": f"tradeplane_module_trades_total{{{M2}}}", "values": "0+1x100"},
            {
                "series": 'tradeplane_operator_module_phase{namespace="prod",module="m2",'
                'phase="Running"}',
                "values": "1x100",
            },
            {"series": f"tradeplane_module_trades_total{{{M3}}}", "values": "5x100"},
            {
                "series": 'tradeplane_operator_module_phase{namespace="prod",module="m3",'
                'phase="Running"}',
                "values": "0x100",
            },
        ],
        [
            ("20m", []),
            ("70m", [fired("TradeplaneNoTrades", **runtime("m1"))]),
        ],
    ),
    "TradeplaneLedgerDegraded": (
        [
            {"series": f"tradeplane_module_ledger_degraded{{{M1}}}", "values": "0 1 1 1 1"},
            {"series": f"tradeplane_module_ledger_degraded{{{M2}}}", "values": "0 1 0 0 0"},
        ],
        [
            ("1m", []),  # a blip is not an alert
            ("4m", [fired("TradeplaneLedgerDegraded", **runtime("m1"))]),
        ],
    ),
    "TradeplaneReconcileErrors": (
        [
            {
                "series": 'tradeplane_operator_reconcile_errors_total{error="ApiException"}',
                "values": "0+1x20",
            },
            {
                "series": 'tradeplane_operator_reconcile_errors_total{error="TimeoutError"}',
                "values": "3x20",  # failed once, long ago: quiet now
            },
        ],
        [
            ("3m", []),  # not yet for 5 minutes
            ("15m", [fired("TradeplaneReconcileErrors", error="ApiException")]),
        ],
    ),
    "TradeplanePortfolioHalted": (
        [
            {
                "series": 'tradeplane_portfolio_halted{namespace="prod",portfolio="p1"}',
                "values": "0 1 1",
            },
            {
                "series": 'tradeplane_portfolio_halted{namespace="prod",portfolio="p2"}',
                "values": "0 0 0",
            },
        ],
        [
            ("0m", []),
            ("2m", [fired("TradeplanePortfolioHalted", namespace="prod", portfolio="p1")]),
        ],
    ),
}


def test_every_alert_has_firing_and_quiet_cases() -> None:
    assert set(CASES) == set(rules())
    for alert, (_, evals) in CASES.items():
        assert any(expected for _, expected in evals), f"{alert}: no firing case"
        assert any(not expected for _, expected in evals), f"{alert}: no quiet case"


def test_rules_use_exported_metric_names() -> None:
    """Every name in a rule is one the operator or the runtime exports (or EXTERNAL)."""
    clock = ManualClock(T0)
    market = PriceSeries(
        clock, {("WETH", "USDC"): [Decimal(100)] * 3}, interval=timedelta(seconds=60)
    )
    host = ModuleHost(make_spec(), name="band", namespace="ns", market=market, clock=clock)
    operator_metrics.MODULE_STATES.modules["u"] = ("ns", "m", "Running", "Healthy", "closed")
    operator_metrics.RECONCILE_ERRORS.labels("ApiException")
    try:
        exported = generate_latest().decode() + generate_latest(host.registry).decode()
    finally:
        operator_metrics.MODULE_STATES.modules.pop("u")
    names = set(re.findall(r"^(\w+)", exported, re.MULTILINE))
    exprs = " ".join(rule["expr"] for rule in rules().values())
    used = set(re.findall(r"\b(tradeplane_\w+)", exprs))
    assert used, "no metric in the rules"
    assert used - EXTERNAL <= names, used - EXTERNAL - names


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: run hack/bootstrap")
def test_promtool_rules(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    check = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = [
        {
            "name": alert,
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": at, "alertname": alert, "exp_alerts": expected}
                for at, expected in evals
            ],
        }
        for alert, (series, evals) in CASES.items()
    ]
    spec = tmp_path / "alerts.test.yaml"
    spec.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "tests": tests}))
    run = subprocess.run([PROMTOOL, "test", "rules", str(spec)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: run hack/bootstrap")
def test_promtool_catches_a_wrong_expectation(tmp_path: Path) -> None:
    """The harness can fail: claiming m2 (healthy) fires is reported by promtool."""
    assert PROMTOOL is not None
    series, _ = CASES["TradeplaneRiskHalt"]
    wrong = [{"eval_time": "3m", "alertname": "TradeplaneRiskHalt",
              "exp_alerts": [fired("TradeplaneRiskHalt", **runtime("m2"))]}]  # fmt: skip
    spec = tmp_path / "wrong.test.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULES)],
                "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": wrong}],
            }
        )
    )
    run = subprocess.run([PROMTOOL, "test", "rules", str(spec)], capture_output=True, text=True)
    assert run.returncode != 0
