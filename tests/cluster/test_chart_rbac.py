"""The chart's RBAC is enough for the operator, and nothing more, on a real API server.

The chart's ServiceAccount and RBAC templates are rendered by the real `helm template`
(hack/helm, pinned, built from the Go module proxy) and applied. The operator then runs
as that ServiceAccount alone: a token from `kubectl create token`, a kubeconfig holding
only that token, the API server's URL and its CA. It must take the sample module to
Running, post events, apply a spec change, and clean up on delete, with no 403 anywhere.

Least privilege is shown from both sides:

- sufficient: the whole lifecycle works and neither the operator's log nor the API server
  reports a Forbidden;
- necessary: every (group, resource, verb) the chart grants is one the operator was seen
  using. A loopback tap between the operator and the API server records each request;
  it forwards the operator's own Authorization header and adds no credential, so every
  request is authorized as the ServiceAccount and nothing else.

Plus `kubectl auth can-i --as=system:serviceaccount:...`: no Secrets (the operator never
reads a secret's value: runtime pods get them through secretKeyRef), no namespace
deletion, no RBAC or impersonation, no exec.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import ClientSession, ClientTimeout, web

from tests.backtest_case import band_spec, candle_file
from tests.cluster.kubectl import Kubectl, eventually, mounted_config, runtime_configs

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tradeplane"
HELM = ROOT / "hack" / "helm"
SAMPLE = ROOT / "config" / "samples" / "dex_trading.yaml"
MODULE = "dex-trading"
POD = "dex-trading-runtime"

Grant = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)


# ---- rendering with the real helm ------------------------------------------------------


def helm_template(
    release: str, namespace: str, values: dict[str, Any], *templates: str
) -> list[Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(values, file)
        file.flush()
        shown = [arg for t in templates for arg in ("--show-only", f"templates/{t}")]
        out = subprocess.run(
            [str(HELM), "template", release, str(CHART), "--namespace", namespace,
             "--values", file.name, *shown],
            check=True, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def granted(docs: list[Any]) -> set[Grant]:
    grants: set[Grant] = set()
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        for rule in doc["rules"]:
            assert "nonResourceURLs" not in rule, rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    grants.update((group, resource, verb) for verb in rule["verbs"])
    return grants


# ---- the tap: what the operator asks the API server for --------------------------------


@dataclass
class Seen:
    method: str
    path: str
    status: int
    body: str = ""  # the start of an error response (empty for successes)

    @property
    def grant(self) -> Grant | None:
        """The RBAC (group, resource, verb) this request needs; None for discovery."""
        path, _, query = self.path.partition("?")
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) > 2:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) > 3:
            group, rest = parts[1], parts[3:]
        else:
            return None  # /api, /apis, /apis/<g>/<v>, /version: non-resource URLs
        if rest[0] == "namespaces" and len(rest) >= 3:
            rest = rest[2:]  # a namespaced resource; `namespaces[/name]` stays as it is
        resource = "/".join([rest[0], *rest[2:3]])
        named = len(rest) > 1
        watch = re.search(r"(?:^|&)watch=(?:true|1)(?:&|$)", query) is not None
        verb = {
            "GET": "watch" if watch else ("get" if named else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if named else "deletecollection",
        }[self.method]
        return group, resource, verb

    @property
    def denied_by_rbac(self) -> bool:
        # A namespace being deleted refuses new objects with a 403 too; that is admission
        # (NamespaceLifecycle), not RBAC, and happens to leftovers of other tests.
        return self.status == 403 and "being terminated" not in self.body


@dataclass
class ApiTap:
    """A plain-HTTP loopback proxy to the API server that records every request."""

    upstream: str
    ca_pem: str
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    def start(self) -> str:
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        assert started.wait(10), "the API tap did not start"
        return self.url

    def _serve(self, started: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        context = ssl.create_default_context(cadata=self.ca_pem)
        session: ClientSession | None = None

        async def handle(request: web.Request) -> web.StreamResponse:
            assert session is not None
            headers = {
                k: v for k, v in request.headers.items()
                if k.lower() in ("authorization", "content-type", "accept", "user-agent")
            }  # fmt: skip
            body = await request.read()
            async with session.request(
                request.method, self.upstream + request.path_qs, headers=headers,
                data=body or None, ssl=context, allow_redirects=False,
                skip_auto_headers=["Content-Type"],  # as sent: none when the client sent none
            ) as upstream:  # fmt: skip
                # Recorded as soon as the answer starts: a watch lasts until it is closed.
                seen = Seen(request.method, request.path_qs, upstream.status)
                self.seen.append(seen)
                response = web.StreamResponse(status=upstream.status)
                for name in ("Content-Type", "Audit-Id", "Warning"):
                    if name in upstream.headers:
                        response.headers[name] = upstream.headers[name]
                with contextlib.suppress(ConnectionError):
                    await response.prepare(request)
                    async for chunk in upstream.content.iter_any():
                        if upstream.status >= 400 and len(seen.body) < 4096:
                            seen.body += chunk.decode(errors="replace")
                        await response.write(chunk)
                    await response.write_eof()
                return response

        async def main() -> None:
            nonlocal session
            session = ClientSession(timeout=ClientTimeout(total=None, sock_read=None))
            app = web.Application(client_max_size=64 * 1024**2)
            app.router.add_route("*", "/{tail:.*}", handle)
            # A closed client connection cancels its handler: watches end with the operator.
            self._runner = web.AppRunner(
                app, access_log=None, handler_cancellation=True, shutdown_timeout=2
            )
            await self._runner.setup()
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            await web.TCPSite(self._runner, "127.0.0.1", port).start()
            self.url = f"http://127.0.0.1:{port}"
            started.set()

        loop.run_until_complete(main())
        loop.run_forever()
        if session is not None:
            loop.run_until_complete(session.close())
        loop.close()

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        runner = self._runner
        future = asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop)
        with contextlib.suppress(Exception):
            future.result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=15)

    def grants(self) -> set[Grant]:
        return {g for s in list(self.seen) if (g := s.grant) is not None}

    def denials(self) -> list[Seen]:
        return [s for s in list(self.seen) if s.denied_by_rbac]

    def watching(self, resource: str) -> bool:
        return any(g[1:] == (resource, "watch") for g in self.grants())


# ---- the ServiceAccount's credentials --------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    server: str
    ca_pem: str


def admin_cluster(kubeconfig: Path) -> Cluster:
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config.get("current-context") or config["contexts"][0]["name"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    if "certificate-authority-data" in cluster:
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    else:
        ca = (kubeconfig.parent / cluster["certificate-authority"]).read_text()
    return Cluster(server=cluster["server"], ca_pem=ca)


def write_kubeconfig(path: Path, server: str, token: str, ca_pem: str | None) -> Path:
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "cluster", "cluster": cluster}],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [
                    {"name": "operator", "context": {"cluster": "cluster", "user": "operator"}}
                ],
                "current-context": "operator",
            }
        )
    )
    path.chmod(0o600)
    return path


# ---- one chart installation (RBAC part) + the operator on it ---------------------------


@dataclass
class Install:
    kubectl: Kubectl
    release: str
    namespace: str  # the release's namespace: where the ServiceAccount lives
    docs: list[Any]
    account: str
    kubeconfig: Path  # the ServiceAccount's, straight to the API server
    tapped: Path  # the same token, through the tap
    tap: ApiTap

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.account}"

    def can_i(self, *args: str) -> bool:
        result = self.kubectl.run("auth", "can-i", *args, "--as", self.user, check=False)
        return result.stdout.strip() == "yes"


@pytest.fixture
def modules_namespace(kubectl: Kubectl) -> Iterator[str]:
    """Where the sample goes: a namespace no other test's operator watches (the session
    operator of tests/cluster watches t-*)."""
    name = f"rbac-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@contextlib.contextmanager
def installed(
    kubectl: Kubectl, kubeconfig: Path, namespace: str, tmp_path: Path, values: dict[str, Any]
) -> Iterator[Install]:
    release = f"tp{uuid.uuid4().hex[:6]}"
    templates = ["serviceaccount.yaml", "rbac.yaml"]
    if values.get("peering", {}).get("enabled"):
        templates.append("peering.yaml")
        kubectl.run("apply", "-f", str(CHART / "crds" / "kopfpeerings.yaml"))
        for crd in ("kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
            kubectl.run("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    docs = helm_template(release, namespace, values, *templates)
    manifest = yaml.safe_dump_all(docs)
    kubectl.run("apply", "-f", "-", stdin=manifest)
    tap: ApiTap | None = None
    try:
        account = next(d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount")
        token = kubectl.run(
            "create", "token", account, "-n", namespace, "--duration=1h"
        ).stdout.strip()
        cluster = admin_cluster(kubeconfig)
        tap = ApiTap(cluster.server.rstrip("/"), cluster.ca_pem)
        tap.start()
        yield Install(
            kubectl=kubectl,
            release=release,
            namespace=namespace,
            docs=docs,
            account=account,
            kubeconfig=write_kubeconfig(
                tmp_path / "sa.kubeconfig", cluster.server, token, cluster.ca_pem
            ),
            tapped=write_kubeconfig(tmp_path / "sa-tapped.kubeconfig", tap.url, token, None),
            tap=tap,
        )
    finally:
        if tap is not None:
            tap.stop()
            # What the operator asked for, for whoever reads a failure.
            (tmp_path / "api-requests.txt").write_text(
                "".join(f"{s.status} {s.method} {s.path} {s.grant}\n" for s in tap.seen)
            )
        kubectl.run(
            "delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=manifest, check=False
        )


class Operator:
    """`tradeplane-operator` as its own process, with only the given kubeconfig."""

    def __init__(self, kubeconfig: Path, log: Path, *args: str) -> None:
        self.log = log
        home = log.parent / f"home-{log.stem}"
        home.mkdir()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),  # no ~/.kube/config to fall back on
            "LANG": "C.UTF-8",
            "KUBECONFIG": str(kubeconfig),
            "TRADEPLANE_STATUS_MIN_INTERVAL": "3",
            "TRADEPLANE_TERMINATION_GRACE_SECONDS": "5",
        }
        script = Path(sys.executable).parent / "tradeplane-operator"
        liveness, metrics = free_port(), free_port()
        self.liveness = f"http://127.0.0.1:{liveness}/healthz"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(script), *args, "--log-level", "DEBUG", "--liveness", self.liveness,
                 "--metrics-bind", f"127.0.0.1:{metrics}"],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=home,
            )  # fmt: skip

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"operator exited ({self.proc.returncode}):\n{self.text()[-4000:]}"
            )
        return True

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FORBIDDEN = re.compile(r"forbidden|(?<![\w.:+-])403(?![\w.:])", re.IGNORECASE)


def forbidden_lines(text: str) -> list[str]:
    return [
        line for line in text.splitlines()
        if FORBIDDEN.search(line) and "being terminated" not in line
    ]  # fmt: skip


def no_namespace_terminating(kubectl: Kubectl) -> None:
    """Leftovers of earlier tests refuse new objects with a 403 of their own; let them go."""
    with contextlib.suppress(AssertionError):
        eventually(
            lambda: all(
                ns["status"].get("phase") != "Terminating"
                for ns in kubectl.json("get", "namespaces")["items"]
            ),
            timeout=90,
            interval=1,
            what="no namespace terminating",
        )


def working(op: Operator) -> bool:
    """Whether kopf's last word on peering was to resume (it starts paused)."""
    said = re.findall(r"(Resuming|Pausing) operations", op.text())
    return bool(said) and said[-1] == "Resuming"


