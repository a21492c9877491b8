"""The reconcile decision: (spec, observed state) -> actions and the status to write.

Pure: no I/O, no clock of its own. The kopf handlers gather what they observe (the
resource, its pods, the last probe of the runtime, the annotations a person set), call
`decide`, and carry out the plan.

Invariant 1 lives here: a pod is created only when no pod of the module exists at all,
terminating ones included. Everything the decision needs to remember across operator
restarts (restart history, breaker, pending restart, halt) is in the status it returns,
so a restarted operator decides exactly as the one before it would have.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from . import conditions as cond
from . import promotion
from .api.models import (
    BacktestReport,
    Breaker,
    BreakerState,
    Halt,
    Health,
    HealthSpec,
    MetricsSummary,
    Mode,
    PendingRestart,
    Phase,
    PromotionRecord,
    Resume,
    TradingModuleSpec,
    TradingModuleStatus,
)
from .resources import ANNOTATION_CONFIG_HASH, ModuleRef

ANNOTATION_RESUME = "tradeplane.io/resume-halt"
ANNOTATION_RESET_BREAKER = "tradeplane.io/reset-breaker"


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# ---- what is observed ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)  # one per runtime pod, kept in kopf's index
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
    exit_code: int | None = None
    message: str | None = None  # the container's termination message
    report: BacktestReport | None = None  # a finished backtest's report (that message)
    config_map: str | None = None  # the runtime config the pod mounts
    stuck: str | None = None  # why it does not start (_stuck_reason), if it says

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
        containers = status.get("containerStatuses") or [{}]
        state = containers[0].get("state") or {}
        terminated = state.get("terminated") or {}
        return cls(
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            phase=status.get("phase") or "Pending",
            ready=ready,
            deleting=meta.get("deletionTimestamp") is not None,
            config_hash=(meta.get("annotations") or {}).get(ANNOTATION_CONFIG_HASH),
            ip=status.get("podIP"),
            reason=status.get("reason"),
            exit_code=terminated.get("exitCode"),
            message=_last_words(terminated.get("message")),
            report=_backtest_report(terminated.get("message")),
            config_map=next(
                (
                    (v.get("configMap") or {}).get("name")
                    for v in (pod.get("spec") or {}).get("volumes") or []
                    if v.get("name") == "config"
                ),
                None,
            ),
            stuck=_stuck_reason(status, state.get("waiting") or {}),
        )


# A container waits for these on every normal start: no news to a person.
STARTING_REASONS = {"ContainerCreating", "PodInitializing"}


def _stuck_reason(status: Mapping[str, Any], waiting: Mapping[str, Any]) -> str | None:
    """What keeps a pod from starting, as the kubelet or the scheduler says it: a missing
    secret key (CreateContainerConfigError), an image that cannot be pulled, no node."""
    reason, message = waiting.get("reason"), waiting.get("message")
    if not reason or reason in STARTING_REASONS:
        scheduled: Mapping[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {}
        )
        if scheduled.get("status") != "False":
            return None
        reason, message = scheduled.get("reason") or "Unschedulable", scheduled.get("message")
    return (f"{reason}: {message}" if message else str(reason))[:512]


def _backtest_report(message: str | None) -> BacktestReport | None:
    """The report a backtest runtime wrote as its termination message, if it is one."""
    if not message or not message.startswith('{"backtest"'):
        return None
    try:
        return BacktestReport.model_validate(json.loads(message)["backtest"])
    except (ValueError, KeyError, TypeError):
        return None


def _last_words(message: str | None) -> str | None:
    """The useful end of a termination message: the runtime's last log line, and from
    a JSON log line its `msg` (an invalid config says which field there)."""
    if not message:
        return None
    last = message.strip().splitlines()[-1] if message.strip() else ""
    try:
        parsed = json.loads(last)
    except ValueError:
        return last[-1024:] or None
    if isinstance(parsed, dict) and isinstance(parsed.get("msg"), str):
        return str(parsed["msg"])[-1024:]
    return last[-1024:]


@dataclass(frozen=True)
class Probe:
    """One GET of the runtime's /healthz.

    `cause` is "ok", "degraded" or "halted" when the runtime answered as expected (all
    healthy: a halt is a decision, not a fault), else why it failed: "timeout",
    "refused", "http_<status>" or "bad_body".
    """

    cause: str
    at: datetime
    halt_reason: str | None = None
    halt_message: str = ""
    metrics: MetricsSummary | None = None
    portfolio_halt: str | None = None  # the runtime's portfolio halt reason, if any
    paused: bool | None = None  # whether the runtime is paused (None: it did not say)

    @property
    def ok(self) -> bool:
        return self.cause in {"ok", "degraded", "halted"}


@dataclass(frozen=True)
class Observation:
    module: ModuleRef
    spec: TradingModuleSpec
    status: TradingModuleStatus
    pods: Sequence[PodView]
    desired_hash: str
    now: datetime
    pod_name: str
    probe: Probe | None = None  # a probe made for this pass, if one was due
    annotations: Mapping[str, str] = field(default_factory=dict)
    # Phase of each module named in spec.dependsOn (None: no such module).
    dependencies: Mapping[str, str | None] = field(default_factory=dict)
    # The pod this operator created, not yet shown by its pod watch: not gone, only late.
    pod_awaited: bool = False


# ---- what to do ------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatePod:
    reason: str
    start_halted: str | None = None


@dataclass(frozen=True)
class DeletePod:
    name: str
    uid: str
    reason: str


@dataclass(frozen=True)
class RemoveAnnotation:
    key: str


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class SetMode:
    """Patch spec.mode (a promotion a person asked for and the figures allow)."""

    mode: Mode


@dataclass(frozen=True)
class WriteBacktestReport:
    """Create or update the `<module>-backtest` ConfigMap with the report."""

    report: dict[str, Any]


Action = CreatePod | DeletePod | RemoveAnnotation | SetMode | WriteBacktestReport


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    status: TradingModuleStatus
    events: tuple[Event, ...] = ()
    # When to look again even if nothing happens (seconds); None: only on events.
    requeue_after: float | None = None


# ---- the pieces ------------------------------------------------------------------------


def backoff_seconds(health: HealthSpec, restarts_in_window: int) -> float:
    """initial x multiplier^n, capped: the wait before the (n+1)th restart in a window."""
    b = health.backoff
    delay = Decimal(b.initial_seconds) * b.multiplier**restarts_in_window
    return float(min(delay, Decimal(b.max_seconds)))


def restarts_in_window(status: TradingModuleStatus, health: HealthSpec, now: datetime) -> list[str]:
    window = timedelta(seconds=health.restart_window_seconds)
    return [t for t in status.recent_restarts if now - parse_time(t) < window]


class _Builder:
    """Accumulates the new status, actions and events of one pass."""

    def __init__(self, obs: Observation) -> None:
        self.obs = obs
        self.status = obs.status.model_copy(deep=True)
        self.actions: list[Action] = []
        self.events: list[Event] = []
        self.now_text = cond.timestamp(obs.now)

    def condition(self, type: str, status: bool | None, reason: str, message: str) -> None:
        self.status.conditions = cond.set_condition(
            self.status.conditions,
            type=type,
            status=status,
            reason=reason,
            message=message,
            generation=self.obs.module.generation,
            now=self.obs.now,
        )

    def event(self, type: str, reason: str, message: str) -> None:
        self.events.append(Event(type, reason, message))

    def set_breaker(self, state: BreakerState, message: str) -> None:
        current = self.status.breaker.state if self.status.breaker else BreakerState.CLOSED
        if current != state:
            self.status.breaker = Breaker(state=state, since=self.now_text)
            kind = "Warning" if state == BreakerState.OPEN else "Normal"
            reason = {
                BreakerState.OPEN: "CircuitOpen",
                BreakerState.HALF_OPEN: "CircuitHalfOpen",
                BreakerState.CLOSED: "CircuitClosed",
            }[state]
            self.event(kind, reason, message)

    def plan(
        self, phase: Phase, ready: bool, reason: str, message: str, requeue: float | None
    ) -> Plan:
        self.status.phase = phase
        self.status.message = message
        self.status.observed_generation = self.obs.module.generation
        self.condition(cond.READY, ready, reason, message)
        return Plan(tuple(self.actions), self.status, tuple(self.events), requeue)


def _apply_annotations(b: _Builder) -> None:
    """A person's requests: resume after a risk halt, reset the circuit breaker."""
    obs, status = b.obs, b.status
    who = obs.annotations.get(ANNOTATION_RESET_BREAKER)
    if who is not None:
        b.actions.append(RemoveAnnotation(ANNOTATION_RESET_BREAKER))
        status.recent_restarts = []
        if status.breaker and status.breaker.state != BreakerState.CLOSED:
            b.set_breaker(BreakerState.CLOSED, f"circuit breaker reset by {who or 'unknown'}")
    who = obs.annotations.get(ANNOTATION_RESUME)
    if who is not None:
        b.actions.append(RemoveAnnotation(ANNOTATION_RESUME))
        if status.halt is not None:
            by = who or "unknown"
            b.event("Normal", "Resumed", f"risk halt ({status.halt.reason}) cleared by {by}")
            status.halt = None
            status.last_resume = Resume(by=by, at=b.now_text)
            b.condition(cond.RISK_HALTED, False, "Resumed", f"resumed by {by} at {b.now_text}")
            # The runtime holds the halt: a fresh pod starts without it.
            ours = next((p for p in obs.pods if p.name == obs.pod_name and not p.deleting), None)
            if ours is not None:
                b.actions.append(DeletePod(ours.name, ours.uid, "Resumed"))
                status.pending_restart = PendingRestart(
                    reason="Resumed", failure=False, since=b.now_text
                )


