"""The stand-in proper: registers its Node, binds unscheduled Pods to it (the scheduler's
part) and hands every Pod bound to it to a `PodRunner` (the kubelet's part).

Binding matters: the API server deletes an unbound Pod at once, but a bound Pod's
deletion is graceful (deletionTimestamp set; the kubelet must finish it), which is what
the operator under test relies on.

After a restart of the stand-in, Pods already bound to its Node have no process any
more (a crashed predecessor's process groups are killed from their pidfiles first).
Like a kubelet after a reboot it starts them again (restartCount + 1), except with
restartPolicy Never: those Pods become Failed with reason "StandInRestarted".
"""

from __future__ import annotations

import atexit
import logging
import os
import platform
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from tests.kubelet_standin import processes
from tests.kubelet_standin.ip_pool import LoopbackIPs
from tests.kubelet_standin.kube import JSON, core_api, now, pod_key, raw, status_of
from tests.kubelet_standin.pod_runner import TERMINAL, PodRunner

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 20
WATCH_SECONDS = 30


class StandIn:
    """A kubelet and scheduler stand-in for one Node. `start()` returns once the Node is
    registered; pods are handled by background threads until `stop()`."""

    def __init__(
        self,
        kubeconfig: str,
        state_dir: str | Path,
        node_name: str = "kubelet-standin",
        namespaces: Sequence[str] = (),
        first_ip: int = 2,
    ) -> None:
        self.core = core_api(kubeconfig)
        self.node_name, self.namespaces = node_name, tuple(namespaces)
        self.pods_dir = Path(state_dir) / "pods"
        self.ips = LoopbackIPs(first_ip)
        self.runners: dict[str, PodRunner] = {}
        self.finished: set[str] = set()  # uids whose runner is done: ignore late events
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.watches: dict[str | None, watch.Watch] = {}
        self.threads: list[threading.Thread] = []
        self.labels = {
            "kubernetes.io/hostname": node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(
                platform.machine(), platform.machine()
            ),
            "tradeplane.dev/kubelet-standin": "true",
        }

    def start(self) -> None:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        processes.reap_orphans(self.pods_dir)
        atexit.register(self._kill_all)
        self._register_node()
        for ns in self.namespaces or (None,):
            self._thread(f"watch {ns or 'all namespaces'}", self._watch_pods, ns)
        self._thread("node heartbeat", self._heartbeat)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate every process (SIGTERM, SIGKILL after a few seconds); leaves the
        Pods in the API as they are, as a kubelet going down does."""
        self.stopping.set()
        for w in list(self.watches.values()):
            w.stop()  # type: ignore[no-untyped-call]
        with self.lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.shutdown()
        for runner in runners:
            runner.join(timeout)
        self._kill_all()
        atexit.unregister(self._kill_all)

    def _thread(self, name: str, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _kill_all(self) -> None:
        """Last-resort guard (atexit): no process may outlive the stand-in."""
        for runner in list(self.runners.values()):
            if runner.proc is not None:
                processes.kill_group(runner.proc.pid, signal.SIGKILL)

    # -- Node ---------------------------------------------------------------------------
    def _register_node(self) -> None:
        node = client.V1Node(metadata=client.V1ObjectMeta(name=self.node_name, labels=self.labels))
        try:
            self.core.create_node(node, _preload_content=False)
        except Exception as exc:
            if status_of(exc) != 409:
                raise
        arch = self.labels["kubernetes.io/arch"]
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
        resources = {"cpu": str(os.cpu_count() or 1), "memory": f"{memory}Ki", "pods": "250"}
        self._patch_node(
            {
                "capacity": resources,
                "allocatable": resources,
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "nodeInfo": {
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kernelVersion": platform.release(),
                    "osImage": "kubelet stand-in",
                    "containerRuntimeVersion": "standin://0",
                    "kubeletVersion": "v0.0.0-standin",
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": arch,
                },
            },
            transition=True,
        )
        log.info("node %s registered and Ready", self.node_name)

    def _patch_node(self, status: JSON, transition: bool = False) -> None:
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet stand-in is posting ready status",
            "lastHeartbeatTime": now(),
        }
        if transition:
            ready["lastTransitionTime"] = ready["lastHeartbeatTime"]
        # strategic merge: conditions merge by type, so lastTransitionTime survives
        self.core.patch_node_status(
            self.node_name, {"status": {**status, "conditions": [ready]}}, _preload_content=False
        )

    def _heartbeat(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self._patch_node({})
            except Exception as exc:
                log.warning("node heartbeat failed: %s", exc)

    # -- Pods -----------------------------------------------------------------------------
    def _watch_pods(self, namespace: str | None) -> None:
        """list + watch from the list's resourceVersion; re-list on 410 Gone or errors."""
        list_fn: Callable[..., Any] = self.core.list_pod_for_all_namespaces
        args: tuple[str, ...] = ()
        if namespace:
            list_fn, args = self.core.list_namespaced_pod, (namespace,)
        rv: str | None = None
        while not self.stopping.is_set():
            try:
                if rv is None:
                    listing = raw(list_fn, *args)
                    rv = listing["metadata"]["resourceVersion"]
                    self._sync(listing["items"], namespace)
                self.watches[namespace] = w = watch.Watch()  # type: ignore[no-untyped-call]
                events = w.stream(  # type: ignore[no-untyped-call]
                    list_fn,
                    *args,
                    resource_version=rv,
                    timeout_seconds=WATCH_SECONDS,
                    allow_watch_bookmarks=True,
                    _request_timeout=WATCH_SECONDS + 30,
                )
                for event in events:
                    pod = event["raw_object"]
                    rv = pod["metadata"]["resourceVersion"]
                    if event["type"] == "DELETED":
                        self._gone(pod["metadata"]["uid"])
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self._observe(pod)
            except Exception as exc:
                if self.stopping.is_set():
                    return
                if status_of(exc) == 410:
                    log.info("pod watch expired (410 Gone): re-listing")
                else:
                    log.warning("pod watch failed (%s): re-listing", exc)
                    self.stopping.wait(1)
                rv = None

    def _sync(self, pods: list[JSON], namespace: str | None) -> None:
        """A fresh listing: pods we run that are missing from it vanished meanwhile."""
        present = {p["metadata"]["uid"] for p in pods}
        with self.lock:
            gone = [
                r
                for uid, r in self.runners.items()
                if uid not in present and namespace in (None, r.ns)
            ]
        for runner in gone:
            runner.vanish()
        # Pods that already have an IP first, so that they get the same one back.
        for pod in sorted(pods, key=lambda p: not (p.get("status") or {}).get("podIP")):
            self._observe(pod)

    def _observe(self, pod: JSON) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        if not spec.get("nodeName"):
            if self._schedulable(pod):
                self._bind(pod)
            return
        if spec["nodeName"] != self.node_name:
            return
        with self.lock:
            if self.stopping.is_set() or meta["uid"] in self.finished:
                return
            runner = self.runners.get(meta["uid"])
            if runner is None:
                runner = PodRunner(self.core, pod, self.pods_dir, self.ips, self._runner_done)
                self.runners[meta["uid"]] = runner
                runner.start()
            else:
                runner.update(pod)

    def _schedulable(self, pod: JSON) -> bool:
        """The scheduler's part, minimal: schedulerName, schedulingGates, nodeSelector.
        Affinity, taints and resources are ignored."""
        meta, spec = pod["metadata"], pod["spec"]
        return not (
            meta.get("deletionTimestamp")
            or spec.get("schedulingGates")
            or (pod.get("status") or {}).get("phase") in TERMINAL
            or spec.get("schedulerName", "default-scheduler") != "default-scheduler"
            or any(self.labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items())
        )

    def _bind(self, pod: JSON) -> None:
        meta = pod["metadata"]
        binding = client.V1Binding(
            metadata=client.V1ObjectMeta(name=meta["name"], uid=meta["uid"]),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=self.node_name),
        )
        try:
            self.core.create_namespaced_pod_binding(
                meta["name"], meta["namespace"], binding, _preload_content=False
            )
            log.info("%s: bound to %s", pod_key(pod), self.node_name)
        except Exception as exc:
            if status_of(exc) not in (404, 409):  # gone, or already bound
                log.warning("%s: binding failed: %s", pod_key(pod), exc)

    def _gone(self, uid: str) -> None:
        with self.lock:
            runner = self.runners.get(uid)
        if runner is not None:
            runner.vanish()

    def _runner_done(self, uid: str) -> None:
        with self.lock:
            self.runners.pop(uid, None)
            self.finished.add(uid)