def status(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    doc = kubectl.json("get", "tradingmodule", MODULE, "-n", namespace)
    found: dict[str, Any] = doc.get("status") or {}
    return found


def runtime_pod(kubectl: Kubectl, namespace: str) -> dict[str, Any] | None:
    pods = kubectl.pods(namespace, "app.kubernetes.io/managed-by=tradeplane-operator")
    return pods[0] if len(pods) == 1 else None


def backtest_twice(kubectl: Kubectl, namespace: str) -> None:
    """A backtest's report map created, then rewritten (patch) when a new spec reruns it."""
    candles = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "candles"}}
    candles["data"] = {"candles.csv": candle_file()}
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(candles))
    source = {"source": "csv", "configMap": "candles", "key": "candles.csv", "timeframe": "1m"}
    doc = {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingModule",
        "metadata": {"name": "bt"},
        "spec": band_spec(source | {"feeBps": 30}),
    }

    def report(generation: int) -> dict[str, Any] | None:
        tm = kubectl.json("get", "tm", "bt", "-n", namespace)
        st = tm.get("status") or {}
        if st.get("phase") != "Succeeded" or st.get("observedGeneration") != generation:
            return None
        found = kubectl.run("get", "cm", "bt-backtest", "-n", namespace, "-o", "json", check=False)
        if found.returncode != 0:
            return None
        written: dict[str, Any] = json.loads(json.loads(found.stdout)["data"]["report.json"])
        return written if written.get("fees") == (st.get("backtest") or {}).get("fees") else None

    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(doc))
    first = eventually(lambda: report(1), timeout=90, what="the first backtest's report")
    kubectl.run(
        "patch", "tm", "bt", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"backtest": {"feeBps": 60}}}),
    )  # fmt: skip
    second = eventually(lambda: report(2), timeout=90, what="the rerun's report")
    assert second["fees"] != first["fees"]
    kubectl.run("delete", "tm", "bt", "-n", namespace, "--timeout=60s")