def _promotion_condition(b: _Builder) -> promotion.Assessment:
    found = promotion.assess(b.obs.spec, b.status, b.obs.now)
    if found.target is None:
        b.condition(promotion.PROMOTION_READY, False, "Live", found.shortfalls[0])
    elif found.ready:
        figures = found.summary if found.stable else "figures: status.metrics"
        b.condition(
            promotion.PROMOTION_READY,
            True,
            "ThresholdsMet",
            f"{b.obs.spec.mode.value} -> {found.target.value} allowed ({figures})",
        )
    else:
        b.condition(promotion.PROMOTION_READY, False, "ThresholdsNotMet", found.condition_message())
    return found


def _apply_promotion(b: _Builder) -> None:
    """The PromotionReady condition, and a person's tradeplane.io/promote request."""
    spec, status, obs = b.obs.spec, b.status, b.obs
    if spec.mode is not Mode.PAPER:
        status.paper_since = None
    elif status.paper_since is None and any(
        p.name == obs.pod_name and p.phase == "Running" and p.ready and not p.deleting
        for p in obs.pods
    ):
        status.paper_since = b.now_text  # the paper run time counts from its first ready pod
    found = _promotion_condition(b)
    who = b.obs.annotations.get(promotion.ANNOTATION_PROMOTE)
    if who is None:
        return
    by = who or "unknown"
    b.actions.append(RemoveAnnotation(promotion.ANNOTATION_PROMOTE))
    if not found.ready or found.target is None:
        b.event(
            "Warning",
            "PromotionRefused",
            f"promotion of {spec.mode.value} asked by {by} refused: "
            f"{'; '.join(found.shortfalls)} ({found.summary})",
        )
        return
    record = PromotionRecord(
        from_mode=spec.mode, to_mode=found.target, by=by, at=b.now_text, figures=found.record
    )
    status.promotions = [*status.promotions, record][-20:]
    if found.target is Mode.PAPER:
        status.metrics = None  # the paper run's own figures replace the backtest's
    b.actions.append(SetMode(found.target))
    b.event(
        "Normal",
        "Promoted",
        f"{spec.mode.value} -> {found.target.value} by {by} on {found.summary}",
    )


