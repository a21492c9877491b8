"""Fixtures for tests against a real Kubernetes API server.

The cluster is `hack/testenv` (etcd, kube-apiserver and kube-controller-manager built
from source and run on loopback), or any cluster named by TRADEPLANE_KUBECONFIG (kind,
k3d) for users with Docker. The CRDs are applied once; each test gets a fresh namespace.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.census import PodCensus
from tests.cluster.kubectl import Kubectl, eventually
from tests.cluster.webhook_certs import make_certs

ROOT = Path(__file__).resolve().parents[2]
TESTENV = ROOT / "hack" / "testenv"


def _kubectl_binary() -> str:
    if os.environ.get("TRADEPLANE_KUBECONFIG") and shutil.which("kubectl"):
        return shutil.which("kubectl") or "kubectl"
    return (
        subprocess.run([str(TESTENV), "kubectl"], check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )


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

    def established() -> bool:
        crd = kc.json("get", "crd", "tradingmodules.tradeplane.io")
        return any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )

    eventually(established, timeout=60, what="the CRD is established")
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
def standin(
    kubeconfig: Path, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path | None]:
    """The kubelet stand-in: runs runtime pods as local processes on 127.0.0.N.

    None on an external cluster (TRADEPLANE_KUBECONFIG), whose own kubelets run the pods.
    """
    if os.environ.get("TRADEPLANE_KUBECONFIG"):
        yield None
        return
    from tests.kubelet_standin import start_standin, stop_standin

    state = tmp_path_factory.mktemp("standin")
    proc = start_standin(kubeconfig, state)
    try:
        yield state
    finally:
        stop_standin(proc)


@pytest.fixture
def local_pods(standin: Path | None) -> Path:
    """For tests that reach into a runtime process (signals, its log file)."""
    if standin is None:
        pytest.skip("needs the kubelet stand-in (pods as local processes)")
    return standin


class OperatorProcess:
    """The operator as users run it: its own process, the console script."""

    def __init__(self, kubeconfig: Path, log: Path, args: list[str], env: dict[str, str]) -> None:
        self.kubeconfig, self.log, self.args, self.env = kubeconfig, log, args, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()

    def start(self) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        script = Path(sys.executable).parent / "tradeplane-operator"
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(script),
                    *self.args,
                    "--log-level",
                    "DEBUG",
                    "--metrics-bind",
                    f"127.0.0.1:{self.metrics_port}",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        wanted = [b"initial authentication has finished"]
        if "--webhook-listen" in self.args:  # admission on: wait until it answers
            wanted.append(b"admission webhook ready")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"operator exited early:\n{self.log.read_text()[-4000:]}")
            with self.log.open("rb") as f:
                f.seek(offset)
                text = f.read().lower()
                if all(w in text for w in wanted):
                    return self
            time.sleep(0.1)
        pytest.fail(f"operator did not start:\n{self.log.read_text()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crashed or OOM-killed operator."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def webhook_args(cert_dir: Path, configuration: str) -> list[str]:
    """Serve the admission webhook on loopback and write its configuration (scoped to
    the operator's namespaces by the operator itself)."""
    if not (cert_dir / "tls.crt").exists():
        make_certs(cert_dir)
    return [
        "--webhook-listen",
        f"127.0.0.1:{free_port()}",
        "--webhook-cert-dir",
        str(cert_dir),
        "--webhook-configuration",
        configuration,
    ]


def delete_webhook_configuration(kubectl: Kubectl, name: str) -> None:
    kubectl.run("delete", "validatingwebhookconfiguration", name, "--ignore-not-found", check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def operator_process(
    kubeconfig: Path,
    kubectl: Kubectl,
    standin: Path | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """One operator for the tests' namespaces (t-*), serving the admission webhook for
    them; tests that kill or measure an operator start their own for a namespace of
    their own (`start_operator`)."""
    state = tmp_path_factory.mktemp("operator")
    log = state / "operator.log"
    env = {"TRADEPLANE_STATUS_MIN_INTERVAL": "3", "TRADEPLANE_TERMINATION_GRACE_SECONDS": "5"}
    configuration = f"tradeplane-test-{uuid.uuid4().hex[:8]}"
    args = ["--namespace", "t-*", *webhook_args(state / "webhook", configuration)]
    op = OperatorProcess(kubeconfig, log, args, env).start()
    try:
        yield log
    finally:
        op.stop()
        delete_webhook_configuration(kubectl, configuration)


@pytest.fixture
def own_namespace(kubectl: Kubectl) -> Iterator[str]:
    """A namespace the session operator does not watch."""
    name = f"o-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", name)
    try:
        yield name
    finally:
        release_modules(kubectl, name)
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def release_modules(kubectl: Kubectl, namespace: str) -> None:
    """No operator watches this namespace any more: drop the modules' finalizers so
    that deleting the namespace does not hang on them."""
    names = kubectl.run("get", "tm", "-n", namespace, "-o", "name", check=False).stdout.split()
    for name in names:
        kubectl.run(
            "patch",
            name,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )


@pytest.fixture
def start_operator(
    kubeconfig: Path, standin: Path | None, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(namespace: str, env: dict[str, str] | None = None, *args: str) -> OperatorProcess:
        op = OperatorProcess(
            kubeconfig,
            tmp_path / f"operator-{len(started)}.log",
            ["--namespace", namespace, *args],
            env or {},
        ).start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()


@pytest.fixture
def census(kubeconfig: Path, namespace: str) -> Iterator[PodCensus]:
    c = PodCensus(kubeconfig, namespace)
    time.sleep(0.3)  # the watch is established before anything is created
    yield c
    c.stop()
