"""The futures sample on the real control plane: applied with kubectl, run by the
operator in a runtime pod (kubelet stand-in), Running and Healthy, its status filled by
the runtime; paper mode on synthetic market data."""

from __future__ import annotations

import copy
import json
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.cluster.kubectl import Kubectl, events, eventually, runtime_pods, status

pytestmark = pytest.mark.cluster

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "samples" / "futures_trading.yaml"


def test_futures_sample_runs_healthy(
    kubectl: Kubectl, namespace: str, operator_process: Path
) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(SAMPLE))
    eventually(
        lambda: (
            (s := status(kubectl, namespace, "futures-trading")).get("phase") == "Running"
            and s.get("health") == "Healthy"
        ),
        timeout=90,
        what="futures-trading Running and Healthy",
    )
    (pod,) = runtime_pods(kubectl, namespace)
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/healthz", timeout=5) as r:
        health = json.load(r)
    assert health["status"] == "ok" and health["mode"] == "paper", health
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/metrics", timeout=5) as r:
        text = r.read().decode()
    assert 'tradeplane_module_liquidations_total{module="futures-trading"' in text
    assert 'type="futures_trading"' in text
    assert status(kubectl, namespace, "futures-trading")["restarts"] == 0


def test_leverage_above_the_limit_reaches_the_status(
    kubectl: Kubectl, namespace: str, operator_process: Path
) -> None:
    """What the schema cannot see (strategy is free-form): the runtime exits 2 naming the
    field, and its message reaches the user in the module's PodFailed event."""
    doc = yaml.safe_load(SAMPLE.read_text())
    doc = copy.deepcopy(doc)
    doc["spec"]["strategy"]["leverage"] = 5
    doc["spec"]["health"] = {"maxRestarts": 0, "cooldownSeconds": 3600}
    kubectl.apply(yaml.safe_dump(doc), namespace)
    wanted = "strategy.leverage: 5 exceeds risk.maxLeverage 3"

    def refused() -> bool:
        messages = [e["message"] for e in events(kubectl, namespace, "futures-trading")]
        return any("exit code 2" in m and wanted in m for m in messages)

    eventually(refused, timeout=90, what="the runtime's refusal in the events")
    assert status(kubectl, namespace, "futures-trading")["restarts"] == 0  # the breaker holds