def _backtest_done(b: _Builder, pod: PodView) -> Plan:
    """A backtest pod that exited 0 ran to its end: success, not a failure to restart."""
    status = b.status
    status.pending_restart = None
    status.consecutive_failures = 0
    status.health = Health.UNKNOWN
    recorded = status.backtest is not None and status.backtest.pod_uid == pod.uid
    if not recorded:
        if pod.report is None:
            detail = f"backtest pod {pod.name} succeeded but left no report"
            _failure_restart(b, pod, "PodFailed", detail)
            return b.plan(Phase.PENDING, False, "BacktestNoReport", detail + "; rerunning", 2.0)
        report = pod.report.model_copy(update={"pod_uid": pod.uid, "finished_at": b.now_text})
        status.backtest = report
        status.metrics = MetricsSummary(
            trades=report.trades,
            win_rate=report.win_rate,
            realized_pnl=report.realized_pnl,
            unrealized_pnl=report.unrealized_pnl,
            profit_factor=report.profit_factor,
            max_drawdown=report.max_drawdown,
            capital_in_use="0",
            max_drawdown_percent=report.max_drawdown_percent,
            sharpe=report.sharpe,
        )
        b.actions.append(
            WriteBacktestReport(report.model_dump(mode="json", by_alias=True, exclude_none=True))
        )
        b.event(
            "Normal",
            "BacktestFinished",
            f"backtest over {report.candles} candles ({report.data_start} to {report.data_end}): "
            f"{report.trades} trades, realized PnL {report.realized_pnl}, profit factor "
            f"{report.profit_factor}, max drawdown {report.max_drawdown_percent}%, "
            f"Sharpe {report.sharpe}",
        )
        _promotion_condition(b)
    assert status.backtest is not None
    message = (
        f"backtest finished: {status.backtest.trades} trades, realized PnL "
        f"{status.backtest.realized_pnl} over {status.backtest.candles} candles"
    )
    return b.plan(Phase.SUCCEEDED, False, "BacktestSucceeded", message, None)


