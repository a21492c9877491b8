"""The reconcile decision: (spec, observed state) -> actions and the status to write.

Pure: no I/O, no clock of its own. The kopf handlers gather what they observe, call
`decide`, and carry out the plan. Invariant 1 lives here: a pod is created only when
no pod of the module exists at all, terminating ones included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import conditions as cond
from .api.models import Health, Phase, TradingModuleSpec, TradingModuleStatus
from .resources import ANNOTATION_CONFIG_HASH, ModuleRef


@dataclass(frozen=True)
class PodView:
    """The parts of a pod the decision looks at."""

    name: str
    uid: str
    phase: str
    ready: bool
    deleting: bool
    config_hash: str | None
    ip: str | None = None
    reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase in {"Failed", "Succeeded"}

    @classmethod
    def from_manifest(cls, pod: Mapping[str, Any]) -> PodView:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        return cls(
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            phase=status.get("phase") or "Pending",
            ready=ready,
            deleting=meta.get("deletionTimestamp") is not None,
            config_hash=(meta.get("annotations") or {}).get(ANNOTATION_CONFIG_HASH),
            ip=status.get("podIP"),
            reason=status.get("reason"),
        )


@dataclass(frozen=True)
class CreatePod:
    reason: str


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str
    reason: str


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


Action = CreatePod | DeletePod


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    status: TradingModuleStatus
    events: tuple[Event, ...] = ()
    # When to look again even if nothing happens (seconds); None: only on events.
    requeue_after: float | None = None


@dataclass(frozen=True)
class Observation:
    module: ModuleRef
    spec: TradingModuleSpec
    status: TradingModuleStatus
    pods: Sequence[PodView]
    desired_hash: str
    now: datetime
    pod_name: str
    extra: Mapping[str, Any] = field(default_factory=dict)


def _status(
    obs: Observation,
    *,
    phase: Phase,
    ready: bool,
    reason: str,
    message: str,
    pod: PodView | None,
    restarts: int | None = None,
    health: Health | None = None,
) -> TradingModuleStatus:
    current = obs.status
    conditions = cond.set_condition(
        list(current.conditions),
        type=cond.READY,
        status=ready,
        reason=reason,
        message=message,
        generation=obs.module.generation,
        now=obs.now,
    )
    return current.model_copy(
        update={
            "phase": phase,
            "message": message,
            "pod_name": pod.name if pod else None,
            "observed_generation": obs.module.generation,
            "restarts": current.restarts if restarts is None else restarts,
            "health": health if health is not None else (current.health or Health.UNKNOWN),
            "conditions": conditions,
        }
    )


def decide(obs: Observation) -> Plan:
    spec = obs.spec
    pods = list(obs.pods)
    ours = next((p for p in pods if p.name == obs.pod_name), None)
    strays = [p for p in pods if p.name != obs.pod_name and not p.deleting]
    # Anything labelled for this module but not named as ours is removed first.
    stray_deletes: tuple[Action, ...] = tuple(
        DeletePod(p.name, p.uid, "StrayPod") for p in strays
    )
    any_pod = bool(pods)

    if not spec.enabled:
        live = [p for p in pods if not p.deleting]
        actions = tuple(DeletePod(p.name, p.uid, "Disabled") for p in live)
        message = (
            "module is disabled; waiting for its pod to terminate"
            if any_pod
            else "module is disabled"
        )
        status = _status(
            obs,
            phase=Phase.DISABLED,
            ready=False,
            reason="Disabled",
            message=message,
            pod=ours,
            health=Health.UNKNOWN,
        )
        events = (Event("Normal", "Disabled", "Deleting runtime pod: module disabled"),) if live else ()
        return Plan(actions, status, events, requeue_after=None)

    if not any_pod:
        replacing = obs.status.pod_name is not None
        restarts = obs.status.restarts + (1 if replacing else 0)
        status = _status(
            obs,
            phase=Phase.PENDING,
            ready=False,
            reason="PodCreating",
            message=f"creating runtime pod {obs.pod_name}",
            pod=None,
            restarts=restarts,
        )
        status = status.model_copy(update={"pod_name": obs.pod_name})
        reason = "Replacing" if replacing else "Creating"
        event = Event("Normal", reason, f"Creating runtime pod {obs.pod_name}")
        return Plan((CreatePod(reason),), status, (event,), requeue_after=5.0)

    if ours is None or ours.deleting:
        # Only terminating or stray pods remain: wait until they are gone.
        waiting = [p.name for p in pods]
        status = _status(
            obs,
            phase=Phase.PENDING,
            ready=False,
            reason="WaitingForPodTermination",
            message=f"waiting for pod(s) {', '.join(waiting)} to terminate",
            pod=ours,
        )
        return Plan(stray_deletes, status, requeue_after=2.0)

    if ours.config_hash != obs.desired_hash:
        status = _status(
            obs,
            phase=Phase.PENDING,
            ready=False,
            reason="ConfigChanged",
            message="spec changed; replacing the runtime pod",
            pod=ours,
        )
        event = Event("Normal", "ConfigChanged", f"Deleting pod {ours.name} to apply the new spec")
        return Plan(
            (*stray_deletes, DeletePod(ours.name, ours.uid, "ConfigChanged")),
            status,
            (event,),
            requeue_after=2.0,
        )

    if ours.finished:
        message = f"runtime pod {ours.name} {ours.phase.lower()}" + (
            f" ({ours.reason})" if ours.reason else ""
        )
        status = _status(
            obs,
            phase=Phase.PENDING,
            ready=False,
            reason="PodFailed",
            message=message + "; replacing it",
            pod=ours,
            health=Health.UNHEALTHY,
        )
        event = Event("Warning", "PodFailed", message)
        return Plan(
            (*stray_deletes, DeletePod(ours.name, ours.uid, "PodFailed")),
            status,
            (event,),
            requeue_after=2.0,
        )

    if ours.phase == "Running" and ours.ready:
        status = _status(
            obs,
            phase=Phase.RUNNING,
            ready=True,
            reason="RuntimeReady",
            message=f"runtime pod {ours.name} is ready",
            pod=ours,
        )
        return Plan(stray_deletes, status, requeue_after=None)

    status = _status(
        obs,
        phase=Phase.PENDING,
        ready=False,
        reason="PodNotReady",
        message=f"runtime pod {ours.name} is {ours.phase.lower()}, not ready yet",
        pod=ours,
    )
    return Plan(stray_deletes, status, requeue_after=5.0)
