"""kopf handlers: thin I/O shells around `decisions.decide`.

One daemon per TradingModule loops: observe (the live body, its pods from an index fed
by the pod watch, a health probe when one is due), decide, act, write the status if it
changed, then sleep until the next event about the module or its pod, the next probe,
or the plan's requeue time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf
from pydantic import ValidationError

from . import conditions as cond
from . import decisions, memory, metrics, portfolio_handlers, promotion, resources
from .api import models
from .api.models import BreakerState, Phase, TradingModuleSpec, TradingModuleStatus
from .kube import Kube
from .probe import post_control, probe_runtime
from .resources import LABEL_MANAGED_BY, LABEL_MODULE_UID, MANAGED_BY, ModuleRef
from .settings import OperatorSettings
from .waker import Waker, stop_signal

RESOURCE = (models.GROUP, models.VERSION, models.PLURAL)
MANAGED_PODS = {LABEL_MANAGED_BY: MANAGED_BY}
FINALIZER = f"{models.GROUP}/runtime-pod"
# Status fields that change on every probe: written at most once per
# `status_min_interval_seconds` unless something else changed too.
VOLATILE = {"lastProbeTime", "metrics"}


@dataclass
class Runtime:
    """Process-wide state, shared by every handler through kopf's memo."""

    kube: Kube
    settings: OperatorSettings
    session: aiohttp.ClientSession
    probes: asyncio.Semaphore
    wakers: dict[str, Waker] = field(default_factory=dict)
    loops: dict[str, ModuleLoop] = field(default_factory=dict)  # of the running daemons
    chores: list[asyncio.Task[None]] = field(default_factory=list)

    def wake(self, uid: str) -> None:
        if (waker := self.wakers.get(uid)) is not None:
            waker.set()


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff-base: no handler here reacts to a spec diff (the daemon compares the
    config hash), so kopf's default, a copy of the whole spec in an annotation, would
    cost a PATCH on every spec change and a second copy of the spec in every body.

    Every object's essence is the same empty one, stored and new: kopf sees no change
    (a no-op cause, or a deletion) instead of deep-copying each event's whole body to
    find one (~6 % of the operator's CPU at a cold start of 1,000 modules) and treating
    each event as a creation."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return kopf.BodyEssence()

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


def _runtime(memo: kopf.Memo) -> Runtime:
    return memo["runtime"]  # type: ignore[no-any-return]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Keep kopf's bookkeeping in annotations: status belongs to the API.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=models.GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING  # our own events are posted explicitly
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.peering.lifetime = 15  # a dead peer's claim expires fast: quick hand-over
    config = OperatorSettings.from_env()
    memo["runtime"] = Runtime(
        kube=Kube(settings),
        settings=config,
        session=aiohttp.ClientSession(),
        probes=asyncio.Semaphore(config.probe_concurrency),
    )
    memo["runtime"].chores.append(
        asyncio.create_task(memory.trim_forever(config.malloc_trim_seconds))
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rt = _runtime(memo)
    for chore in rt.chores:
        chore.cancel()
    await rt.session.close()


# The index and event handlers are `async def` although they never await: kopf runs a
# plain `def` handler in a worker thread, and at 1,000 modules that thread hop on every
# event queued behind the API calls (bench/fleet.py, P1/P4). They only build a dict or
# set an Event, so they cannot block the loop.
@kopf.index("pods", labels=MANAGED_PODS)
async def pods_by_module(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[tuple[str | None, str], decisions.PodView]:
    return {(namespace, labels.get(LABEL_MODULE_UID, "")): decisions.PodView.from_manifest(body)}


@kopf.index(*RESOURCE)
async def module_phases(
    namespace: str | None, name: str | None, status: Mapping[str, Any], **_: Any
) -> dict[tuple[str | None, str | None], str | None]:
    """Each module's phase, for the modules that depend on it (spec.dependsOn)."""
    return {(namespace, name): status.get("phase")}


@kopf.on.event("pods", labels=MANAGED_PODS)
async def pod_changed(name: str, labels: Mapping[str, str], memo: Any, **_: Any) -> None:
    rt, uid = _runtime(memo), labels.get(LABEL_MODULE_UID, "")
    if (loop := rt.loops.get(uid)) is not None and loop.awaited == name:
        loop.awaited = None  # seen (and indexed: the indexes come before this handler)
    rt.wake(uid)


@kopf.on.event(*RESOURCE)
async def module_changed(uid: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    rt = _runtime(memo)
    memory.drop_managed_fields(body["metadata"])
    if (loop := rt.loops.get(uid)) is not None and loop.written is not None:
        # The indexes have read this body already, and the running daemon decides on its
        # own copy (ModuleLoop): the status kopf keeps with the body is not read again.
        # A daemon that starts afresh (a resumed peer) gets a freshly listed body.
        memory.drop_status(body)
        if (
            body["metadata"].get("resourceVersion") == loop.own_version
            and _inputs(body) == loop.inputs
        ):
            # The state the daemon's own status write made, with the inputs its pass
            # decided on (kopf may have folded an earlier change into this event): no
            # new pass. Each write woke it for one with nothing to do (bench/fleet.py, P4).
            return
    rt.wake(uid)


def _module_ref(body: kopf.Body) -> ModuleRef:
    meta = body["metadata"]
    return ModuleRef(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta["uid"],
        generation=int(meta.get("generation") or 0),
    )


# The annotations a pass reads: a person's requests.
REQUESTS = (
    decisions.ANNOTATION_RESUME,
    decisions.ANNOTATION_RESET_BREAKER,
    promotion.ANNOTATION_PROMOTE,
)


def _requests(body: kopf.Body) -> dict[str, str]:
    annotations = body["metadata"].get("annotations") or {}
    return {key: annotations[key] for key in REQUESTS if key in annotations}


def _inputs(body: kopf.Body) -> tuple[object, ...]:
    """What a pass reads from its own body: the spec (by its generation), the requests."""
    return (body["metadata"].get("generation"), tuple(_requests(body).items()))


def _current_status(body: kopf.Body) -> TradingModuleStatus:
    try:
        return TradingModuleStatus.model_validate(dict(body.get("status") or {}))
    except ValidationError:
        return TradingModuleStatus()


def _dump(status: TradingModuleStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True)


@dataclass
class ModuleLoop:
    """What one module's daemon remembers between passes.

    The daemon is the status's only writer, so its own last decision is the truth: the
    live body may not have caught up with our last write yet, and deciding on such a
    stale status would forget a pending restart. On (re)start the body's status is used,
    so nothing that matters is lost when the operator restarts.

    The decision is kept as JSON text, not as a model or a dict: the status last written
    plus the volatile fields decided since. At 1,000 modules the held models were
    20 MiB, and a dict is ~60 objects where the text is one (bench/fleet.py). Once this
    daemon holds it, the body kopf keeps needs no status of its own (`module_changed`).
    """

    next_probe: float = 0.0
    last_write: float = float("-inf")
    paused: tuple[str, bool] | None = None  # (pod uid, paused) as that runtime last said
    config_map: str | None = None  # the runtime config map the serving pod mounts
    written: str | None = None  # JSON
    own_version: str | None = None  # the resourceVersion that writing it made
    inputs: tuple[object, ...] = ()  # what the last pass read from the body (_inputs)
    awaited: str | None = None  # the pod created, until the pod watch shows it
    awaited_until: float = 0.0  # or until then (a watch that lost it)
    unwritten: str | None = None  # JSON, the volatile fields not yet written

    def current(self, body: kopf.Body) -> TradingModuleStatus:
        """The status this daemon last decided (the body's, before its first pass)."""
        if self.written is None:
            status = _current_status(body)
            self.written = json.dumps(_dump(status))
            return status
        doc = json.loads(self.written)
        if self.unwritten is not None:
            doc.update(json.loads(self.unwritten))
        return TradingModuleStatus.model_validate(doc)


async def _write_status(
    rt: Runtime, module: ModuleRef, new: TradingModuleStatus, loop: ModuleLoop
) -> None:
    """Patch the status if it changed; volatile-only changes at most once per interval."""
    new_doc = _dump(new)
    written = json.loads(loop.written) if loop.written is not None else {}
    changed = {key for key, value in new_doc.items() if written.get(key) != value}
    fresh = time.monotonic() - loop.last_write < rt.settings.status_min_interval_seconds
    if not changed or (changed <= VOLATILE and fresh):
        loop.unwritten = json.dumps({key: new_doc[key] for key in changed}) if changed else None
        return
    loop.own_version = await rt.kube.patch_status(module.namespace, module.name, new_doc)
    loop.written, loop.unwritten = json.dumps(new_doc), None
    loop.last_write = time.monotonic()
    metrics.STATUS_WRITES.inc()


async def _invalid_spec(
    rt: Runtime, body: kopf.Body, module: ModuleRef, error: ValidationError, loop: ModuleLoop
) -> None:
    """The CRD should make this impossible; if not, say which field and stop."""
    message = "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
    )
    current = loop.current(body)
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
                now=datetime.now(UTC),
            ),
        }
    )
    await _write_status(rt, module, status, loop)