def _apply_probe(b: _Builder, threshold: int) -> None:
    probe, status = b.obs.probe, b.status
    if probe is None:
        return
    status.last_probe_time = cond.timestamp(probe.at)
    if probe.ok:
        status.consecutive_failures = 0
        status.health = Health.HEALTHY
        if probe.metrics is not None:
            status.metrics = probe.metrics
        message = "runtime answers its health probe" + (
            " (degraded)" if probe.cause == "degraded" else ""
        )
        b.condition(cond.HEALTHY, True, "ProbeSucceeded", message)
        if probe.cause == "halted" and status.halt is None:
            reason = probe.halt_reason or "unknown"
            status.halt = Halt(reason=reason, message=probe.halt_message, since=b.now_text)
            text = f"risk halt: {reason}" + (
                f": {probe.halt_message}" if probe.halt_message else ""
            )
            b.condition(cond.RISK_HALTED, True, "RiskLimitBreached", text)
            b.event("Warning", "RiskHalted", text + "; no new orders until a person resumes")
        if status.breaker and status.breaker.state == BreakerState.HALF_OPEN:
            status.recent_restarts = []
            b.set_breaker(BreakerState.CLOSED, "trial pod is healthy; circuit breaker closed")
        return
    status.consecutive_failures += 1
    if status.consecutive_failures >= threshold:
        status.health = Health.UNHEALTHY
        b.condition(
            cond.HEALTHY,
            False,
            "ProbeFailed",
            f"{status.consecutive_failures} consecutive probe failures (last: {probe.cause})",
        )


