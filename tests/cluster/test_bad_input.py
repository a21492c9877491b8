"""Invalid TradingModules are refused by the real API server, naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kubectl import Kubectl

pytestmark = pytest.mark.cluster

VALID: dict[str, Any] = {
    "apiVersion": "tradeplane.io/v1alpha1",
    "kind": "TradingModule",
    "metadata": {"name": "probe"},
    "spec": {
        "type": "dex_trading",
        "mode": "paper",
        "capital": {"allocation": "10000", "currency": "USDC"},
        "risk": {
            "maxPositionSize": "1000",
            "maxDailyLoss": "500",
            "maxDrawdownPercent": 15,
            "stopLossPercent": 3,
            "maxOpenPositions": 2,
        },
    },
}


def mutate(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    if value is DELETE:
        node.pop(leaf)
    else:
        node[leaf] = value
    return doc


DELETE = object()

CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("wrong type", mutate("spec.type", "stock_picking"), ["spec.type", "Unsupported value"]),
    ("wrong mode", mutate("spec.mode", "yolo"), ["spec.mode"]),
    ("negative capital", mutate("spec.capital.allocation", "-5"), ["spec.capital.allocation"]),
    (
        "zero capital",
        mutate("spec.capital.allocation", "0"),
        ["spec.capital.allocation", "greater than 0"],
    ),
    (
        "capital not a number",
        mutate("spec.capital.allocation", "lots"),
        ["spec.capital.allocation"],
    ),
    (
        "position larger than allocation",
        mutate("spec.risk.maxPositionSize", "20000"),
        ["spec.risk.maxPositionSize", "must not exceed capital.allocation"],
    ),
    (
        "daily loss larger than allocation",
        mutate("spec.risk.maxDailyLoss", "10001"),
        ["spec.risk.maxDailyLoss"],
    ),
    (
        "live without a wallet",
        mutate("spec.mode", "live"),
        ["spec.walletSecretRef", "required when mode is live"],
    ),
    ("unknown field", mutate("spec.leverageFactor", 3), ["unknown field", "spec.leverageFactor"]),
    (
        "percent over 100",
        mutate("spec.risk.maxDrawdownPercent", 150),
        ["spec.risk.maxDrawdownPercent"],
    ),
    ("percent below 0", mutate("spec.risk.stopLossPercent", -1), ["spec.risk.stopLossPercent"]),
    ("missing risk", mutate("spec.risk", DELETE), ["spec.risk", "Required value"]),
    (
        "zero open positions",
        mutate("spec.risk.maxOpenPositions", 0),
        ["spec.risk.maxOpenPositions"],
    ),
    ("leverage below 1", mutate("spec.risk.maxLeverage", 0.5), ["spec.risk.maxLeverage"]),
    (
        "custom without entry point",
        mutate("spec.type", "custom"),
        ["spec.entryPoint", "required when type is custom"],
    ),
    (
        "timeout longer than interval",
        mutate("spec.health", {"intervalSeconds": 5, "timeoutSeconds": 10}),
        ["spec.health.timeoutSeconds"],
    ),
    (
        "live futures without exchange keys",
        {
            **mutate("spec.mode", "live"),
            "spec": {**mutate("spec.mode", "live")["spec"], "type": "futures_trading"},
        },
        ["spec.exchangeSecretRef", "required when mode is live and type is futures_trading"],
    ),
    (
        "wallet secret name invalid",
        mutate("spec.walletSecretRef", {"name": "Not_A_Name", "key": "k"}),
        ["spec.walletSecretRef.name"],
    ),
]


@pytest.mark.parametrize(
    ("doc", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_rejected_with_the_field_named(
    kubectl: Kubectl, namespace: str, doc: dict[str, Any], expected: list[str]
) -> None:
    result = kubectl.apply(yaml.safe_dump(doc), namespace, check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    for text in expected:
        assert text in result.stderr, result.stderr
    # Nothing half-created: the resource does not exist.
    missing = kubectl.run("get", "tm", "probe", "-n", namespace, check=False)
    assert missing.returncode != 0


def test_valid_resource_is_accepted_with_defaults(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(yaml.safe_dump(VALID), namespace)
    stored = kubectl.json("get", "tradingmodule", "probe", "-n", namespace)
    spec = stored["spec"]
    assert spec["enabled"] is True and spec["paused"] is False
    assert spec["health"]["intervalSeconds"] == 10
    assert spec["health"]["backoff"]["maxSeconds"] == 300
    assert spec["risk"]["maxLeverage"] == 1


SAMPLES = sorted((Path(__file__).resolve().parents[2] / "config" / "samples").glob("*.yaml"))


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_every_sample_is_accepted(kubectl: Kubectl, namespace: str, sample: Path) -> None:
    result = kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", str(sample))
    assert "(server dry run)" in result.stdout