async def _probe_if_due(
    rt: Runtime, spec: TradingModuleSpec, pod: decisions.PodView | None, loop: ModuleLoop
) -> decisions.Probe | None:
    if pod is None:
        loop.next_probe = 0.0  # probe a new pod as soon as it runs
        return None
    if time.monotonic() < loop.next_probe:
        return None
    loop.next_probe = time.monotonic() + spec.health.interval_seconds
    url = f"http://{pod.ip}:{rt.settings.runtime_port}/healthz"
    async with rt.probes:
        result = await probe_runtime(rt.session, url, spec.health.timeout_seconds)
    metrics.PROBES.labels(result.cause).inc()
    return result


async def _create_pod(
    rt: Runtime,
    module: ModuleRef,
    spec: TradingModuleSpec,
    action: decisions.CreatePod,
    loop: ModuleLoop,
    logger: kopf.Logger,
    portfolio_halt: str | None,
) -> None:
    """The config map and the pod in one round trip (the map is named for its content,
    and the kubelet waits for it); then the map the previous pod mounted goes."""
    config = resources.config_map(module, spec)
    name = config["metadata"]["name"]
    manifest = resources.runtime_pod(
        module,
        spec,
        rt.settings,
        config_map_name=name,
        start_halted=action.start_halted,
        portfolio_halt=portfolio_halt,
    )
    made_config, made_pod = await asyncio.gather(
        rt.kube.create_config_map(config), rt.kube.create_pod(manifest), return_exceptions=True
    )
    if isinstance(made_config, BaseException):
        if isinstance(made_pod, dict):  # it would wait forever for its volume: retry both
            meta = made_pod["metadata"]
            await rt.kube.delete_pod(module.namespace, meta["name"], meta["uid"])
        raise made_config
    if isinstance(made_pod, BaseException):
        raise made_pod
    logger.info(
        "runtime pod %s %s (%s)",
        manifest["metadata"]["name"],
        "created" if made_pod else "already exists",
        action.reason,
    )
    if made_pod and loop.config_map not in (None, name):
        # Only after the old pod is gone is a new one created (invariant 1), so nothing
        # mounts the old map. Missed (an operator restart in between): the garbage
        # collector removes it with the module (owner reference).
        await rt.kube.delete_config_map(module.namespace, str(loop.config_map))
    loop.config_map = name
    # Created now, or found by its name (an earlier attempt whose answer was lost): either
    # way there is a pod the watch has not shown yet.
    loop.awaited, loop.awaited_until = manifest["metadata"]["name"], time.monotonic() + 30.0