def _failure_restart(b: _Builder, pod: PodView, reason: str, message: str) -> None:
    b.actions.append(DeletePod(pod.name, pod.uid, reason))
    b.status.pending_restart = PendingRestart(reason=reason, failure=True, since=b.now_text)
    b.status.consecutive_failures = 0
    b.status.health = Health.UNHEALTHY
    b.event("Warning", reason, message)


def _create(b: _Builder, reason: str, *, counted: bool) -> Plan:
    obs, status = b.obs, b.status
    if counted:
        status.restarts += 1
        window = restarts_in_window(status, obs.spec.health, obs.now)
        status.recent_restarts = [*window, b.now_text]
        b.event("Normal", "Restarting", f"creating replacement pod {obs.pod_name} ({reason})")
    else:
        b.event("Normal", "Creating", f"creating runtime pod {obs.pod_name}")
    if obs.spec.mode is Mode.BACKTEST:
        b.event("Normal", "BacktestStarted", f"backtest starting in pod {obs.pod_name}")
    status.pending_restart = None
    status.pod_name = obs.pod_name
    status.invalid_config_generation = None
    start_halted = status.halt.reason if status.halt else None
    b.actions.append(CreatePod(reason, start_halted=start_halted))
    return _starting(b, obs.pod_name)


def _starting(b: _Builder, pod_name: str) -> Plan:
    """From creating the pod until it runs, one status: one write, not one per step."""
    return b.plan(Phase.PENDING, False, "PodStarting", f"starting runtime pod {pod_name}", 5.0)


def _no_pod(b: _Builder) -> Plan:
    """No pod exists: create one now, after the backoff, or not at all (breaker open)."""
    obs, status, health = b.obs, b.status, b.obs.spec.health
    if obs.pod_awaited:
        # Read before the watch delivered the new pod. At 1,000 modules, 6 % of new pods
        # were taken for vanished: a failure counted, a warning, a backoff (bench/fleet.py).
        return _starting(b, obs.pod_name)
    pending = status.pending_restart
    if pending is None and status.pod_name is not None:
        # Our pod vanished (evicted, deleted by hand, node lost): a failure.
        pending = PendingRestart(reason="PodDisappeared", failure=True, since=b.now_text)
        status.pending_restart = pending
        b.event("Warning", "PodDisappeared", f"runtime pod {status.pod_name} disappeared")
    waiting = {
        name: obs.dependencies.get(name)
        for name in obs.spec.depends_on
        if obs.dependencies.get(name) != Phase.RUNNING.value
    }
    if waiting:
        listed = ", ".join(f"{name} ({phase or 'not found'})" for name, phase in waiting.items())
        status.pod_name = None if pending is None else status.pod_name
        return b.plan(Phase.PENDING, False, "WaitingForDependencies", f"waiting for {listed}", 5.0)
    if pending is None or not pending.failure:
        return _create(b, pending.reason if pending else "Creating", counted=False)

    breaker = status.breaker.state if status.breaker else BreakerState.CLOSED
    if breaker == BreakerState.OPEN:
        assert status.breaker is not None and status.breaker.since is not None
        reopen = parse_time(status.breaker.since) + timedelta(seconds=health.cooldown_seconds)
        if obs.now < reopen:
            wait = (reopen - obs.now).total_seconds()
            return b.plan(Phase.FAILED, False, "CircuitOpen", _open_message(b), wait)
        b.set_breaker(BreakerState.HALF_OPEN, "cooldown over; one trial restart")
        return _create(b, f"{pending.reason}, trial", counted=True)
    if breaker == BreakerState.HALF_OPEN:
        # The trial failed before it was healthy: open again.
        b.set_breaker(BreakerState.OPEN, "trial restart failed; circuit breaker open again")
        b.condition(cond.HEALTHY, False, "CircuitOpen", _open_message(b))
        return b.plan(Phase.FAILED, False, "CircuitOpen", _open_message(b), health.cooldown_seconds)

    window = restarts_in_window(status, health, obs.now)
    status.recent_restarts = window
    if len(window) >= health.max_restarts:
        b.set_breaker(BreakerState.OPEN, _open_message(b))
        b.condition(cond.HEALTHY, False, "CircuitOpen", _open_message(b))
        return b.plan(Phase.FAILED, False, "CircuitOpen", _open_message(b), health.cooldown_seconds)
    due = parse_time(pending.since) + timedelta(seconds=backoff_seconds(health, len(window)))
    if obs.now < due:
        wait = (due - obs.now).total_seconds()
        message = f"restarting in {wait:.0f}s (backoff after {pending.reason})"
        return b.plan(Phase.PENDING, False, "BackingOff", message, wait)
    return _create(b, pending.reason, counted=True)