def lifecycle(kubectl: Kubectl, namespace: str, operators: list[Operator]) -> None:
    """The sample through its whole life, driven by the operator(s) under test."""
    kubectl.run("apply", "-n", namespace, "-f", str(SAMPLE))
    eventually(
        lambda: (
            all(op.alive() for op in operators)
            and status(kubectl, namespace).get("phase") == "Running"
        ),
        timeout=90,
        what="phase Running",
    )
    first = runtime_pod(kubectl, namespace)
    assert first is not None
    described = kubectl.run("describe", "tradingmodule", MODULE, "-n", namespace).stdout
    events = described.split("\nEvents:", 1)[1]
    assert "<none>" not in events.splitlines()[0], described
    assert re.search(r"Normal\s+Creating\s+.*creating runtime pod " + POD, events), described

    # A spec change: a new config map with the pod (create), the old pod replaced
    # (delete) and the old map removed (deletecollection).
    kubectl.run(
        "patch", "tradingmodule", MODULE, "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"strategy": {"bandPercent": 0.9}}}),
    )  # fmt: skip

    def replaced() -> bool:
        pod = runtime_pod(kubectl, namespace)
        return (
            pod is not None
            and pod["metadata"]["uid"] != first["metadata"]["uid"]
            and status(kubectl, namespace).get("phase") == "Running"
        )

    eventually(replaced, timeout=90, what="the pod replaced after a spec change")
    serving = runtime_pod(kubectl, namespace)
    assert serving is not None
    assert mounted_config(kubectl, serving)["spec"]["strategy"]["bandPercent"] == 0.9
    eventually(
        lambda: len(runtime_configs(kubectl, namespace)) == 1,
        timeout=30,
        what="the old config map removed",
    )
    backtest_twice(kubectl, namespace)

    # A portfolio: its status written, a person's resume annotation consumed, deleted.
    portfolio = {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingPortfolio",
        "metadata": {"name": "fleet"},
        "spec": {"budget": "100000"},
    }
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(portfolio))
    eventually(
        lambda: (
            kubectl.json("get", "tp", "fleet", "-n", namespace).get("status", {}).get("allocated")
        ),
        timeout=60,
        what="the portfolio's status",
    )
    kubectl.run("annotate", "tp", "fleet", "-n", namespace, "tradeplane.io/resume-halt=ops")
    eventually(
        lambda: (
            "tradeplane.io/resume-halt"
            not in (
                kubectl.json("get", "tp", "fleet", "-n", namespace)["metadata"].get("annotations")
                or {}
            )
        ),
        timeout=60,
        what="the resume annotation consumed",
    )
    kubectl.run("delete", "tp", "fleet", "-n", namespace, "--timeout=60s")

    # Delete: the operator's finalizer holds the module until its pod is gone.
    kubectl.run("delete", "tradingmodule", MODULE, "-n", namespace, "--wait=false")
    eventually(
        lambda: (
            kubectl.run("get", "tradingmodule", MODULE, "-n", namespace, check=False).returncode
            != 0
        ),
        timeout=90,
        what="the module deleted",
    )
    assert kubectl.pods(namespace, "app.kubernetes.io/managed-by=tradeplane-operator") == []
    eventually(
        lambda: runtime_configs(kubectl, namespace) == [], timeout=30, what="the config map deleted"
    )


