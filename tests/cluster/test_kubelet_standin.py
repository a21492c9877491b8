"""The kubelet stand-in (tests/kubelet_standin) against a real kube-apiserver.

Cluster tests use the session control plane (tests/cluster/conftest.py). Each test
gets a fresh namespace and its own stand-in scoped to that namespace; pod IPs start at
127.0.0.200 so that they do not collide with a stand-in started elsewhere.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.kubelet_standin import start_standin, stop_standin
from tests.kubelet_standin.container_spec import expand, path_translator
from tests.kubelet_standin.kube import core_api, raw, status_of

NODE = "kubelet-standin-selftest"
cluster = pytest.mark.cluster


# -- unit tests (no cluster) ------------------------------------------------------------
def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$$(A) $(MISSING) $(A", env) == "$(A) $(MISSING) $(A"
    assert expand("cost $5 $$", env) == "cost $5 $"


def test_path_translation_longest_mount_wins() -> None:
    container = {
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/app"},
            {"name": "sec", "mountPath": "/etc/app/secret/"},
            {"name": "one", "mountPath": "/etc/one.json", "subPath": "x/one.json"},
        ]
    }
    dirs = {n: Path(f"/state/volumes/{n}") for n in ("cfg", "sec", "one")}
    translate = path_translator(container, dirs)
    assert translate("/etc/app/module.json") == "/state/volumes/cfg/module.json"
    assert translate("/etc/app") == "/state/volumes/cfg"
    assert translate("/etc/app/secret/key") == "/state/volumes/sec/key"
    assert translate("/etc/one.json") == "/state/volumes/one/x/one.json"
    assert translate("/etc/application") == "/etc/application"
    assert translate("relative/etc/app") == "relative/etc/app"


# -- cluster fixtures -------------------------------------------------------------------
@pytest.fixture(scope="module")
def kubeconfig(kubeconfig: Path) -> str:
    """The session's control plane (tests/cluster/conftest.py), as a string path."""
    return str(kubeconfig)


@pytest.fixture(scope="module")
def core(kubeconfig: str) -> Iterator[client.CoreV1Api]:
    api = core_api(kubeconfig)
    yield api
    try:
        api.delete_node(NODE, _preload_content=False)
    except Exception as exc:
        if status_of(exc) != 404:
            raise


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"standin-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    # The stand-in is stopped by now: remove the pods for good, then the namespace.
    core.delete_collection_namespaced_pod(name, grace_period_seconds=0, _preload_content=False)
    core.delete_namespace(name, _preload_content=False)


@dataclass
class Standin:
    proc: subprocess.Popen[bytes]
    state_dir: Path
    kubeconfig: str
    namespace: str

    def restart(self, crash: bool) -> None:
        """Stop (SIGKILL when `crash`: no cleanup at all) and start again, same state."""
        if crash:
            self.proc.kill()
            self.proc.wait()
        else:
            stop_standin(self.proc)
        self.proc = start_standin(
            self.kubeconfig,
            self.state_dir,
            node_name=NODE,
            namespaces=[self.namespace],
            first_ip=200,
        )

    def log_of(self, pod: dict[str, Any]) -> str:
        meta = pod["metadata"]
        path = self.state_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
        log = path / "container.log"
        return log.read_text(errors="replace") if log.exists() else ""


@pytest.fixture
def standin(kubeconfig: str, namespace: str, tmp_path: Path) -> Iterator[Standin]:
    state = tmp_path / "standin"
    proc = start_standin(kubeconfig, state, node_name=NODE, namespaces=[namespace], first_ip=200)
    handle = Standin(proc, state, kubeconfig, namespace)
    yield handle
    assert stop_standin(handle.proc) == 0