async def _act(
    rt: Runtime,
    body: kopf.Body,
    module: ModuleRef,
    spec: TradingModuleSpec,
    plan: decisions.Plan,
    loop: ModuleLoop,
    logger: kopf.Logger,
    portfolio_halt: str | None = None,
) -> None:
    for action in plan.actions:
        if isinstance(action, decisions.CreatePod):
            await _create_pod(rt, module, spec, action, loop, logger, portfolio_halt)
        elif isinstance(action, decisions.DeletePod):
            await rt.kube.delete_pod(module.namespace, action.name, action.uid)
            if action.reason in {"PodFailed", "Unhealthy"}:
                metrics.RESTARTS.labels(action.reason).inc()
            logger.info("runtime pod %s deleted (%s)", action.name, action.reason)
        elif isinstance(action, decisions.RemoveAnnotation):
            await rt.kube.remove_annotation(module.namespace, module.name, action.key)
        elif isinstance(action, decisions.WriteBacktestReport):
            await rt.kube.apply_config_map(resources.backtest_config_map(module, action.report))
        elif isinstance(action, decisions.SetMode):
            await rt.kube.patch_spec(module.namespace, module.name, {"mode": action.mode.value})
            logger.info("spec.mode set to %s (promotion)", action.mode.value)
    for event in plan.events:
        if event.reason.startswith("Circuit"):
            metrics.BREAKER_TRANSITIONS.labels(event.reason.removeprefix("Circuit").lower()).inc()
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


