"""The fleet budget at apply time, through the operator's real webhook on a real API server.

The session operator serves the webhook for the t-* namespaces (tests/cluster/conftest):
these tests apply with `kubectl` as users do and read what the API server stored.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kubectl import Kubectl, eventually

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = yaml.safe_load((ROOT / "config/samples/dex_trading.yaml").read_text())


def portfolio(name: str, budget: str, **spec: Any) -> str:
    doc = {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingPortfolio",
        "metadata": {"name": name},
        "spec": {"budget": budget, **spec},
    }
    return yaml.safe_dump(doc)


def member(name: str, allocation: str, portfolio: str | None = "fleet", **spec: Any) -> str:
    """A module that never runs (enabled: false): admission is about the spec."""
    doc = copy.deepcopy(BASE)
    doc["metadata"] = {"name": name}
    doc["spec"]["enabled"] = False
    doc["spec"]["capital"]["allocation"] = allocation
    doc["spec"]["risk"]["maxPositionSize"] = allocation
    doc["spec"]["risk"]["maxDailyLoss"] = allocation
    if portfolio:
        doc["spec"]["portfolio"] = portfolio
    doc["spec"].update(spec)
    return yaml.safe_dump(doc)


def allocations(kubectl: Kubectl, namespace: str, name: str = "fleet") -> dict[str, Decimal]:
    items = kubectl.json("get", "tm", "-n", namespace)["items"]
    return {
        i["metadata"]["name"]: Decimal(str(i["spec"]["capital"]["allocation"]))
        for i in items
        if i["spec"].get("portfolio") == name
    }


def test_over_budget_apply_is_refused_with_budget_allocated_and_requested(
    kubectl: Kubectl, namespace: str, operator_process: Path
) -> None:
    kubectl.apply(portfolio("fleet", "1000"), namespace)
    kubectl.apply(member("a", "600"), namespace)
    refused = kubectl.apply(member("b", "500"), namespace, check=False)
    assert refused.returncode != 0
    message = refused.stderr
    assert "spec.capital.allocation" in message, message
    assert "budget 1000 USDC" in message and "allocated 600" in message, message
    assert "requested 500" in message, message
    assert set(allocations(kubectl, namespace)) == {"a"}
    # Fits exactly: allowed. Raising a member past the budget: refused, naming the field.
    kubectl.apply(member("b", "400"), namespace)
    raised = kubectl.apply(member("a", "601"), namespace, check=False)
    assert raised.returncode != 0 and "spec.capital.allocation" in raised.stderr
    # A reduction always passes, and frees budget for others.
    kubectl.apply(member("a", "500"), namespace)
    kubectl.apply(member("c", "100"), namespace)
    assert sum(allocations(kubectl, namespace).values()) == Decimal(1000)
    # The portfolio's status adds it up.
    st = eventually(
        lambda: (
            (s := kubectl.json("get", "tp", "fleet", "-n", namespace).get("status") or {})
            and s.get("allocated") == "1000"
            and s
        ),
        timeout=30,
        what="portfolio status shows the allocation",
    )
    assert st["available"] == "0" and st["members"]["total"] == 3
    columns = kubectl.run("get", "tp", "fleet", "-n", namespace).stdout.split("\n")[0].split()
    assert columns == [
        "NAME",
        "BUDGET",
        "ALLOCATED",
        "AVAILABLE",
        "MEMBERS",
        "PNL",
        "HALTED",
        "AGE",
    ]


def test_missing_portfolio_and_other_currency_are_refused(
    kubectl: Kubectl, namespace: str, operator_process: Path
) -> None:
    missing = kubectl.apply(member("a", "10", portfolio="nowhere"), namespace, check=False)
    assert missing.returncode != 0
    assert 'spec.portfolio: TradingPortfolio "nowhere" not found' in missing.stderr
    kubectl.apply(portfolio("fleet", "1000"), namespace)
    doc = yaml.safe_load(member("a", "10"))
    doc["spec"]["capital"]["currency"] = "USDT"
    other = kubectl.apply(yaml.safe_dump(doc), namespace, check=False)
    assert other.returncode != 0 and "spec.capital.currency" in other.stderr
    # Modules outside any portfolio never ask the webhook.
    kubectl.apply(member("free", "999999", portfolio=None), namespace)


def test_lowering_the_budget_below_what_is_allocated_is_refused(
    kubectl: Kubectl, namespace: str, operator_process: Path
) -> None:
    kubectl.apply(portfolio("fleet", "1000"), namespace)
    kubectl.apply(member("a", "300"), namespace)
    kubectl.apply(member("b", "300"), namespace)
    cut = kubectl.run(
        "patch", "tp", "fleet", "-n", namespace, "--type=merge", "-p", '{"spec":{"budget":"599"}}',
        check=False,
    )  # fmt: skip
    assert cut.returncode != 0
    assert "spec.budget: 599 is below" in cut.stderr and "600" in cut.stderr, cut.stderr
    kubectl.run(
        "patch", "tp", "fleet", "-n", namespace, "--type=merge", "-p", '{"spec":{"budget":"600"}}'
    )
    over = kubectl.apply(member("c", "1"), namespace, check=False)
    assert over.returncode != 0 and "budget 600 USDC" in over.stderr


def test_twenty_parallel_applies_never_exceed_the_budget(
    kubectl: Kubectl, namespace: str, operator_process: Path
) -> None:
    kubectl.apply(portfolio("fleet", "1000"), namespace)
    manifests = [member(f"m{i:02d}", "100") for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda m: kubectl.apply(m, namespace, check=False), manifests))
    accepted = [r for r in results if r.returncode == 0]
    refused = [r for r in results if r.returncode != 0]
    stored = allocations(kubectl, namespace)
    assert sum(stored.values()) <= Decimal(1000)
    # Not fewer either: the pending admissions are released once seen, never lost.
    assert len(accepted) == len(stored) == 10, [r.stderr for r in refused]
    assert all("spec.capital.allocation" in r.stderr for r in refused)


def test_self_dependency_and_cycles_are_refused(
    kubectl: Kubectl, namespace: str, operator_process: Path
) -> None:
    itself = kubectl.apply(member("a", "10", portfolio=None, dependsOn=["a"]), namespace, False)
    assert itself.returncode != 0
    assert "spec.dependsOn must not list the module itself" in itself.stderr, itself.stderr
    kubectl.apply(member("a", "10", portfolio=None, dependsOn=["b"]), namespace)
    kubectl.apply(member("b", "10", portfolio=None, dependsOn=["c"]), namespace)
    cycle = kubectl.apply(member("c", "10", portfolio=None, dependsOn=["a"]), namespace, False)
    assert cycle.returncode != 0
    assert "spec.dependsOn: dependency cycle c -> a -> b -> c" in cycle.stderr, cycle.stderr
    kubectl.apply(member("c", "10", portfolio=None, dependsOn=[]), namespace)