def _open_message(b: _Builder) -> str:
    health = b.obs.spec.health
    n = len(b.status.recent_restarts)
    return (
        f"circuit breaker open: {n} restarts in {health.restart_window_seconds}s "
        f"(maxRestarts {health.max_restarts}); next trial after {health.cooldown_seconds}s "
        f"cooldown, or annotate {ANNOTATION_RESET_BREAKER}=<your name> to reset"
    )


# ---- the decision ----------------------------------------------------------------------


def decide(obs: Observation) -> Plan:
    spec = obs.spec
    b = _Builder(obs)
    _apply_annotations(b)
    pods = list(obs.pods)
    ours = next((p for p in pods if p.name == obs.pod_name), None)
    if ours is not None and not ours.deleting and ours.phase == "Running":
        _apply_probe(b, spec.health.failure_threshold)
    # After the probe: the condition on this pass's figures, not the last pass's (which
    # rewrote it, and the status, at the second probe of every paper module).
    _apply_promotion(b)
    # Anything labelled for this module but not named as ours is removed.
    for stray in pods:
        if stray.name != obs.pod_name and not stray.deleting:
            b.actions.append(DeletePod(stray.name, stray.uid, "StrayPod"))
    if b.status.halt is None and cond.get(b.status.conditions, cond.RISK_HALTED) is None:
        b.condition(cond.RISK_HALTED, False, "NoHalt", "no risk halt")

    if not spec.enabled:
        for pod in pods:
            if not pod.deleting and not any(
                isinstance(a, DeletePod) and a.uid == pod.uid for a in b.actions
            ):
                b.actions.append(DeletePod(pod.name, pod.uid, "Disabled"))
                b.event("Normal", "Disabled", f"deleting runtime pod {pod.name}: module disabled")
        b.status.pending_restart = None
        b.status.pod_name = None if not pods else b.status.pod_name
        b.status.health = Health.UNKNOWN
        message = "module is disabled" + ("; waiting for its pod to terminate" if pods else "")
        return b.plan(Phase.DISABLED, False, "Disabled", message, 2.0 if pods else None)

    if not pods:
        return _no_pod(b)

    if ours is None or ours.deleting or any(isinstance(a, DeletePod) for a in b.actions):
        waiting = ", ".join(p.name for p in pods)
        phase = Phase.FAILED if _breaker_open(b) else Phase.PENDING
        return b.plan(
            phase,
            False,
            "WaitingForPodTermination",
            f"waiting for pod(s) {waiting} to terminate",
            2.0,
        )

    if ours.config_hash != obs.desired_hash:
        b.actions.append(DeletePod(ours.name, ours.uid, "ConfigChanged"))
        b.status.pending_restart = PendingRestart(
            reason="ConfigChanged", failure=False, since=b.now_text
        )
        b.event("Normal", "ConfigChanged", f"deleting pod {ours.name} to apply the new spec")
        return b.plan(Phase.PENDING, False, "ConfigChanged", "spec changed; replacing the pod", 2.0)

    if ours.finished and ours.exit_code == EXIT_INVALID_CONFIG:
        return _invalid_config(b, ours)
    if ours.finished and ours.phase == "Succeeded" and spec.mode is Mode.BACKTEST:
        return _backtest_done(b, ours)

    if ours.finished:
        detail = f"runtime pod {ours.name} {ours.phase.lower()}"
        if ours.exit_code is not None:
            detail += f" with exit code {ours.exit_code}"
        if ours.reason:
            detail += f" ({ours.reason})"
        if ours.message:
            detail += f": {ours.message}"
        _failure_restart(b, ours, "PodFailed", detail)
        return b.plan(Phase.PENDING, False, "PodFailed", detail + "; replacing it", 2.0)

    if b.status.consecutive_failures >= spec.health.failure_threshold:
        detail = f"runtime failed {b.status.consecutive_failures} health probes in a row"
        _failure_restart(b, ours, "Unhealthy", detail)
        return b.plan(Phase.PENDING, False, "Unhealthy", detail + "; replacing it", 2.0)

    if ours.phase == "Running" and ours.ready:
        if b.status.health in (None, Health.UNKNOWN) and obs.probe is None:
            b.status.health = Health.UNKNOWN
        return b.plan(
            Phase.RUNNING, True, "RuntimeReady", f"runtime pod {ours.name} is ready", None
        )

    if ours.stuck:
        message = f"runtime pod {ours.name} is not starting: {ours.stuck}"
        return b.plan(Phase.PENDING, False, "PodNotStarting", message, 5.0)
    if ours.phase == "Pending":
        return _starting(b, ours.name)
    message = f"runtime pod {ours.name} is {ours.phase.lower()}, not ready yet"
    return b.plan(Phase.PENDING, False, "PodNotReady", message, 5.0)