def assert_least_privilege(install: Install, operators: list[Operator]) -> None:
    for op in operators:
        bad = forbidden_lines(op.text())
        assert not bad, "Forbidden in the operator log:\n" + "\n".join(bad[:20])
    denials = install.tap.denials()
    assert not denials, f"the API server refused: {denials[:10]}"
    used, given = install.tap.grants(), granted(install.docs)
    assert used <= given, f"used but not granted (and yet not refused?): {used - given}"
    assert given <= used, f"granted but never used, so not needed: {sorted(given - used)}"


# ---- the tests -------------------------------------------------------------------------


def test_operator_runs_on_the_chart_rbac_alone(
    kubectl: Kubectl,
    kubeconfig: Path,
    standin: Path,
    namespace: str,
    modules_namespace: str,
    tmp_path: Path,
) -> None:
    with installed(kubectl, kubeconfig, namespace, tmp_path, {}) as install:
        assert {d["kind"] for d in install.docs} == {
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
        }
        # The kubeconfig works on its own, straight to the API server (server + CA + token).
        own = Kubectl(kubectl.binary, install.kubeconfig)
        who = own.run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
        assert who.stdout == install.user
        no_namespace_terminating(kubectl)
        op = Operator(install.tapped, tmp_path / "operator.log", "--all-namespaces")
        try:
            eventually(
                lambda: (
                    op.alive()
                    and install.tap.watching("tradingmodules")
                    and install.tap.watching("pods")
                ),
                timeout=60,
                what="the operator watching",
            )
            lifecycle(kubectl, modules_namespace, [op])
        finally:
            op.stop()
        assert_least_privilege(install, [op])


