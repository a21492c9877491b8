"""Portfolio halts on a real cluster: the kill switch and the loss limits.

Members are real runtime processes (the kubelet stand-in); the test reads what each
runtime itself reports on /healthz, and a pod census proves no pod was restarted.
"""

from __future__ import annotations

import copy
import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.census import PodCensus
from tests.cluster.conftest import OperatorProcess, delete_webhook_configuration, webhook_args
from tests.cluster.kubectl import Kubectl, events, eventually, module, runtime_pods, status

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = yaml.safe_load((ROOT / "config/samples/dex_trading.yaml").read_text())
HEALTH = {"intervalSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 3}
# Trades at once (see test_health): the first buy's fees are a loss.
TRADING = {
    "base": "WETH",
    "quote": "USDC",
    "orderSize": "500",
    "emaPeriod": 2,
    "bandPercent": 0.01,
    "tickSeconds": 1,
}


def portfolio(name: str, budget: str, **spec: Any) -> str:
    doc = {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingPortfolio",
        "metadata": {"name": name},
        "spec": {"budget": budget, **spec},
    }
    return yaml.safe_dump(doc)


def member(name: str, **spec: Any) -> str:
    doc = copy.deepcopy(BASE)
    doc["metadata"] = {"name": name}
    doc["spec"]["portfolio"] = "fleet"
    doc["spec"]["health"] = HEALTH
    doc["spec"]["marketData"] = {"seed": 3, "stepSeconds": 1, "volatilityPercent": 1}
    doc["spec"].update(spec)
    return yaml.safe_dump(doc)


def health(pod: dict[str, Any]) -> dict[str, Any]:
    url = f"http://{pod['status']['podIP']}:8080/healthz"
    with urllib.request.urlopen(url, timeout=5) as answer:
        body: dict[str, Any] = json.load(answer)
        return body


def running(kubectl: Kubectl, namespace: str, names: list[str]) -> dict[str, dict[str, Any]]:
    pods = {
        p["metadata"]["labels"]["tradeplane.io/module"]: p for p in runtime_pods(kubectl, namespace)
    }
    ready = all(
        status(kubectl, namespace, n).get("phase") == "Running" and n in pods for n in names
    )
    return pods if ready and len(pods) == len(names) else {}


def portfolio_halt(pod: dict[str, Any]) -> str | None:
    halt = health(pod).get("portfolioHalt") or {}
    return halt.get("reason")


def member_condition(kubectl: Kubectl, namespace: str, name: str) -> tuple[str, str] | None:
    for c in status(kubectl, namespace, name).get("conditions") or []:
        if c["type"] == "PortfolioHalted":
            return c["status"], c["reason"]
    return None


def set_halted(kubectl: Kubectl, namespace: str, halted: bool, who: str) -> None:
    patch = {
        "metadata": {"annotations": {"tradeplane.io/changed-by": who}},
        "spec": {"halted": halted},
    }
    kubectl.run("patch", "tp", "fleet", "-n", namespace, "--type=merge", "-p", json.dumps(patch))


def test_kill_switch_halts_and_resumes_every_member_without_restarting_a_pod(
    kubectl: Kubectl, namespace: str, operator_process: Path, census: PodCensus
) -> None:
    names = ["a", "b"]
    kubectl.apply(portfolio("fleet", "20000"), namespace)
    for name in names:
        kubectl.apply(member(name), namespace)
    pods = eventually(lambda: running(kubectl, namespace, names), timeout=90, what="members run")
    uids = {n: p["metadata"]["uid"] for n, p in pods.items()}
    assert all(portfolio_halt(p) is None for p in pods.values())

    set_halted(kubectl, namespace, True, "alice")
    eventually(
        lambda: all(portfolio_halt(p) == "KillSwitch" for p in pods.values()),
        timeout=30,
        what="every runtime reports the portfolio halt",
    )
    eventually(
        lambda: all(
            member_condition(kubectl, namespace, n) == ("True", "KillSwitch") for n in names
        ),
        timeout=30,
        what="members' PortfolioHalted condition",
    )
    st = kubectl.json("get", "tp", "fleet", "-n", namespace)["status"]
    assert st["halted"] is True and st["halt"]["by"] == "alice"
    # The runtime is halted as a risk halt is not: healthy, trading allowed to reduce.
    assert all(health(p)["status"] != "halted" for p in pods.values())

    set_halted(kubectl, namespace, False, "bob")
    eventually(
        lambda: all(portfolio_halt(p) is None for p in pods.values()),
        timeout=30,
        what="every runtime resumed",
    )
    st = eventually(
        lambda: (
            (s := kubectl.json("get", "tp", "fleet", "-n", namespace)["status"]).get("lastResume")
            and s
        ),
        timeout=30,
        what="resume recorded",
    )
    assert st["lastResume"]["by"] == "bob" and st["halted"] is False
    assert {e["reason"] for e in events(kubectl, namespace, "fleet")} >= {
        "PortfolioHalted",
        "PortfolioResumed",
    }
    # Not one pod restarted: the same pods, none created since.
    after = {
        p["metadata"]["labels"]["tradeplane.io/module"]: p for p in runtime_pods(kubectl, namespace)
    }
    assert {n: p["metadata"]["uid"] for n, p in after.items()} == uids
    assert len(census.created) == len(names)
    assert all(status(kubectl, namespace, n)["restarts"] == 0 for n in names)


def test_loss_limit_halt_survives_an_operator_restart_and_a_pod_restart(
    kubectl: Kubectl,
    kubeconfig: Path,
    own_namespace: str,
    standin: Path | None,
    tmp_path: Path,
) -> None:
    namespace = own_namespace
    configuration = f"tradeplane-test-{uuid.uuid4().hex[:8]}"
    args = ["--namespace", namespace, *webhook_args(tmp_path / "webhook", configuration)]
    env = {"TRADEPLANE_STATUS_MIN_INTERVAL": "3", "TRADEPLANE_TERMINATION_GRACE_SECONDS": "5"}
    op = OperatorProcess(kubeconfig, tmp_path / "operator.log", args, env).start()
    try:
        kubectl.apply(portfolio("fleet", "20000", maxDailyLoss="1"), namespace)
        kubectl.apply(member("a", strategy=TRADING), namespace)
        pods = eventually(lambda: running(kubectl, namespace, ["a"]), timeout=90, what="runs")
        first = pods["a"]
        st = eventually(
            lambda: (
                (s := kubectl.json("get", "tp", "fleet", "-n", namespace).get("status") or {}).get(
                    "halt"
                )
                and s
            ),
            timeout=90,
            what="the members' loss halts the portfolio",
        )
        assert st["halt"]["reason"] == "MaxDailyLoss" and st["halted"] is True
        eventually(lambda: portfolio_halt(first) == "MaxDailyLoss", timeout=30, what="halted")

        # The operator dies without cleanup; a new one finds the halt in the status.
        op.kill()
        op.start()
        after = kubectl.json("get", "tp", "fleet", "-n", namespace)["status"]
        assert after["halt"]["reason"] == "MaxDailyLoss"
        assert portfolio_halt(first) == "MaxDailyLoss"

        # The pod goes away; its replacement starts under the halt.
        kubectl.run("delete", "pod", first["metadata"]["name"], "-n", namespace, "--wait=false")
        second = eventually(
            lambda: (
                (p := running(kubectl, namespace, ["a"]).get("a"))
                and p["metadata"]["uid"] != first["metadata"]["uid"]
                and p
            ),
            timeout=90,
            what="replacement pod",
        )
        env_vars = {e["name"]: e.get("value") for e in second["spec"]["containers"][0]["env"]}
        assert env_vars["TRADEPLANE_PORTFOLIO_HALT"] == "MaxDailyLoss"
        assert portfolio_halt(second) == "MaxDailyLoss"

        # Only a person lifts it.
        kubectl.run("annotate", "tp", "fleet", "-n", namespace, "tradeplane.io/resume-halt=carol")
        resumed = eventually(
            lambda: (
                (s := kubectl.json("get", "tp", "fleet", "-n", namespace))
                .get("status", {})
                .get("lastResume")
                and s
            ),
            timeout=30,
            what="resume recorded",
        )
        assert resumed["status"]["lastResume"]["by"] == "carol"
        assert "tradeplane.io/resume-halt" not in (resumed["metadata"].get("annotations") or {})
        assert "PortfolioResumed" in {e["reason"] for e in events(kubectl, namespace, "fleet")}
        # One restart: the pod deleted above; none for the halt, the operator or the resume.
        assert module(kubectl, namespace, "a")["status"]["restarts"] == 1
    finally:
        op.stop()
        delete_webhook_configuration(kubectl, configuration)