# -- helpers ----------------------------------------------------------------------------
def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def read_pod(core: client.CoreV1Api, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return raw(core.read_namespaced_pod, name, ns)
    except Exception as exc:
        if status_of(exc) == 404:
            return None
        raise


def create_pod(
    core: client.CoreV1Api, ns: str, name: str, container: dict[str, Any], **spec: Any
) -> dict[str, Any]:
    # nodeSelector: a stand-in for another Node (a shared one) must leave it alone.
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "main", "image": "ignored.example/none:1", **container}],
            "nodeSelector": {"kubernetes.io/hostname": NODE},
            **spec,
        },
    }
    return raw(core.create_namespaced_pod, ns, body)


def condition(pod: dict[str, Any], type_: str) -> str | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond["type"] == type_:
            return str(cond["status"])
    return None


def pid_of(pod: dict[str, Any]) -> int:
    return int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("standin://"))


def alive(pid: int) -> bool:
    """Running (a killed orphan may stay a zombie until init reaps it: that is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# A small server: prints what it got (config file via the translated path, a secret)
# and says when it receives SIGTERM.
SERVER = """
import http.server, os, signal, sys
def on_term(*_):
    print("got SIGTERM", flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
print("config=" + open(os.environ["GREETING_FILE"]).read(), flush=True)
print("secret=" + os.environ["API_KEY"], flush=True)
print("config-path=" + os.environ["GREETING_FILE"], flush=True)
http.server.ThreadingHTTPServer(
    (sys.argv[1], int(sys.argv[2])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


# -- cluster tests ----------------------------------------------------------------------
@cluster
def test_http_pod_is_bound_running_ready_and_serves(
    core: client.CoreV1Api, namespace: str, standin: Standin
) -> None:
    create_pod(
        core,
        namespace,
        "web",
        {
            "command": [sys.executable, "-m", "http.server"],
            "args": ["--bind", "$(TRADEPLANE_LISTEN_ADDRESS)", "8080"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        },
    )
    pod = wait_for(
        "pod web Ready",
        lambda: (p := read_pod(core, namespace, "web")) and condition(p, "Ready") == "True" and p,
    )
    status = pod["status"]
    assert pod["spec"]["nodeName"] == NODE
    assert status["phase"] == "Running"
    assert re.fullmatch(r"127\.0\.0\.\d+", status["podIP"])
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == "127.0.0.1"
    assert condition(pod, "ContainersReady") == "True"
    cstatus = status["containerStatuses"][0]
    assert cstatus["ready"] and cstatus["started"] and cstatus["restartCount"] == 0
    assert "running" in cstatus["state"]
    with urllib.request.urlopen(f"http://{status['podIP']}:8080/", timeout=5) as resp:
        assert resp.status == 200


@cluster
def test_volume_secret_env_and_graceful_delete(
    core: client.CoreV1Api, namespace: str, standin: Standin
) -> None:
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="greeting"), data={"text": "hello from a configmap"}
        ),
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="api"), string_data={"key": "s3cr3t"}),
    )
    created = create_pod(
        core,
        namespace,
        "server",
        {
            "command": [sys.executable, "-c", SERVER, "$(TRADEPLANE_LISTEN_ADDRESS)", "8080"],
            "env": [
                {"name": "GREETING_FILE", "value": "/etc/greeting/hello.txt"},
                {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "api", "key": "key"}}},
            ],
            "volumeMounts": [{"name": "greeting", "mountPath": "/etc/greeting", "readOnly": True}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
        },
        volumes=[
            {
                "name": "greeting",
                "configMap": {"name": "greeting", "items": [{"key": "text", "path": "hello.txt"}]},
            }
        ],
    )
    pod = wait_for(
        "pod server Ready",
        lambda: (
            (p := read_pod(core, namespace, "server")) and condition(p, "Ready") == "True" and p
        ),
    )
    log = standin.log_of(created)
    assert "config=hello from a configmap" in log
    assert "secret=s3cr3t" in log
    pod_dir = standin.state_dir / "pods" / f"{namespace}_server_{created['metadata']['uid']}"
    assert f"config-path={pod_dir}/volumes/greeting/hello.txt" in log

    pid = pid_of(pod)
    core.delete_namespaced_pod("server", namespace, _preload_content=False)  # default grace
    wait_for("pod server gone from the API", lambda: read_pod(core, namespace, "server") is None)
    assert "got SIGTERM" in standin.log_of(created)
    assert not alive(pid)