def test_namespaced_operator_runs_on_roles(
    kubectl: Kubectl,
    kubeconfig: Path,
    standin: Path,
    namespace: str,
    modules_namespace: str,
    tmp_path: Path,
) -> None:
    values = {"watchNamespaces": [modules_namespace]}
    with installed(kubectl, kubeconfig, namespace, tmp_path, values) as install:
        roles = [
            (d["kind"], d["metadata"].get("namespace")) for d in install.docs if "Role" in d["kind"]
        ]
        assert sorted(roles, key=str) == sorted(
            [("ClusterRole", None), ("ClusterRoleBinding", None),
             ("Role", modules_namespace), ("RoleBinding", modules_namespace)], key=str,
        )  # fmt: skip
        # Cluster-wide, this ServiceAccount only sees namespaces and CRDs.
        assert not install.can_i("list", "pods", "--all-namespaces")
        assert not install.can_i("create", "pods", "-n", "default")
        assert install.can_i("create", "pods", "-n", modules_namespace)
        no_namespace_terminating(kubectl)
        op = Operator(install.tapped, tmp_path / "operator.log", "--namespace", modules_namespace)
        try:
            eventually(
                lambda: (
                    op.alive()
                    and install.tap.watching("tradingmodules")
                    and install.tap.watching("pods")
                ),
                timeout=60,
                what="the operator watching",
            )
            lifecycle(kubectl, modules_namespace, [op])
        finally:
            op.stop()
        assert_least_privilege(install, [op])
        assert "Not enough permissions" not in op.text()


