"""One thread per Pod bound to the stand-in's Node: runs, watches and finishes its process.

The thread owns the pod's process, loopback IP and status. The stand-in feeds it the
latest Pod object (`update`), tells it when the Pod vanished from the API (`vanish`)
or when the stand-in stops (`shutdown`). Status is written with JSON merge patches on
`pods/status`, and only when it changes.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from tests.kubelet_standin import container_spec, processes
from tests.kubelet_standin.ip_pool import LoopbackIPs
from tests.kubelet_standin.kube import JSON, MERGE_PATCH, now, pod_key, status_of
from tests.kubelet_standin.readiness import ReadinessProbe

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")
VANISHED_GRACE = 2.0  # the kubelet's minimum grace for force-deleted pods
SHUTDOWN_GRACE = 3.0


class PodRunner(threading.Thread):
    def __init__(
        self,
        core: client.CoreV1Api,
        pod: JSON,
        pods_dir: Path,
        ips: LoopbackIPs,
        on_exit: Callable[[str], None],
    ) -> None:
        meta = pod["metadata"]
        super().__init__(name=pod_key(pod), daemon=True)
        self.core, self.pod, self.ips, self.on_exit = core, pod, ips, on_exit
        self.ns, self.pod_name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = pods_dir / f"{self.ns}_{self.pod_name}_{self.uid}"
        self.container: JSON = pod["spec"]["containers"][0]
        self.policy: str = pod["spec"].get("restartPolicy", "Always")
        self.probe = ReadinessProbe(self.container)
        self.wake = threading.Event()
        self.vanished = self.stopping = self.holds_ip = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.ip: str | None = None
        self.phase = "Pending"
        self.state: JSON = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: JSON = {}
        self.container_id: str | None = None
        self.restarts, self.next_start = 0, 0.0
        self.start_time: str | None = None
        self.since: dict[str, tuple[bool, str]] = {}  # condition -> (status, since)
        self.sent: JSON | None = None
        self.retry_at = 0.0

    # -- called from the stand-in's threads -------------------------------------------
    def update(self, pod: JSON) -> None:
        self.pod = pod
        self.wake.set()

    def vanish(self) -> None:
        self.vanished = True
        self.wake.set()

    def shutdown(self) -> None:
        self.stopping = True
        self.wake.set()

    # -- the pod's life ---------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("%s: runner failed", self.name)
        finally:
            if self.proc is not None:
                processes.terminate(self.proc, 0)
                processes.forget(self.dir)
            self._release_ip()
            self.on_exit(self.uid)

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        status = self.pod.get("status") or {}
        self.ip, self.start_time = status.get("podIP"), status.get("startTime") or now()
        if status.get("phase") in TERMINAL:
            self.phase = status["phase"]
        else:
            self.ip, self.holds_ip = self.ips.allocate(self.ip), True
            prior = (status.get("containerStatuses") or [{}])[0]
            if (
                prior.get("restartCount")
                or prior.get("lastState")
                or ({"running", "terminated"} & set(prior.get("state") or {}))
            ):
                # An earlier stand-in started it; its process is gone (reap_orphans).
                self.restarts = prior.get("restartCount", 0)
                self._exited(
                    {
                        "exitCode": 137,
                        "reason": "StandInRestarted",
                        "message": "the kubelet stand-in restarted; the process is gone",
                        "finishedAt": now(),
                    }
                )
        while True:
            if self.stopping or self.vanished:
                if self.proc is not None:
                    grace = SHUTDOWN_GRACE if self.stopping else VANISHED_GRACE
                    processes.terminate(self.proc, grace)
                    processes.forget(self.dir)
                    self.proc = None
                return
            if self.pod["metadata"].get("deletionTimestamp"):
                self._finish_deletion()
                return
            if self.phase not in TERMINAL:
                if self.proc is None and time.monotonic() >= self.next_start:
                    self._start()
                elif self.proc is not None and (code := self.proc.poll()) is not None:
                    self._exited(
                        {
                            "exitCode": processes.exit_code(code),
                            "reason": "Completed" if code == 0 else "Error",
                            "finishedAt": now(),
                        }
                    )
                elif self.proc is not None and self.probe.due():
                    self.probe.run(self.ip or "")
                self._report()
            self.wake.wait(0.25)
            self.wake.clear()

    def _start(self) -> None:
        assert self.ip is not None
        try:
            spec = container_spec.build(self.core, self.pod, self.dir, self.ip)
        except Exception as exc:  # missing Secret/ConfigMap, API hiccup: retry
            log.warning("%s: cannot build the container: %s", self.name, exc)
            reason = (
                "CreateContainerConfigError"
                if isinstance(exc, container_spec.ConfigError)
                else "CreateContainerError"
            )
            self.state = {"waiting": {"reason": reason, "message": str(exc)}}
            self.next_start = time.monotonic() + 2
            return
        try:
            self.proc = processes.spawn(spec.argv, spec.env, self.dir, self.dir / "container.log")
        except OSError as exc:
            with open(self.dir / "container.log", "a") as out:
                out.write(f"kubelet stand-in: cannot start {spec.argv}: {exc}\n")
            self._exited(
                {"exitCode": 128, "reason": "StartError", "message": str(exc), "finishedAt": now()}
            )
            return
        self.container_id = f"standin://{self.proc.pid}"
        self.state = {"running": {"startedAt": now()}}
        self.phase = "Running"
        self.probe.reset()
        log.info(
            "%s: started pid %d on %s (restart %d)",
            self.name,
            self.proc.pid,
            self.ip,
            self.restarts,
        )

    def _exited(self, terminated: JSON) -> None:
        """Apply restartPolicy to an exited (or lost) container."""
        if self.proc is not None:
            processes.terminate(self.proc, 0)  # leftovers of its process group
            processes.forget(self.dir)
            self.proc = None
        terminated = {
            "startedAt": self.state.get("running", {}).get("startedAt"),
            "containerID": self.container_id,
            **terminated,
        }
        terminated = {k: v for k, v in terminated.items() if v is not None}
        code = terminated["exitCode"]
        written = self._termination_message()
        if written and "message" not in terminated:
            terminated["message"] = written
        if code != 0 and "message" not in terminated and self._fallback_to_logs():
            terminated["message"] = self._log_tail()
        log.info("%s: container exited with %d (%s)", self.name, code, terminated["reason"])
        if self.policy == "Always" or (self.policy == "OnFailure" and code != 0):
            self.restarts += 1
            delay = min(10.0, 0.5 * 2 ** min(self.restarts, 5))
            self.last_state = {"terminated": terminated}
            self.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {delay:g}s restarting container",
                }
            }
            self.next_start = time.monotonic() + delay
        else:
            self.state = {"terminated": terminated}
            self.phase = "Succeeded" if code == 0 else "Failed"
            self._report()
            self._release_ip()

    def _termination_message(self) -> str:
        """As the kubelet: what the process wrote to its terminationMessagePath, at most
        4096 bytes."""
        path = container_spec.termination_message_file(self.dir)
        if not path.exists():
            return ""
        return path.read_bytes()[:4096].decode(errors="replace")

    def _fallback_to_logs(self) -> bool:
        containers = self.pod["spec"].get("containers") or [{}]
        return bool(containers[0].get("terminationMessagePolicy") == "FallbackToLogsOnError")

    def _log_tail(self) -> str:
        """As the kubelet: the last 80 lines (at most 2048 bytes) of the container log."""
        path = self.dir / "container.log"
        if not path.exists():
            return ""
        lines = path.read_bytes().splitlines()[-80:]
        return b"\n".join(lines)[-2048:].decode(errors="replace")

    def _finish_deletion(self) -> None:
        """Graceful deletion: SIGTERM, grace period, SIGKILL; then remove the Pod for good."""
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        grace = spec.get("terminationGracePeriodSeconds", 30) if grace is None else grace
        if self.proc is not None:
            log.info("%s: deleting: SIGTERM, grace %ss", self.name, grace)
            code = processes.terminate(
                self.proc, float(grace), abort=lambda: self.vanished or self.stopping
            )
            processes.forget(self.dir)
            self.proc = None
            if self.stopping or self.vanished:
                return
            self.state = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": self.state.get("running", {}).get("startedAt", now()),
                    "finishedAt": now(),
                    "containerID": self.container_id,
                }
            }
        if self.phase not in TERMINAL:
            ok = self.state.get("terminated", {}).get("exitCode") == 0
            self.phase = "Succeeded" if ok else "Failed"
            self._report()
        try:
            self.core.delete_namespaced_pod(
                self.pod_name,
                self.ns,
                grace_period_seconds=0,
                _preload_content=False,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)
                ),
            )
            log.info("%s: deleted", self.name)
        except Exception as exc:
            if status_of(exc) not in (404, 409):
                raise

    # -- status -----------------------------------------------------------------------
    def _release_ip(self) -> None:
        if self.holds_ip and self.ip:
            self.ips.release(self.ip)
        self.holds_ip = False

    def _condition(self, type_: str, ok: bool, reason: str | None = None) -> JSON:
        if self.since.get(type_, (None,))[0] != ok:
            self.since[type_] = (ok, now())
        cond = {"type": type_, "status": str(ok), "lastTransitionTime": self.since[type_][1]}
        return cond if ok or not reason else {**cond, "reason": reason}

    def _status(self) -> JSON:
        running = "running" in self.state
        ready = running and self.probe.ready
        not_ready = "PodCompleted" if self.phase in TERMINAL else "ContainersNotReady"
        cstatus: JSON = {
            "name": self.container["name"],
            "image": self.container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "restartCount": self.restarts,
            "started": running,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            cstatus["containerID"] = self.container_id
        status: JSON = {
            "phase": self.phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "containerStatuses": [cstatus],
            "conditions": [
                self._condition("PodScheduled", True),
                self._condition("Initialized", True),
                self._condition("ContainersReady", ready, not_ready),
                self._condition("Ready", ready, not_ready),
            ],
        }
        if self.ip:
            status.update(podIP=self.ip, podIPs=[{"ip": self.ip}])
        return {"status": status}

    def _report(self) -> None:
        body = self._status()
        if body == self.sent or time.monotonic() < self.retry_at:
            return
        try:
            self.core.patch_namespaced_pod_status(
                self.pod_name, self.ns, body, _content_type=MERGE_PATCH, _preload_content=False
            )
            self.sent = body
        except Exception as exc:
            log.warning("%s: status patch failed (%s); retrying", self.name, status_of(exc) or exc)
            self.retry_at = time.monotonic() + 2
