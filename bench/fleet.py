"""The operator at 1,000 modules, against kube-controller-manager's ReplicaSet controller.

    python -m bench.fleet [--modules 1000] [--samples 40] [--minutes 2]

One control plane (hack/testenv with the replicaset-controller as well), the operator as
its own process, and the bare pod-status writer (tests/pod_status_writer.py) instead of
the kubelet stand-in: no runtime process runs, every pod's health is one shared tiny
/healthz, so the operator's own cost is what is measured.

- P4 cold start: N modules exist before the operator starts; time until every one is
  Running and Healthy, and the number of duplicate pods (two live pods of one module at
  any moment, from a watch that sees every pod event), which must be 0.
- P3 steady state: API writes (the API server's `apiserver_request_total`) per module
  per minute, and the operator's RSS.
- P1 latency: with N modules present, apply a new module -> its runtime Pod created
  (seen on a watch), p50/p99; interleaved with the baseline ReplicaSet created -> its
  Pod created, in the same cluster and run; the ratio of the two.
- P4 restart: the operator restarted with N converged modules; time until every module
  has been probed and its status written again; duplicate pods.

No test asserts on these numbers; goals are printed beside them.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch

from tests.cluster.kubectl import Kubectl
from tests.cluster.test_operator import api_write_counts

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
GROUP, VERSION, PLURAL = "tradeplane.io", "v1alpha1", "tradingmodules"
MODULE_UID = "tradeplane.io/module-uid"


class PodWatch:
    """Every pod event of the namespace: when each pod was first seen, live pods per owner.

    The owner of a runtime pod is its module (the module-uid label); of a baseline pod,
    its ReplicaSet. `duplicates` counts the times an owner had two live pods at once.
    """

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self.first_seen: dict[str, float] = {}  # owner -> monotonic time of its first pod
        self.live: dict[str, set[str]] = defaultdict(set)
        self.duplicates = 0
        self.cond = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def owner(pod: Any) -> str:
        labels = pod.metadata.labels or {}
        if MODULE_UID in labels:
            return labels[MODULE_UID]
        refs = pod.metadata.owner_references or []
        return refs[0].uid if refs else pod.metadata.uid

    def _run(self) -> None:
        version = ""
        while True:
            try:
                for event in watch.Watch().stream(
                    self._core.list_namespaced_pod,
                    NAMESPACE,
                    resource_version=version,
                    timeout_seconds=300,
                ):
                    at = time.monotonic()
                    pod = event["object"]
                    version = pod.metadata.resource_version
                    key = self.owner(pod)
                    with self.cond:
                        if event["type"] == "DELETED":
                            self.live[key].discard(pod.metadata.uid)
                        elif pod.metadata.uid not in self.live[key]:
                            self.live[key].add(pod.metadata.uid)
                            self.first_seen.setdefault(key, at)
                            if len(self.live[key]) > 1:
                                self.duplicates += 1
                        self.cond.notify_all()
            except Exception:
                time.sleep(0.2)  # watch expired or API restarting: resume (or relist)

    def wait_for(self, owner: str, timeout: float = 60) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: owner in self.first_seen, timeout):
                raise TimeoutError(f"no pod for {owner} in {timeout}s")
            return self.first_seen[owner]


def module_doc(base: dict[str, Any], name: str, seed: int) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    doc["metadata"] = {"name": name, "namespace": NAMESPACE}
    doc["spec"]["marketData"]["seed"] = seed
    doc["spec"].pop("health", None)  # the default probe interval (10 s)
    return doc


def replica_set(name: str) -> dict[str, Any]:
    labels = {"bench-rs": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "tradeplane/none:0"}]},
            },
        },
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Fleet:
    def __init__(self, state: Path, args: argparse.Namespace) -> None:
        self.state, self.args = state, args
        testenv = str(ROOT / "hack/testenv")
        env = {**os.environ, "TESTENV_EXTRA_CONTROLLERS": "replicaset-controller"}
        up = subprocess.run(
            [testenv, "up", str(state / "cluster")], capture_output=True, text=True, env=env
        )
        if up.returncode:
            raise SystemExit(up.stderr)
        self.kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        binary = subprocess.run([testenv, "kubectl"], capture_output=True, text=True)
        self.kubectl = Kubectl(binary.stdout.strip().splitlines()[-1], self.kubeconfig)
        api = config.new_client_from_config(str(self.kubeconfig))  # type: ignore[no-untyped-call]
        api.configuration.connection_pool_maxsize = 16
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.kubectl.run("apply", "--server-side", "-f", str(ROOT / "crds"))
        self.kubectl.run("wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}")
        self.kubectl.run("create", "namespace", NAMESPACE)
        self.watch = PodWatch(api)
        net = os.environ.get("TRADEPLANE_STANDIN_NET", "127.0.0")
        self.pod_ip = f"{net}.{args.pod_host}"
        self.writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.pod_status_writer",
                str(self.kubeconfig),
                NAMESPACE,
                self.pod_ip,
                "8080",
            ],
            cwd=ROOT,
            stdout=(state / "writer.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.operator: subprocess.Popen[bytes] | None = None
        self.base = yaml.safe_load((ROOT / "config/samples/dex_trading.yaml").read_text())

    def start_operator(self) -> None:
        extra = dict(kv.split("=", 1) for kv in self.args.operator_env)
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **extra}
        script = Path(sys.executable).parent / "tradeplane-operator"
        cmd = [str(script), "--namespace", NAMESPACE, "--metrics-bind", ""]
        if self.args.trace_memory:
            out = self.state / "memory.txt"
            tracer = str(ROOT / "bench" / "trace_memory.py")  # by path: ROOT/operator/ would
            cmd = [sys.executable, tracer, str(out), "60", "--", *cmd[1:]]  # shadow `operator`
            print(f"  tracing the operator's memory into {out}")
        elif self.args.profile:
            out = self.state / f"profile-{time.monotonic():.0f}.txt"
            spy = str(Path(sys.executable).parent / "py-spy")
            cmd = [spy, "record", "--nonblocking", "-f", "raw", "-o", str(out), "--", *cmd]
            print(f"  profiling the operator into {out}")
        with (self.state / "operator.log").open("ab") as log:
            self.operator = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.send_signal(signal.SIGINT if self.args.profile else signal.SIGTERM)
            self.operator.wait(timeout=60)
            self.operator = None

    def operator_pid(self) -> int:
        assert self.operator is not None
        if not self.args.profile:
            return self.operator.pid
        children = Path(f"/proc/{self.operator.pid}/task/{self.operator.pid}/children")
        return int(children.read_text().split()[0])

    def create_modules(self, count: int) -> None:
        docs = [module_doc(self.base, f"m{i:04d}", i) for i in range(count)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self._create_module, docs))

    def _create_module(self, doc: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, doc
        )
        return created

    def modules(self) -> list[dict[str, Any]]:
        listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
        return list(listed["items"])

    def wait_all(self, done: Any, what: str, limit: float = 900) -> float:
        start = time.monotonic()
        while True:
            items = self.modules()
            count = sum(1 for item in items if done(item))
            print(f"\r  {count}/{len(items)} {what}", end="", flush=True)
            if count == len(items):
                print()
                return time.monotonic() - start
            if time.monotonic() - start > limit:
                raise SystemExit(f"\n{what}: not all after {limit}s")
            time.sleep(1)

    def close(self) -> None:
        try:
            self.stop_operator()
        finally:
            self.writer.terminate()
            self.writer.wait(timeout=10)
            subprocess.run(
                [str(ROOT / "hack/testenv"), "down", str(self.state / "cluster")],
                capture_output=True,
            )


def healthy(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    return status.get("phase") == "Running" and status.get("health") == "Healthy"


def run(fleet: Fleet, args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    n = args.modules
    rows: list[tuple[str, str, str, str]] = []
    print(f"creating {n} modules (operator not running yet)")
    fleet.create_modules(n)

    print("P4 cold start: operator starts with them all present")
    writes_before = api_write_counts(fleet.kubectl)
    t0 = time.monotonic()
    fleet.start_operator()
    fleet.wait_all(healthy, "Running+Healthy")
    cold = time.monotonic() - t0
    rows.append((f"P4 cold start, {n} modules -> all Healthy", f"{cold:.1f} s", "<= 60 s", ""))
    rows.append(("P4 duplicate pods (cold start)", str(fleet.watch.duplicates), "0", ""))
    spent = api_write_counts(fleet.kubectl) - writes_before  # the writer's pod status too
    for key, count in sorted(spent.items(), key=lambda kv: -kv[1])[:6]:
        print(f"  {key}: {count / n:.2f} per module during the cold start")
    if args.cold_only:
        return rows

    print(f"settling 30 s, then counting API writes for {args.minutes} min")
    time.sleep(30)
    before, t1 = api_write_counts(fleet.kubectl), time.monotonic()
    time.sleep(args.minutes * 60)
    after = api_write_counts(fleet.kubectl)
    minutes = (time.monotonic() - t1) / 60
    writes = sum((after - before).values())
    per = writes / n / minutes
    rows.append((f"P3 API writes / module / min ({n})", f"{per:.3f}", "<= 1", ""))
    for key, count in sorted((after - before).items(), key=lambda kv: -kv[1])[:4]:
        print(f"  {key}: {count / n / minutes:.3f} per module per minute")
    rss = rss_mib(fleet.operator_pid())
    rows.append((f"P3 operator RSS ({n} modules)", f"{rss:.0f} MiB", "<= 200 MB", ""))

    print(f"P1: {args.samples} new modules and {args.samples} ReplicaSets, interleaved")
    module_lat, rs_lat = [], []
    for i in range(args.samples):
        t = time.monotonic()
        created = fleet._create_module(module_doc(fleet.base, f"new{i:03d}", 10_000 + i))
        module_lat.append(fleet.watch.wait_for(created["metadata"]["uid"]) - t)
        t = time.monotonic()
        rs = fleet.apps.create_namespaced_replica_set(NAMESPACE, replica_set(f"rs{i:03d}"))
        rs_lat.append(fleet.watch.wait_for(rs.metadata.uid) - t)
        time.sleep(0.2)
    for q, goal in ((0.5, "<= 50 ms"), (0.99, "<= 0.5 s")):
        ours, theirs = pct(module_lat, q), pct(rs_lat, q)
        rows.append(
            (
                f"P1 apply -> Pod p{round(q * 100)} (RS baseline {theirs * 1000:.0f} ms)",
                f"{ours * 1000:.0f} ms",
                goal,
                f"{ours / theirs:.2f} (<= 1.5)",
            )
        )
    print(f"  module mean {statistics.mean(module_lat) * 1000:.0f} ms, RS mean "
          f"{statistics.mean(rs_lat) * 1000:.0f} ms")  # fmt: skip

    print("P4 restart: the operator restarted with every module converged")
    dup_before = fleet.watch.duplicates
    fleet.stop_operator()
    restarted = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    t2 = time.monotonic()
    fleet.start_operator()

    def reprobed(item: dict[str, Any]) -> bool:
        status = item.get("status") or {}
        return healthy(item) and (status.get("lastProbeTime") or "") >= restarted

    fleet.wait_all(reprobed, "probed and written again")
    again = time.monotonic() - t2
    total = n + args.samples
    rows.append((f"P4 restart, {total} modules -> all re-probed", f"{again:.1f} s", "<= 60 s", ""))
    rows.append(("P4 duplicate pods (restart)", str(fleet.watch.duplicates - dup_before), "0", ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modules", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--profile", action="store_true", help="run the operator under py-spy")
    parser.add_argument(
        "--trace-memory", action="store_true", help="tracemalloc dumps (bench/trace_memory.py)"
    )
    parser.add_argument(
        "--operator-env", action="append", default=[], metavar="KEY=VALUE", help="for the operator"
    )
    parser.add_argument(
        "--pod-host", default="250", help="last octet of the shared pod IP (one per run)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the state directory")
    parser.add_argument("--cold-only", action="store_true", help="stop after the cold start")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="tradeplane-fleet-"))
    print(f"state (logs) in {state}")
    fleet = Fleet(state, args)
    try:
        rows = run(fleet, args)
    finally:
        fleet.close()
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)
    print(f"\n{'fleet benchmark':52} {'measured':>10} {'goal':>10}  ratio to baseline")
    for name, value, goal, ratio in rows:
        print(f"{name:52} {value:>10} {goal:>10}  {ratio}")


if __name__ == "__main__":
    main()