@cluster
def test_never_restart_exit_3_is_failed(
    core: client.CoreV1Api, namespace: str, standin: Standin
) -> None:
    create_pod(
        core,
        namespace,
        "exit3",
        {
            "command": [sys.executable, "-c", "import sys; print('bye'); sys.exit(3)"],
        },
        restartPolicy="Never",
    )
    pod = wait_for(
        "pod exit3 Failed",
        lambda: (
            (p := read_pod(core, namespace, "exit3"))
            and p.get("status", {}).get("phase") == "Failed"
            and p
        ),
    )
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"
    assert terminated["finishedAt"]
    assert condition(pod, "Ready") == "False"


@cluster
def test_always_restart_counts_restarts(
    core: client.CoreV1Api, namespace: str, standin: Standin
) -> None:
    create_pod(core, namespace, "crashy", {"command": ["sh", "-c", "echo run; exit 1"]})
    pod = wait_for(
        "a restart",
        lambda: (
            (p := read_pod(core, namespace, "crashy"))
            and (p.get("status", {}).get("containerStatuses") or [{}])[0].get("restartCount", 0)
            >= 1
            and p
        ),
    )
    cstatus = pod["status"]["containerStatuses"][0]
    assert cstatus["lastState"]["terminated"]["exitCode"] == 1
    assert pod["status"]["phase"] == "Running"


@cluster
def test_stopping_the_standin_leaves_no_process(
    core: client.CoreV1Api, namespace: str, standin: Standin
) -> None:
    create_pod(core, namespace, "sleeper", {"command": ["sleep", "600"]})
    pod = wait_for(
        "pod sleeper Running",
        lambda: (
            (p := read_pod(core, namespace, "sleeper"))
            and p.get("status", {}).get("phase") == "Running"
            and p
        ),
    )
    pid = pid_of(pod)
    assert alive(pid)
    assert stop_standin(standin.proc) == 0
    assert not alive(pid)


@cluster
def test_restarted_standin_recovers_its_pods(
    core: client.CoreV1Api, namespace: str, standin: Standin
) -> None:
    """After a crash of the stand-in, its old processes are killed (pidfiles); the pods
    restart (restartCount + 1), except restartPolicy Never: Failed, StandInRestarted."""
    create_pod(core, namespace, "always", {"command": ["sleep", "600"]})
    create_pod(core, namespace, "never", {"command": ["sleep", "600"]}, restartPolicy="Never")

    def running_pod(name: str) -> dict[str, Any] | None:
        pod = read_pod(core, namespace, name)
        return pod if pod and pod.get("status", {}).get("phase") == "Running" else None

    running = {
        n: wait_for(f"pod {n} Running", functools.partial(running_pod, n))
        for n in ("always", "never")
    }
    old_pids = {name: pid_of(pod) for name, pod in running.items()}
    standin.restart(crash=True)
    wait_for("old processes killed", lambda: not any(alive(p) for p in old_pids.values()), 5)

    never = wait_for(
        "pod never Failed",
        lambda: (
            (p := read_pod(core, namespace, "never")) and p["status"]["phase"] == "Failed" and p
        ),
    )
    assert never["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == (
        "StandInRestarted"
    )
    always = wait_for(
        "pod always restarted",
        lambda: (
            (p := read_pod(core, namespace, "always"))
            and condition(p, "Ready") == "True"
            and p["status"]["containerStatuses"][0]["restartCount"] == 1
            and p
        ),
    )
    assert always["status"]["podIP"] == running["always"]["status"]["podIP"]
    assert alive(pid_of(always)) and pid_of(always) != old_pids["always"]