def test_peering_replicas_run_on_the_chart_rbac(
    kubectl: Kubectl,
    kubeconfig: Path,
    standin: Path,
    namespace: str,
    modules_namespace: str,
    tmp_path: Path,
) -> None:
    peering = f"tp-{uuid.uuid4().hex[:8]}"
    values = {"peering": {"enabled": True, "name": peering}}
    with installed(kubectl, kubeconfig, namespace, tmp_path, values) as install:
        kinds = {d["kind"] for d in install.docs}
        assert "ClusterKopfPeering" in kinds
        no_namespace_terminating(kubectl)
        # The chart gives replica N the priority N: the highest index works.
        args = ["--all-namespaces", "--peering", peering, "--priority"]
        standby = Operator(install.tapped, tmp_path / "operator-0.log", *args, "0")
        active = Operator(install.tapped, tmp_path / "operator-1.log", *args, "1")
        operators = [standby, active]
        try:

            def peers() -> dict[str, Any]:
                doc = kubectl.json("get", "clusterkopfpeering", peering)
                found: dict[str, Any] = doc.get("status") or {}
                return found

            eventually(
                lambda: all(op.alive() for op in operators) and len(peers()) == 2,
                timeout=60,
                what="both replicas in the peering",
            )
            # Mandatory peering starts paused; the highest priority resumes. The other one
            # may resume for a moment if it started first, and pauses when it sees it.
            eventually(
                lambda: working(active) and not working(standby),
                timeout=30,
                what="replica 1 working, replica 0 standing by",
            )
            lifecycle(kubectl, modules_namespace, operators)
            assert "runtime pod " + POD + " created" in active.text()
            assert "runtime pod" not in standby.text()
        finally:
            for op in reversed(operators):
                op.stop()
        assert_least_privilege(install, operators)


def test_service_account_cannot_read_secrets_or_escalate(
    kubectl: Kubectl, kubeconfig: Path, namespace: str, modules_namespace: str, tmp_path: Path
) -> None:
    peering = f"tp-{uuid.uuid4().hex[:8]}"
    values = {"peering": {"enabled": True, "name": peering}}
    with installed(kubectl, kubeconfig, namespace, tmp_path, values) as install:
        never = [
            ("get", "secrets", "-n", modules_namespace),
            ("list", "secrets", "-n", modules_namespace),
            ("watch", "secrets", "--all-namespaces"),
            ("get", "secrets", "-n", namespace),
            ("delete", "namespaces"),
            ("create", "namespaces"),
            ("create", "pods", "--subresource=exec", "-n", modules_namespace),
            ("create", "pods", "--subresource=portforward", "-n", modules_namespace),
            ("update", "pods", "-n", modules_namespace),
            ("list", "configmaps", "-n", modules_namespace),
            ("create", "serviceaccounts", "--subresource=token", "-n", namespace),
            ("create", "roles.rbac.authorization.k8s.io", "-n", modules_namespace),
            ("escalate", "clusterroles.rbac.authorization.k8s.io"),
            ("bind", "clusterroles.rbac.authorization.k8s.io"),
            ("impersonate", "users"),
            ("impersonate", "serviceaccounts", "-n", namespace),
            ("create", "deployments.apps", "-n", modules_namespace),
            ("delete", "tradingmodules.tradeplane.io", "-n", modules_namespace),
            ("update", "customresourcedefinitions.apiextensions.k8s.io"),
            ("list", "nodes"),
            ("patch", "clusterkopfpeerings.kopf.dev/someone-elses"),
        ]
        allowed = [args for args in never if install.can_i(*args)]
        assert not allowed, f"{install.user} may: {allowed}"
        # ... while what it needs is there (the same check `kubectl auth can-i` users run).
        assert install.can_i("create", "pods", "-n", modules_namespace)
        modules = "tradingmodules.tradeplane.io"
        assert install.can_i("patch", modules, "--subresource=status", "-n", modules_namespace)
        assert not install.can_i("update", modules, "--subresource=status", "-n", modules_namespace)
        assert install.can_i("patch", f"clusterkopfpeerings.kopf.dev/{peering}")
        # And with its own credentials, straight to the API server: a Secret is refused.
        kubectl.run(
            "create",
            "secret",
            "generic",
            "wallet",
            "-n",
            modules_namespace,
            "--from-literal=key=0xdead",
        )
        refused = Kubectl(kubectl.binary, install.kubeconfig).run(
            "get", "secret", "wallet", "-n", modules_namespace, "-o", "yaml", check=False
        )
        assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused
        assert "0xdead" not in refused.stdout + refused.stderr


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"peering": {"enabled": True}, "dashboard": {"enabled": True}},
        {
            "watchNamespaces": ["default"],
            "peering": {"enabled": True},
            "runtime": {"databaseSecret": "db"},
        },
    ],
    ids=["standalone", "peering+dashboard", "namespaced+peering"],
)
def test_chart_objects_pass_server_side_validation(
    kubectl: Kubectl, namespace: str, values: dict[str, Any]
) -> None:
    """Every object the chart renders is valid for the real API server (dry run)."""
    kubectl.run("apply", "-f", str(CHART / "crds" / "kopfpeerings.yaml"))
    kubectl.run(
        "wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev", "--timeout=60s"
    )
    docs = helm_template(f"tp{uuid.uuid4().hex[:6]}", namespace, values)
    assert docs
    kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(docs))


