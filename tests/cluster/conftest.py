"""Fixtures for tests against a real Kubernetes API server.

The cluster is `hack/testenv` (etcd, kube-apiserver and kube-controller-manager built
from source and run on loopback), or any cluster named by TRADEPLANE_KUBECONFIG (kind,
k3d) for users with Docker. The CRDs are applied once; each test gets a fresh namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[2]
TESTENV = ROOT / "hack" / "testenv"


def _kubectl_binary() -> str:
    if os.environ.get("TRADEPLANE_KUBECONFIG") and shutil.which("kubectl"):
        return shutil.which("kubectl") or "kubectl"
    return subprocess.run(
        [str(TESTENV), "kubectl"], check=True, capture_output=True, text=True
    ).stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    external = os.environ.get("TRADEPLANE_KUBECONFIG")
    if external:
        yield Path(external)
        return
    state = tmp_path_factory.mktemp("testenv")
    up = subprocess.run(
        [str(TESTENV), "up", str(state)], capture_output=True, text=True, timeout=3600
    )
    if up.returncode != 0:
        pytest.fail(f"hack/testenv up failed:\n{up.stderr[-4000:]}")
    try:
        yield Path(up.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run([str(TESTENV), "down", str(state)], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path) -> Kubectl:
    kc = Kubectl(_kubectl_binary(), kubeconfig)
    kc.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kc.run(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/tradingmodules.tradeplane.io",
    )
    return kc


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def standin(kubeconfig: Path, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The kubelet stand-in: runs runtime pods as local processes on 127.0.0.N."""
    from tests.kubelet_standin import start_standin, stop_standin

    state = tmp_path_factory.mktemp("standin")
    proc = start_standin(kubeconfig, state)
    try:
        yield state
    finally:
        stop_standin(proc)


@pytest.fixture(scope="session")
def operator_process(
    kubeconfig: Path, kubectl: Kubectl, standin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The operator as users run it: its own process, the console script."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    script = Path(sys.executable).parent / "tradeplane-operator"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(script), "--all-namespaces", "--log-level", "DEBUG"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while b"resuming" not in log.read_bytes().lower() and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"operator exited early:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