async def reconcile(
    body: kopf.Body,
    rt: Runtime,
    indexes: Mapping[str, Any],
    logger: kopf.Logger,
    loop: ModuleLoop,
) -> float | None:
    """One observe-decide-act pass. Returns seconds until the next pass (None: on event)."""
    module = _module_ref(body)
    loop.inputs = _inputs(body)
    try:
        spec = TradingModuleSpec.model_validate(dict(body["spec"]))
    except ValidationError as error:
        await _invalid_spec(rt, body, module, error, loop)
        return None
    with metrics.RECONCILE_SECONDS.time():
        current = loop.current(body)
        pods = list(indexes["pods_by_module"].get((module.namespace, module.uid), []))
        phases = indexes["module_phases"]
        dependencies = {
            dep: next(iter(phases.get((module.namespace, dep), [])), None)
            for dep in spec.depends_on
        }
        pod_name = resources.pod_name(module)
        if loop.awaited is not None and (
            any(p.name == loop.awaited for p in pods) or time.monotonic() > loop.awaited_until
        ):
            loop.awaited = None
        serving = decisions.serving_pod(pods, pod_name)
        if serving is not None and serving.config_map:
            loop.config_map = serving.config_map
        probe = await _probe_if_due(rt, spec, serving, loop)
        observation = decisions.Observation(
            module=module,
            spec=spec,
            status=current,
            pods=pods,
            desired_hash=resources.config_hash(module, spec, rt.settings),
            now=datetime.now(UTC),
            pod_name=pod_name,
            probe=probe,
            annotations=_requests(body),
            dependencies=dependencies,
            pod_awaited=loop.awaited is not None,
        )
        plan = decisions.decide(observation)
        portfolio_halt = portfolio_handlers.desired_for(indexes, module.namespace, spec)
        await portfolio_handlers.after_decide(
            rt, module, spec, serving, probe, plan, portfolio_halt, logger
        )
        await _relay_pause(rt, spec, serving, probe, loop, logger)
        await _act(rt, body, module, spec, plan, loop, logger, portfolio_halt)
        await _write_status(rt, module, plan.status, loop)
    state = plan.status
    metrics.MODULES.states[module.uid] = (
        (state.phase or Phase.PENDING).value,
        (state.health.value if state.health else "Unknown"),
    )
    metrics.MODULE_STATES.modules[module.uid] = (
        module.namespace,
        module.name,
        (state.phase or Phase.PENDING).value,
        (state.health.value if state.health else "Unknown"),
        (state.breaker.state.value if state.breaker else BreakerState.CLOSED.value),
    )
    delays = [d for d in (plan.requeue_after,) if d is not None]
    if state.phase == Phase.RUNNING or (
        state.breaker is not None and state.breaker.state == BreakerState.HALF_OPEN
    ):
        delays.append(max(loop.next_probe - time.monotonic(), 0.05))
    return min(delays) if delays else None