@pytest.mark.skipif(
    bool(os.environ.get("TRADEPLANE_KUBECONFIG")),
    reason="a cluster with kubelets would really start the chart's operator next to the tests'",
)
def test_helm_install_upgrade_uninstall(kubectl: Kubectl, kubeconfig: Path, namespace: str) -> None:
    """The real `helm install` (CRDs from crds/, NOTES) on hack/testenv, which runs no pods."""
    release = f"tp{uuid.uuid4().hex[:6]}"
    fullname = f"{release}-tradeplane"

    def helm(*args: str) -> str:
        out = subprocess.run(
            [str(HELM), *args, "--kubeconfig", str(kubeconfig), "--namespace", namespace],
            check=True, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        return out.stdout

    peering = f"{release}-peering"
    installed = helm(
        "install", release, str(CHART), "--set", "dashboard.enabled=true",
        "--set", "peering.enabled=true", "--set", f"peering.name={peering}",
    )  # fmt: skip
    assert (
        "STATUS: deployed" in installed and "watches TradingModules in every namespace" in installed
    )
    for crd in (
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
        "tradingmodules.tradeplane.io",
    ):
        kubectl.run("get", "crd", crd)
    kubectl.run("get", "statefulset", fullname, "-n", namespace)
    kubectl.run("get", "clusterkopfpeering", peering)
    dashboard = kubectl.json("get", "configmap", f"{fullname}-dashboard", "-n", namespace)
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"

    upgraded = helm("upgrade", release, str(CHART), "--set", f"watchNamespaces={{{namespace}}}")
    assert f"watches TradingModules in: {namespace}" in upgraded
    kubectl.run("get", "deployment", fullname, "-n", namespace)
    kubectl.run("get", "role", fullname, "-n", namespace)
    assert kubectl.run("get", "statefulset", fullname, "-n", namespace, check=False).returncode != 0

    helm("uninstall", release, "--wait")
    for kind in ("clusterrole", "clusterrolebinding", "clusterkopfpeering"):
        name = peering if kind == "clusterkopfpeering" else fullname
        assert kubectl.run("get", kind, name, check=False).returncode != 0, kind
    kubectl.run("get", "crd", "tradingmodules.tradeplane.io")  # helm never deletes CRDs
