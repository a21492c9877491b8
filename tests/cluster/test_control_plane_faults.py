"""The API server, then etcd, restarted under 50 running modules.

On a control plane of its own (hack/testenv up, then `hack/testenv restart DIR
apiserver|etcd`), so the session control plane the other tests share is never touched.
Pods are marked Running by the bare pod-status writer (tests/pod_status_writer.py: one
shared /healthz, no runtime processes): 50 real runtimes do not fit beside the rest of
the suite on two cores, and what is under test is the operator's side of the fault.

After each restart: no module ever had two pods (a watch counts every pod event
throughout, across the restart), every module keeps its pod and its status (phase,
health, pod name, restart count), and the operator works again: a module applied after
the restart gets its pod and becomes Healthy, and a runtime pod deleted after the
restart is replaced. The time to reconverge is recorded (junit property), not asserted:
no timing assertion in a test.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.census import PodCensus
from tests.cluster.conftest import TESTENV, OperatorProcess, _kubectl_binary
from tests.cluster.kubectl import Kubectl, eventually

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
NS = "faults"
MODULES = 50
BASE: dict[str, Any] = yaml.safe_load((ROOT / "config/samples/dex_trading.yaml").read_text())


class Plane:
    def __init__(self, state: Path, kubeconfig: Path) -> None:
        self.state, self.kubeconfig = state, kubeconfig
        self.kubectl = Kubectl(_kubectl_binary(), kubeconfig)

    def restart(self, component: str) -> None:
        run = subprocess.run(
            [str(TESTENV), "restart", str(self.state), component],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0, run.stderr[-4000:]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    state = tmp_path_factory.mktemp("faults-plane")
    up = subprocess.run([str(TESTENV), "up", str(state)], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"hack/testenv up failed:\n{up.stderr[-4000:]}")
    plane = Plane(state, Path(up.stdout.strip().splitlines()[-1]))
    try:
        plane.kubectl.run("apply", "--server-side", "-f", str(ROOT / "crds"))
        eventually(
            lambda: plane.kubectl.run("get", "tm", "-A", check=False).returncode == 0,
            what="the TradingModule API",
        )
        plane.kubectl.run("create", "namespace", NS)
        yield plane
    finally:
        subprocess.run([str(TESTENV), "down", str(state)], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def fleet(plane: Plane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    logs = tmp_path_factory.mktemp("faults-logs")
    net = os.environ.get("TRADEPLANE_STANDIN_NET", "127.0.0")
    with (logs / "writer.log").open("wb") as out:
        writer = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.pod_status_writer"),
                *(str(plane.kubeconfig), NS, f"{net}.251", "8080"),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    operator = OperatorProcess(plane.kubeconfig, logs / "operator.log", ["--namespace", NS], {})
    try:
        operator.start()
        plane.kubectl.apply("---\n".join(module(f"m{i:02d}", i) for i in range(MODULES)), NS)
        eventually(
            lambda: len(healthy(plane.kubectl)) == MODULES,
            timeout=300,
            interval=1,
            what=f"{MODULES} modules Running and Healthy",
        )
        yield operator
    finally:
        operator.stop()
        writer.terminate()
        writer.wait(timeout=10)


def module(name: str, seed: int) -> str:
    doc = copy.deepcopy(BASE)
    doc["metadata"]["name"] = name
    doc["spec"]["marketData"]["seed"] = seed
    doc["spec"].pop("health", None)
    return yaml.safe_dump(doc)


def statuses(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    return {
        item["metadata"]["name"]: item.get("status") or {}
        for item in kubectl.json("get", "tm", "-n", NS)["items"]
    }


def healthy(kubectl: Kubectl) -> set[str]:
    return {
        name
        for name, status in statuses(kubectl).items()
        if status.get("phase") == "Running" and status.get("health") == "Healthy"
    }


def pod_uids(kubectl: Kubectl) -> dict[str, str]:
    return {
        pod["metadata"]["name"]: pod["metadata"]["uid"]
        for pod in kubectl.json("get", "pods", "-n", NS)["items"]
        if pod["metadata"].get("deletionTimestamp") is None
    }


KEPT = ("phase", "health", "podName", "restarts", "breaker")


@pytest.mark.parametrize("component", ["apiserver", "etcd"])
def test_operator_reconverges_after_a_restart(
    plane: Plane,
    fleet: OperatorProcess,
    component: str,
    record_property: Any,
) -> None:
    kubectl = plane.kubectl
    census = PodCensus(plane.kubeconfig, NS)
    try:
        before = statuses(kubectl)
        pods_before = pod_uids(kubectl)
        started = time.monotonic()
        plane.restart(component)
        restarted = time.monotonic()
        assert fleet.proc is not None and fleet.proc.poll() is None, "the operator died"

        # The operator's watches and writes work again: a new module gets its pod and
        # becomes Healthy, and a deleted runtime pod is replaced.
        fresh = f"after-{component}"
        kubectl.apply(module(fresh, 99), NS)
        victim = "m07-runtime"
        kubectl.run("delete", "pod", "-n", NS, victim, "--wait=false")
        eventually(
            lambda: (
                {fresh, "m07"} <= healthy(kubectl)
                and pod_uids(kubectl).get(victim) not in (None, pods_before[victim])
            ),
            timeout=120,
            interval=0.5,
            what=f"the operator working again after the {component} restart",
        )
        reconverged = time.monotonic()
        record_property(f"{component}_restart_seconds", round(restarted - started, 1))
        record_property(f"{component}_reconverge_seconds", round(reconverged - restarted, 1))

        after = statuses(kubectl)
        for name, status in before.items():
            if name == "m07" or name.startswith("after-"):
                continue  # its pod was deleted on purpose / applied during this test
            assert {k: status.get(k) for k in KEPT} == {k: after[name].get(k) for k in KEPT}, name
        pods_after = pod_uids(kubectl)
        unchanged = {n: u for n, u in pods_before.items() if n != victim}
        assert {n: pods_after.get(n) for n in unchanged} == unchanged, "pods were replaced"
        assert census.most_for_one_module == 1, "a module had two pods at once"
    finally:
        census.stop()
        kubectl.run("delete", "tm", "-n", NS, f"after-{component}", "--wait=false", check=False)
