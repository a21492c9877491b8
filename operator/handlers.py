"""kopf handlers: thin I/O shells around `decisions.decide`.

One daemon per TradingModule loops: observe (the resource's live body, its pods from
an index fed by the pod watch), decide, act, write the status if it changed, then sleep
until the next event about the module or its pod, or the plan's requeue time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from . import conditions as cond
from . import decisions, resources
from .api import models
from .api.models import Phase, TradingModuleSpec, TradingModuleStatus
from .kube import Kube, load_config
from .resources import LABEL_MANAGED_BY, LABEL_MODULE_UID, MANAGED_BY, ModuleRef
from .settings import OperatorSettings

RESOURCE = (models.GROUP, models.VERSION, models.PLURAL)
MANAGED_PODS = {LABEL_MANAGED_BY: MANAGED_BY}
FINALIZER = f"{models.GROUP}/runtime-pod"


@dataclass
class Runtime:
    """Process-wide state, shared by every handler through kopf's memo."""

    kube: Kube
    settings: OperatorSettings
    wakers: dict[str, asyncio.Event] = field(default_factory=dict)

    def wake(self, uid: str) -> None:
        if (waker := self.wakers.get(uid)) is not None:
            waker.set()


def _runtime(memo: kopf.Memo) -> Runtime:
    return memo["runtime"]  # type: ignore[no-any-return]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Keep kopf's bookkeeping in annotations: status belongs to the API.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=models.GROUP
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=models.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING  # our own events are posted explicitly
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    memo["runtime"] = Runtime(kube=Kube(load_config()), settings=OperatorSettings.from_env())


@kopf.index("pods", labels=MANAGED_PODS)
def pods_by_module(
    namespace: str, labels: dict[str, str], body: kopf.Body, **_: Any
) -> dict[tuple[str, str], decisions.PodView]:
    return {(namespace, labels.get(LABEL_MODULE_UID, "")): decisions.PodView.from_manifest(body)}


@kopf.on.event("pods", labels=MANAGED_PODS)
def pod_changed(labels: dict[str, str], memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).wake(labels.get(LABEL_MODULE_UID, ""))


@kopf.on.event(*RESOURCE)
def module_changed(uid: str, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).wake(uid)


def _module_ref(body: kopf.Body) -> ModuleRef:
    meta = body["metadata"]
    return ModuleRef(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta["uid"],
        generation=int(meta.get("generation") or 0),
    )


def _current_status(body: kopf.Body) -> TradingModuleStatus:
    try:
        return TradingModuleStatus.model_validate(dict(body.get("status") or {}))
    except ValidationError:
        return TradingModuleStatus()


def _dump(status: TradingModuleStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True)


async def _write_status(
    kube: Kube, module: ModuleRef, current: TradingModuleStatus, new: TradingModuleStatus
) -> None:
    if _dump(new) != _dump(current):
        await kube.patch_status(module.namespace, module.name, _dump(new))


async def _invalid_spec(
    kube: Kube, body: kopf.Body, module: ModuleRef, error: ValidationError
) -> None:
    """The CRD should make this impossible; if not, say which field and stop."""
    message = "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
    )
    current = _current_status(body)
    now = datetime.now(UTC)
    status = current.model_copy(
        update={
            "phase": Phase.FAILED,
            "message": message,
            "observed_generation": module.generation,
            "conditions": cond.set_condition(
                list(current.conditions),
                type=cond.READY,
                status=False,
                reason="InvalidSpec",
                message=message,
                generation=module.generation,
                now=now,
            ),
        }
    )
    await _write_status(kube, module, current, status)


async def reconcile(
    body: kopf.Body, rt: Runtime, pods_by_module: kopf.Index[Any, Any], logger: logging.Logger
) -> float | None:
    """One observe-decide-act pass. Returns seconds until the next pass (None: on event)."""
    module = _module_ref(body)
    try:
        spec = TradingModuleSpec.model_validate(dict(body["spec"]))
    except ValidationError as error:
        await _invalid_spec(rt.kube, body, module, error)
        return None
    current = _current_status(body)
    pods = list(pods_by_module.get((module.namespace, module.uid), []))
    observation = decisions.Observation(
        module=module,
        spec=spec,
        status=current,
        pods=pods,
        desired_hash=resources.config_hash(module, spec, rt.settings),
        now=datetime.now(UTC),
        pod_name=resources.pod_name(module),
    )
    plan = decisions.decide(observation)
    for action in plan.actions:
        if isinstance(action, decisions.CreatePod):
            await rt.kube.apply_config_map(resources.config_map(module, spec))
            created = await rt.kube.create_pod(resources.runtime_pod(module, spec, rt.settings))
            logger.info("runtime pod %s: %s", observation.pod_name, "created" if created else "exists")
        elif isinstance(action, decisions.DeletePod):
            await rt.kube.delete_pod(module.namespace, action.name, action.uid)
            logger.info("runtime pod %s deleted (%s)", action.name, action.reason)
    for event in plan.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    await _write_status(rt.kube, module, current, plan.status)
    return plan.requeue_after


async def _sleep(waker: asyncio.Event, stopped: kopf.DaemonStopped, timeout: float | None) -> None:
    stop = asyncio.ensure_future(stopped.wait())
    wake = asyncio.ensure_future(waker.wait())
    try:
        await asyncio.wait({stop, wake}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        wake.cancel()


@kopf.daemon(*RESOURCE, cancellation_timeout=10.0)
async def run_module(
    stopped: kopf.DaemonStopped,
    body: kopf.Body,
    uid: str,
    memo: kopf.Memo,
    pods_by_module: kopf.Index[Any, Any],
    logger: logging.Logger,
    **_: Any,
) -> None:
    rt = _runtime(memo)
    waker = rt.wakers.setdefault(uid, asyncio.Event())
    try:
        while not stopped:
            waker.clear()
            try:
                delay = await reconcile(body, rt, pods_by_module, logger)
            except Exception:  # a failed pass is retried; the daemon must live on
                logger.exception("reconcile failed; retrying")
                delay = 5.0
            await _sleep(waker, stopped, delay)
    finally:
        rt.wakers.pop(uid, None)


@kopf.on.delete(*RESOURCE)
async def module_deleted(
    body: kopf.Body, memo: kopf.Memo, pods_by_module: kopf.Index[Any, Any], **_: Any
) -> None:
    """Remove the runtime pod and wait until it is gone; then the config map."""
    rt = _runtime(memo)
    module = _module_ref(body)
    pods = list(pods_by_module.get((module.namespace, module.uid), []))
    live = await rt.kube.list_pods(module.namespace, resources.selector(module))
    for pod in live:
        view = decisions.PodView.from_manifest(pod)
        if not view.deleting:
            await rt.kube.delete_pod(module.namespace, view.name, view.uid)
    if live or pods:
        raise kopf.TemporaryError("waiting for the runtime pod to terminate", delay=1)
    await rt.kube.delete_config_map(module.namespace, resources.config_map_name(module))
