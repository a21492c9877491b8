"""Health probes, restarts, the circuit breaker, risk halts and status on a real cluster.

The runtimes are real `tradeplane-runtime` processes run by the kubelet stand-in; faults
are real too: a process stopped with SIGSTOP stops answering, an invalid strategy makes
the runtime exit 2, a tiny drawdown limit makes it halt on its first trade.
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.census import PodCensus
from tests.cluster.conftest import OperatorProcess
from tests.cluster.kubectl import (
    Kubectl,
    events,
    eventually,
    module,
    mounted_config,
    runtime_pods,
    status,
)

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = yaml.safe_load((ROOT / "config/samples/dex_trading.yaml").read_text())
NAME = "dex-trading"
FAST_HEALTH = {
    "intervalSeconds": 2,
    "timeoutSeconds": 1,
    "failureThreshold": 3,
    "maxRestarts": 2,
    "restartWindowSeconds": 600,
    "cooldownSeconds": 8,
    "backoff": {"initialSeconds": 1, "maxSeconds": 2, "multiplier": 2},
}


def manifest(**spec: Any) -> str:
    doc = copy.deepcopy(BASE)
    doc["spec"]["health"] = FAST_HEALTH
    doc["spec"].update(spec)
    return yaml.safe_dump(doc)


def running_pod(kubectl: Kubectl, namespace: str) -> dict[str, Any] | None:
    pods = runtime_pods(kubectl, namespace)
    st = status(kubectl, namespace, NAME)
    if (
        st.get("phase") == "Running"
        and len(pods) == 1
        and not pods[0]["metadata"].get("deletionTimestamp")
    ):
        return pods[0]
    return None


def pid_of(pod: dict[str, Any]) -> int:
    container_id = pod["status"]["containerStatuses"][0]["containerID"]
    return int(container_id.removeprefix("standin://"))


def health_of(pod: dict[str, Any]) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/healthz", timeout=5) as r:
        body: dict[str, Any] = json.load(r)
        return body


def reasons(kubectl: Kubectl, namespace: str) -> list[str]:
    return [e["reason"] for e in events(kubectl, namespace, NAME)]


def test_unresponsive_runtime_is_replaced(
    kubectl: Kubectl,
    namespace: str,
    operator_process: Path,
    local_pods: Path,
    census: PodCensus,
    record_property: Callable[[str, object], None],
) -> None:
    kubectl.apply(manifest(), namespace)
    pod = eventually(lambda: running_pod(kubectl, namespace), timeout=60, what="running pod")
    eventually(lambda: status(kubectl, namespace, NAME).get("health") == "Healthy", what="healthy")
    old_uid = pod["metadata"]["uid"]
    os.kill(pid_of(pod), signal.SIGSTOP)  # alive, but answers nothing
    stopped_at = time.monotonic()
    new = eventually(
        lambda: (p := running_pod(kubectl, namespace)) and p["metadata"]["uid"] != old_uid and p,
        timeout=90,
        what="replacement pod running",
    )
    record_property(
        "seconds_from_sigstop_to_replacement_running", round(time.monotonic() - stopped_at, 1)
    )
    st = status(kubectl, namespace, NAME)
    assert st["restarts"] == 1
    assert census.most == 1, "two runtime pods existed at once"
    assert "Unhealthy" in reasons(kubectl, namespace)
    assert "Restarting" in reasons(kubectl, namespace)
    assert health_of(new)["status"] == "ok"


def test_crash_loop_trips_the_breaker_and_a_fixed_trial_closes_it(
    kubectl: Kubectl, namespace: str, operator_process: Path, census: PodCensus
) -> None:
    # A crash a restart may fix (exit 2, an invalid config, is never restarted: see
    # test_invalid_config): each runtime process is killed as soon as it runs.
    kubectl.apply(manifest(), namespace)
    killed: set[str] = set()

    def kill_running() -> bool:
        for pod in runtime_pods(kubectl, namespace):
            uid = pod["metadata"]["uid"]
            if uid not in killed and (pod.get("status") or {}).get("containerStatuses"):
                state = pod["status"]["containerStatuses"][0].get("state") or {}
                if "running" in state:
                    os.kill(pid_of(pod), signal.SIGKILL)
                    killed.add(uid)
        return status(kubectl, namespace, NAME).get("phase") == "Failed"

    eventually(kill_running, timeout=90, what="breaker open")
    st = status(kubectl, namespace, NAME)
    assert st["breaker"]["state"] == "open"
    assert st["restarts"] == FAST_HEALTH["maxRestarts"]
    assert len(census.created) == 1 + FAST_HEALTH["maxRestarts"]
    healthy = next(c for c in st["conditions"] if c["type"] == "Healthy")
    assert (healthy["status"], healthy["reason"]) == ("False", "CircuitOpen")
    assert "2 restarts in 600s" in healthy["message"]
    # Why it failed reaches the user.
    messages = [
        e["message"] for e in events(kubectl, namespace, NAME) if e["reason"] == "PodFailed"
    ]
    assert any("exit code 137" in m for m in messages), messages
    time.sleep(3)  # the breaker holds: nothing is created during the cooldown
    assert len(census.created) == 1 + FAST_HEALTH["maxRestarts"]
    assert not runtime_pods(kubectl, namespace)
    # Nothing kills it any more: after the cooldown one trial runs and closes it.
    eventually(
        lambda: (
            (s := status(kubectl, namespace, NAME)).get("phase") == "Running"
            and s.get("breaker", {}).get("state") == "closed"
        ),
        timeout=60,
        what="breaker closed after a healthy trial",
    )
    seen = reasons(kubectl, namespace)
    for reason in ("PodFailed", "CircuitOpen", "CircuitHalfOpen", "CircuitClosed"):
        assert reason in seen
    described = kubectl.run("describe", "tm", NAME, "-n", namespace).stdout
    assert "CircuitOpen" in described and "circuit breaker open" in described
    assert census.most == 1


HALTING_STRATEGY = {
    "base": "WETH",
    "quote": "USDC",
    "orderSize": "500",
    "emaPeriod": 2,
    "bandPercent": 0.01,
    "tickSeconds": 1,
}


def test_risk_halt_is_kept_across_pod_restarts_until_a_person_resumes(
    kubectl: Kubectl, namespace: str, operator_process: Path, census: PodCensus
) -> None:
    risk = copy.deepcopy(BASE["spec"]["risk"]) | {"maxDrawdownPercent": 0.0001}
    market = {"seed": 3, "stepSeconds": 1, "volatilityPercent": 1}
    kubectl.apply(manifest(risk=risk, strategy=HALTING_STRATEGY, marketData=market), namespace)
    st = eventually(
        lambda: (s := status(kubectl, namespace, NAME)).get("halt") and s,
        timeout=90,
        what="the runtime halts on its first trade",
    )
    halted_cond = next(c for c in st["conditions"] if c["type"] == "RiskHalted")
    assert halted_cond["status"] == "True"
    assert st["health"] == "Healthy"
    first = runtime_pods(kubectl, namespace)[0]
    time.sleep(FAST_HEALTH["intervalSeconds"] * 3)  # several probes: still not restarted
    assert [p["metadata"]["uid"] for p in runtime_pods(kubectl, namespace)] == [
        first["metadata"]["uid"]
    ]
    assert status(kubectl, namespace, NAME)["restarts"] == 0
    assert "RiskHalted" in reasons(kubectl, namespace)
    # The pod goes away; its replacement starts halted.
    kubectl.run("delete", "pod", first["metadata"]["name"], "-n", namespace, "--wait=false")
    second = eventually(
        lambda: (
            (p := running_pod(kubectl, namespace))
            and p["metadata"]["uid"] != first["metadata"]["uid"]
            and p
        ),
        timeout=60,
        what="replacement pod",
    )
    env = {e["name"]: e.get("value") for e in second["spec"]["containers"][0]["env"]}
    assert env["TRADEPLANE_START_HALTED"] == st["halt"]["reason"]
    assert health_of(second)["status"] == "halted"
    # A person resumes it.
    kubectl.run("annotate", "tm", NAME, "-n", namespace, "tradeplane.io/resume-halt=alice")
    third = eventually(
        lambda: (
            (p := running_pod(kubectl, namespace))
            and p["metadata"]["uid"] != second["metadata"]["uid"]
            and p
        ),
        timeout=60,
        what="pod restarted without the halt",
    )
    assert "TRADEPLANE_START_HALTED" not in {
        e["name"] for e in third["spec"]["containers"][0]["env"]
    }
    after = module(kubectl, namespace, NAME)
    assert after["status"]["lastResume"]["by"] == "alice"
    assert "tradeplane.io/resume-halt" not in (after["metadata"].get("annotations") or {})
    assert "Resumed" in reasons(kubectl, namespace)
    assert census.most == 1


def normalized(summary: dict[str, Any]) -> dict[str, Any]:
    keys = [
        "trades",
        "winRate",
        "realizedPnl",
        "unrealizedPnl",
        "profitFactor",
        "maxDrawdown",
        "capitalInUse",
    ]
    return {k: summary.get(k) for k in keys}


def test_status_and_printer_columns_match_the_runtime(
    kubectl: Kubectl, namespace: str, operator_process: Path
) -> None:
    strategy = HALTING_STRATEGY | {"bandPercent": 0.2}
    kubectl.apply(
        manifest(
            strategy=strategy, marketData={"seed": 5, "stepSeconds": 1, "volatilityPercent": 1}
        ),
        namespace,
    )
    pod = eventually(lambda: running_pod(kubectl, namespace), timeout=60, what="running pod")

    def agree() -> dict[str, Any] | None:
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/status", timeout=5) as r:
            runtime = normalized(json.load(r))
        st = status(kubectl, namespace, NAME)
        if runtime["trades"] and normalized(st.get("metrics") or {}) == runtime:
            return st
        return None

    st = eventually(agree, timeout=90, interval=0.5, what="status metrics equal the runtime's")
    row = kubectl.run("get", "tm", NAME, "-n", namespace, "--no-headers").stdout.split()
    header = kubectl.run("get", "tm", NAME, "-n", namespace).stdout.splitlines()[0].split()
    columns = dict(zip(header, row, strict=False))
    assert columns["HEALTH"] == "Healthy"
    assert columns["RESTARTS"] == str(st["restarts"])
    # The PnL column is the realized PnL the runtime reported at that write.
    assert columns["PNL"] == st["metrics"]["realizedPnl"]


def test_operator_killed_between_delete_and_create_leaves_one_pod(
    kubectl: Kubectl,
    own_namespace: str,
    start_operator: Callable[..., OperatorProcess],
    kubeconfig: Path,
) -> None:
    namespace = own_namespace
    census = PodCensus(kubeconfig, namespace)
    time.sleep(0.3)
    env = {"TRADEPLANE_STATUS_MIN_INTERVAL": "3", "TRADEPLANE_TERMINATION_GRACE_SECONDS": "2"}
    op = start_operator(namespace, env)
    kubectl.apply(manifest(), namespace)
    eventually(lambda: running_pod(kubectl, namespace), timeout=60, what="running pod")
    rng = random.Random(20261126)
    sizes = ["900", "1100"]
    for i in range(10):
        kubectl.patch_spec(namespace, NAME, {"risk": {"maxPositionSize": sizes[i % 2]}})
        time.sleep(rng.uniform(0.0, 2.5))  # somewhere in delete -> wait -> create
        op.kill()
        assert (
            len(
                [
                    p
                    for p in runtime_pods(kubectl, namespace)
                    if not p["metadata"].get("deletionTimestamp")
                ]
            )
            <= 1
        )
        op.start()
        eventually(
            lambda: (
                (p := running_pod(kubectl, namespace))
                and status(kubectl, namespace, NAME).get("observedGeneration")
                == module(kubectl, namespace, NAME)["metadata"]["generation"]
                and p
            ),
            timeout=60,
            what=f"one running pod after kill {i + 1}",
        )
        assert len(runtime_pods(kubectl, namespace)) == 1
    census.stop()
    assert census.most == 1, "two runtime pods existed at once"
    config = mounted_config(kubectl, runtime_pods(kubectl, namespace)[0])
    assert config["spec"]["risk"]["maxPositionSize"] == sizes[9 % 2]