async def _relay_pause(
    rt: Runtime,
    spec: TradingModuleSpec,
    pod: decisions.PodView | None,
    probe: decisions.Probe | None,
    loop: ModuleLoop,
    logger: kopf.Logger,
) -> None:
    """spec.paused reaches a running runtime without a restart (it is not in the config
    hash): told over /control/pause until its /healthz agrees."""
    if pod is None:
        loop.paused = None
        return
    if probe is not None and probe.ok and probe.paused is not None:
        loop.paused = (pod.uid, probe.paused)
    reported = loop.paused[1] if loop.paused and loop.paused[0] == pod.uid else None
    wanted = decisions.pause_control(spec.paused, reported)
    if wanted is None:
        return
    url = f"http://{pod.ip}:{rt.settings.runtime_port}/control/pause"
    answer = await post_control(rt.session, url, {"paused": wanted}, spec.health.timeout_seconds)
    if answer is None or not isinstance(answer.get("paused"), bool):
        logger.warning("runtime %s did not take paused=%s; retrying", pod.name, wanted)
        return
    loop.paused = (pod.uid, bool(answer["paused"]))
    logger.info("runtime %s %s", pod.name, "paused" if loop.paused[1] else "resumed")


@kopf.daemon(*RESOURCE, cancellation_timeout=10.0)
async def run_module(
    stopped: kopf.DaemonStopped,
    body: kopf.Body,
    uid: str,
    memo: Any,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    rt = _runtime(memo)
    waker = rt.wakers.setdefault(uid, Waker())
    loop = rt.loops[uid] = ModuleLoop()
    try:
        with stop_signal(stopped) as stop:
            while not stopped:
                waker.clear()
                try:
                    delay = await reconcile(body, rt, kwargs, logger, loop)
                except Exception as error:  # a failed pass is retried; the daemon lives on
                    metrics.RECONCILE_ERRORS.labels(type(error).__name__).inc()
                    logger.exception("reconcile failed; retrying")
                    delay = 5.0
                await waker.sleep(stop, delay)
    finally:
        rt.wakers.pop(uid, None)
        rt.loops.pop(uid, None)
        metrics.MODULES.states.pop(uid, None)
        metrics.MODULE_STATES.modules.pop(uid, None)


@kopf.on.delete(*RESOURCE)
async def module_deleted(body: kopf.Body, memo: Any, **_: Any) -> None:
    """Remove the runtime pod and wait until it is gone; then its config map."""
    rt = _runtime(memo)
    module = _module_ref(body)
    # The API's own list, not the index: deletion must not end on a view that lags.
    live = await rt.kube.list_pods(module.namespace, resources.selector(module))
    for pod in live:
        view = decisions.PodView.from_manifest(pod)
        if not view.deleting:
            await rt.kube.delete_pod(module.namespace, view.name, view.uid)
    if live:
        raise kopf.TemporaryError("waiting for the runtime pod to terminate", delay=1)
    try:
        spec = TradingModuleSpec.model_validate(dict(body["spec"]))
    except ValidationError:
        return  # no pod ever ran on it
    # The map of the current spec is the last pod's; a map left from an earlier config
    # (an operator restart during a replacement) goes with the module (owner reference).
    config = resources.config_map(module, spec)["metadata"]["name"]
    await rt.kube.delete_config_map(module.namespace, config)