EXIT_INVALID_CONFIG = 2  # the runtime refused its config (module_runtime.cli)


def _invalid_config(b: _Builder, pod: PodView) -> Plan:
    """Exit code 2: the config is wrong, and restarting cannot fix it. The pod stays (its
    logs with it) and the module is Failed until a new generation of the spec."""
    obs, status = b.obs, b.status
    generation = obs.module.generation
    message = f"runtime refused its config (exit code 2): {pod.message or 'see the pod log'}"
    if status.invalid_config_generation is not None and generation > (
        status.invalid_config_generation
    ):
        b.actions.append(DeletePod(pod.name, pod.uid, "Retrying"))
        status.pending_restart = PendingRestart(reason="Retrying", failure=False, since=b.now_text)
        status.invalid_config_generation = None
        b.event("Normal", "Retrying", f"generation {generation}: retrying the invalid config")
        return b.plan(Phase.PENDING, False, "Retrying", "new generation; retrying", 2.0)
    if status.invalid_config_generation is None:
        status.invalid_config_generation = generation
        b.event("Warning", "InvalidConfig", message)
    status.health = Health.UNKNOWN
    return b.plan(Phase.FAILED, False, "InvalidConfig", message, None)


def _breaker_open(b: _Builder) -> bool:
    return b.status.breaker is not None and b.status.breaker.state == BreakerState.OPEN


def serving_pod(pods: Sequence[PodView], name: str) -> PodView | None:
    """The module's pod when it runs and has an address: the one to probe and to tell."""
    pod = next((p for p in pods if p.name == name and not p.deleting), None)
    return pod if pod is not None and pod.phase == "Running" and pod.ip else None


def pause_control(paused: bool, reported: bool | None) -> bool | None:
    """What to tell a running runtime about spec.paused: nothing when it last reported
    the same, or has not reported yet (a new pod starts with its config's value and the
    first probe of a running pod comes at once); else the spec's value."""
    return None if reported is None or reported == paused else paused
