"""The pure reconcile decision: pods, probes, restarts, backoff, breaker, halts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tradeplane_operator import resources
from tradeplane_operator.api.models import (
    BreakerState,
    Health,
    MetricsSummary,
    Phase,
    TradingModuleSpec,
    TradingModuleStatus,
)
from tradeplane_operator.decisions import (
    ANNOTATION_RESET_BREAKER,
    ANNOTATION_RESUME,
    CreatePod,
    DeletePod,
    Observation,
    PodView,
    Probe,
    RemoveAnnotation,
    backoff_seconds,
    decide,
)
from tradeplane_operator.resources import ANNOTATION_CONFIG_HASH, ModuleRef

MODULE = ModuleRef(name="dex", namespace="ns", uid="u-1", generation=3)
POD = resources.pod_name(MODULE)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
HEALTH = {
    "intervalSeconds": 5,
    "timeoutSeconds": 1,
    "failureThreshold": 3,
    "maxRestarts": 3,
    "restartWindowSeconds": 600,
    "cooldownSeconds": 60,
    "backoff": {"initialSeconds": 2, "maxSeconds": 10, "multiplier": 2},
}


def spec(**overrides: object) -> TradingModuleSpec:
    base: dict[str, object] = {
        "type": "dex_trading",
        "capital": {"allocation": "1000"},
        "risk": {"maxPositionSize": "100", "maxDailyLoss": "50"},
        "health": HEALTH,
    }
    base.update(overrides)
    return TradingModuleSpec.model_validate(base)


def pod(**kw: Any) -> PodView:
    values: dict[str, Any] = {
        "name": POD,
        "uid": "p-1",
        "phase": "Running",
        "ready": True,
        "deleting": False,
        "config_hash": "h",
        "ip": "127.0.0.2",
    }
    values.update(kw)
    return PodView(**values)


def observe(
    pods: list[PodView],
    *,
    status: TradingModuleStatus | None = None,
    now: datetime = NOW,
    probe: Probe | None = None,
    annotations: dict[str, str] | None = None,
    **spec_kw: object,
) -> Observation:
    return Observation(
        module=MODULE,
        spec=spec(**spec_kw),
        status=status or TradingModuleStatus(),
        pods=pods,
        desired_hash="h",
        now=now,
        pod_name=POD,
        probe=probe,
        annotations=annotations or {},
    )


def ok(at: datetime = NOW, **kw: Any) -> Probe:
    return Probe(cause="ok", at=at, **kw)


def failed(at: datetime = NOW) -> Probe:
    return Probe(cause="timeout", at=at)


def condition(status: TradingModuleStatus, type: str) -> tuple[str, str]:
    c = next(c for c in status.conditions if c.type == type)
    return c.status, c.reason


# ---- the first reconcile ----------------------------------------------------------------


def test_creates_the_pod_when_none_exists() -> None:
    plan = decide(observe([]))
    assert plan.actions == (CreatePod("Creating"),)
    assert plan.status.phase == Phase.PENDING
    assert plan.status.observed_generation == 3
    assert plan.status.restarts == 0


def test_running_and_ready_is_running() -> None:
    plan = decide(observe([pod()], probe=ok()))
    assert plan.actions == ()
    assert plan.status.phase == Phase.RUNNING
    ready = next(c for c in plan.status.conditions if c.type == "Ready")
    assert (ready.status, ready.observed_generation) == ("True", 3)
    assert plan.status.health == Health.HEALTHY
    assert condition(plan.status, "RiskHalted") == ("False", "NoHalt")


def test_not_ready_is_pending() -> None:
    plan = decide(observe([pod(ready=False, phase="Pending")]))
    assert plan.actions == () and plan.status.phase == Phase.PENDING
    running = decide(observe([pod(ready=False)]))
    assert condition(running.status, "Ready") == ("False", "PodNotReady")
    assert running.status.message == f"runtime pod {POD} is running, not ready yet"


def test_a_starting_pod_keeps_the_status_of_its_creation() -> None:
    """Created, then seen Pending: one status, so one write on the way to Running."""
    created = decide(observe([]))
    seen = decide(
        observe(
            [pod(phase="Pending", ready=False, ip=None)],
            status=created.status,
            now=NOW + timedelta(seconds=1),
        )
    )
    assert seen.actions == ()
    assert seen.status.model_dump() == created.status.model_dump()
    assert condition(seen.status, "Ready") == ("False", "PodStarting")
    assert seen.status.message == f"starting runtime pod {POD}"


def test_a_created_pod_the_watch_has_not_shown_is_late_not_gone() -> None:
    created = decide(observe([]))
    late = Observation(**{**vars(observe([], status=created.status)), "pod_awaited": True})
    plan = decide(late)
    assert plan.actions == () and plan.events == ()
    assert plan.status.model_dump() == created.status.model_dump()
    # Not awaited (the watch showed it go, or never will): it vanished, a failure.
    gone = decide(observe([], status=created.status))
    assert gone.status.pending_restart is not None
    assert (gone.status.pending_restart.reason, gone.status.pending_restart.failure) == (
        "PodDisappeared",
        True,
    )


def _pending(waiting: dict[str, str] | None, scheduled: dict[str, str] | None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending"}
    if waiting is not None:
        status["containerStatuses"] = [{"name": "runtime", "state": {"waiting": waiting}}]
    if scheduled is not None:
        status["conditions"] = [{"type": "PodScheduled", **scheduled}]
    hashed = {ANNOTATION_CONFIG_HASH: "h"}
    return {"metadata": {"name": POD, "uid": "p-1", "annotations": hashed}, "status": status}


def test_a_pod_that_cannot_start_says_why() -> None:
    missing = {
        "reason": "CreateContainerConfigError",
        "message": 'secret "wallet" not found',
    }
    view = PodView.from_manifest(_pending(missing, {"status": "True"}))
    plan = decide(observe([view]))
    assert plan.status.phase == Phase.PENDING and plan.actions == ()
    assert condition(plan.status, "Ready") == ("False", "PodNotStarting")
    assert plan.status.message == (
        f'runtime pod {POD} is not starting: CreateContainerConfigError: secret "wallet" not found'
    )
    unschedulable = {"status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
    view = PodView.from_manifest(_pending(None, unschedulable))
    assert view.stuck == "Unschedulable: 0/3 nodes"
    # The waits of every normal start are not news.
    normal = PodView.from_manifest(_pending({"reason": "ContainerCreating"}, {"status": "True"}))
    assert normal.stuck is None
    assert condition(decide(observe([normal])).status, "Ready") == ("False", "PodStarting")


def test_spec_change_deletes_first_and_waits_then_creates_uncounted() -> None:
    plan = decide(observe([pod(config_hash="old")]))
    assert plan.actions == (DeletePod(POD, "p-1", "ConfigChanged"),)
    waiting = decide(observe([pod(config_hash="old", deleting=True)], status=plan.status))
    assert waiting.actions == ()  # no new pod while the old one terminates
    gone = decide(observe([], status=waiting.status))
    assert gone.actions == (CreatePod("ConfigChanged"),)
    assert gone.status.restarts == 0


def test_disabled_removes_the_pod() -> None:
    plan = decide(observe([pod()], enabled=False))
    assert plan.actions == (DeletePod(POD, "p-1", "Disabled"),)
    assert plan.status.phase == Phase.DISABLED
    gone = decide(observe([], status=plan.status, enabled=False))
    assert gone.actions == () and gone.status.phase == Phase.DISABLED
    again = decide(observe([], status=gone.status))
    assert again.actions == (CreatePod("Creating"),) and again.status.restarts == 0


def test_stray_pods_are_removed_and_block_creation() -> None:
    plan = decide(observe([pod(name="dex-old", uid="p-0")]))
    assert plan.actions == (DeletePod("dex-old", "p-0", "StrayPod"),)


def test_transition_time_kept_when_status_unchanged() -> None:
    first = decide(observe([pod()], probe=ok()))
    second = decide(observe([pod()], status=first.status, now=NOW + timedelta(minutes=5)))
    assert second.status == first.status


# ---- probes and failure restarts ---------------------------------------------------------


def test_unhealthy_after_threshold_then_replaced_with_backoff() -> None:
    status = decide(observe([pod()], probe=ok())).status
    for i in range(2):
        plan = decide(observe([pod()], status=status, probe=failed()))
        assert plan.actions == (), f"replaced after {i + 1} failures"
        status = plan.status
    assert status.consecutive_failures == 2
    plan = decide(observe([pod()], status=status, probe=failed()))
    assert plan.actions == (DeletePod(POD, "p-1", "Unhealthy"),)
    assert plan.status.pending_restart is not None and plan.status.pending_restart.failure
    # gone: the replacement waits out the backoff (2s initial), then comes.
    early = decide(observe([], status=plan.status, now=NOW + timedelta(seconds=1)))
    assert early.actions == () and early.status.message and "backoff" in early.status.message
    assert early.requeue_after == 1.0
    due = decide(observe([], status=early.status, now=NOW + timedelta(seconds=2)))
    assert due.actions == (CreatePod("Unhealthy"),)
    assert due.status.restarts == 1
    assert [e.reason for e in due.events] == ["Restarting"]


def test_failed_pod_is_replaced_and_counted() -> None:
    plan = decide(observe([pod(phase="Failed", ready=False)]))
    assert plan.actions == (DeletePod(POD, "p-1", "PodFailed"),)
    after = decide(observe([], status=plan.status, now=NOW + timedelta(seconds=5)))
    assert after.actions == (CreatePod("PodFailed"),)
    assert after.status.restarts == 1 and len(after.status.recent_restarts) == 1


def test_pod_that_disappears_is_a_failure() -> None:
    running = decide(observe([pod()], probe=ok())).status
    running.pod_name = POD
    plan = decide(observe([], status=running))
    assert plan.actions == ()  # backoff first
    assert plan.status.pending_restart is not None
    assert plan.status.pending_restart.reason == "PodDisappeared"


def test_backoff_grows_exponentially_to_the_cap() -> None:
    health = spec().health
    assert [backoff_seconds(health, n) for n in range(5)] == [2, 4, 8, 10, 10]


def crash_loop(
    status: TradingModuleStatus, now: datetime
) -> tuple[TradingModuleStatus, datetime, bool]:
    """One crash: the pod fails, is deleted, and (after its backoff) recreated or not."""
    plan = decide(observe([pod(phase="Failed", ready=False)], status=status, now=now))
    status = plan.status
    for _ in range(20):
        now += timedelta(seconds=10)
        plan = decide(observe([], status=status, now=now))
        status = plan.status
        if plan.actions or status.phase == Phase.FAILED:
            break
    return status, now, any(isinstance(a, CreatePod) for a in plan.actions)


def test_breaker_opens_after_exactly_max_restarts() -> None:
    status, now = TradingModuleStatus(pod_name=POD), NOW
    created = []
    for _ in range(4):
        status, now, made = crash_loop(status, now)
        created.append(made)
    assert created == [True, True, True, False]
    assert status.restarts == 3
    assert status.phase == Phase.FAILED
    assert status.breaker is not None and status.breaker.state == BreakerState.OPEN
    assert condition(status, "Healthy") == ("False", "CircuitOpen")
    assert status.message and "3 restarts in 600s" in status.message


def open_breaker() -> tuple[TradingModuleStatus, datetime]:
    status, now = TradingModuleStatus(pod_name=POD), NOW
    for _ in range(4):
        status, now, _ = crash_loop(status, now)
    return status, now


def test_half_open_trial_closes_when_healthy() -> None:
    status, now = open_breaker()
    waiting = decide(observe([], status=status, now=now + timedelta(seconds=30)))
    assert waiting.actions == () and waiting.status.phase == Phase.FAILED
    trial = decide(observe([], status=waiting.status, now=now + timedelta(seconds=61)))
    assert trial.actions == (CreatePod("PodFailed, trial"),)
    assert trial.status.breaker is not None and trial.status.breaker.state == BreakerState.HALF_OPEN
    healthy = decide(
        observe([pod()], status=trial.status, now=now + timedelta(seconds=70), probe=ok())
    )
    assert healthy.status.breaker is not None
    assert healthy.status.breaker.state == BreakerState.CLOSED
    assert healthy.status.recent_restarts == []
    assert healthy.status.phase == Phase.RUNNING
    assert "CircuitClosed" in [e.reason for e in healthy.events]


def test_half_open_trial_that_fails_opens_again() -> None:
    status, now = open_breaker()
    trial = decide(observe([], status=status, now=now + timedelta(seconds=61)))
    crashed = decide(
        observe(
            [pod(phase="Failed", ready=False)], status=trial.status, now=now + timedelta(seconds=65)
        )
    )
    reopened = decide(observe([], status=crashed.status, now=now + timedelta(seconds=70)))
    assert reopened.actions == ()
    assert (
        reopened.status.breaker is not None and reopened.status.breaker.state == BreakerState.OPEN
    )
    assert reopened.status.phase == Phase.FAILED


def test_reset_annotation_closes_the_breaker() -> None:
    status, now = open_breaker()
    plan = decide(
        observe(
            [],
            status=status,
            now=now + timedelta(seconds=1),
            annotations={ANNOTATION_RESET_BREAKER: "alice"},
        )
    )
    assert RemoveAnnotation(ANNOTATION_RESET_BREAKER) in plan.actions
    assert plan.status.breaker is not None and plan.status.breaker.state == BreakerState.CLOSED
    assert any("reset by alice" in e.message for e in plan.events)


# ---- risk halts ---------------------------------------------------------------------------


def halted(at: datetime = NOW) -> Probe:
    return Probe(cause="halted", at=at, halt_reason="max_daily_loss", halt_message="lost 60 > 50")


def test_halt_is_recorded_healthy_and_never_restarted() -> None:
    plan = decide(observe([pod()], probe=halted()))
    assert plan.actions == ()
    assert plan.status.health == Health.HEALTHY
    assert plan.status.halt is not None and plan.status.halt.reason == "max_daily_loss"
    assert condition(plan.status, "RiskHalted") == ("True", "RiskLimitBreached")
    assert [e.reason for e in plan.events] == ["RiskHalted"]
    again = decide(observe([pod()], status=plan.status, probe=halted(NOW + timedelta(seconds=5))))
    assert again.actions == () and again.events == ()


def test_new_pod_starts_halted_until_a_person_resumes() -> None:
    status = decide(observe([pod()], probe=halted())).status
    crashed = decide(observe([pod(phase="Failed", ready=False)], status=status))
    later = decide(observe([], status=crashed.status, now=NOW + timedelta(seconds=5)))
    assert later.actions == (CreatePod("PodFailed", start_halted="max_daily_loss"),)
    resumed = decide(
        observe([pod(uid="p-2")], status=later.status, annotations={ANNOTATION_RESUME: "bob"})
    )
    assert RemoveAnnotation(ANNOTATION_RESUME) in resumed.actions
    assert DeletePod(POD, "p-2", "Resumed") in resumed.actions
    assert resumed.status.halt is None
    assert resumed.status.last_resume is not None and resumed.status.last_resume.by == "bob"
    assert condition(resumed.status, "RiskHalted") == ("False", "Resumed")
    fresh = decide(observe([], status=resumed.status, now=NOW + timedelta(seconds=1)))
    assert fresh.actions == (CreatePod("Resumed", start_halted=None),)
    assert fresh.status.restarts == resumed.status.restarts  # a resume is not a failure


def test_metrics_are_copied_from_the_probe() -> None:
    summary = MetricsSummary(trades=4, realized_pnl="12.5")
    plan = decide(observe([pod()], probe=ok(metrics=summary)))
    assert plan.status.metrics == summary


# ---- invariants over random histories ---------------------------------------------------


events = st.sampled_from(
    [
        "tick",
        "pod_ready",
        "pod_fails",
        "pod_gone",
        "probe_ok",
        "probe_fail",
        "probe_halt",
        "spec_change",
        "disable",
        "enable",
        "resume",
        "reset",
    ]
)


@settings(max_examples=300, deadline=None)
@given(history=st.lists(events, max_size=60))
def test_never_two_pods_and_never_create_while_one_exists(history: list[str]) -> None:
    """A small world: the decision acts; deletions finish only on `pod_gone`."""
    status = TradingModuleStatus()
    pods: list[PodView] = []
    now, enabled, desired, serial = NOW, True, "h", 0
    for event in history:
        now += timedelta(seconds=7)
        probe = None
        annotations: dict[str, str] = {}
        if event == "pod_ready" and pods and not pods[0].deleting:
            pods = [
                PodView(POD, pods[0].uid, "Running", True, False, pods[0].config_hash, "127.0.0.2")
            ]
        elif event == "pod_fails" and pods and not pods[0].deleting:
            pods = [PodView(POD, pods[0].uid, "Failed", False, False, pods[0].config_hash)]
        elif event == "pod_gone" and pods and pods[0].deleting:
            pods = []
        elif event == "probe_ok":
            probe = ok(now)
        elif event == "probe_fail":
            probe = failed(now)
        elif event == "probe_halt":
            probe = halted(now)
        elif event == "spec_change":
            desired = "h2" if desired == "h" else "h"
        elif event in ("disable", "enable"):
            enabled = event == "enable"
        elif event == "resume":
            annotations = {ANNOTATION_RESUME: "p"}
        elif event == "reset":
            annotations = {ANNOTATION_RESET_BREAKER: "p"}
        obs = Observation(
            MODULE, spec(enabled=enabled), status, pods, desired, now, POD, probe, annotations
        )
        plan = decide(obs)
        creates = [a for a in plan.actions if isinstance(a, CreatePod)]
        assert len(creates) <= 1
        if pods or not enabled:
            assert not creates, (event, pods)
        for action in plan.actions:
            if isinstance(action, DeletePod):
                assert any(p.uid == action.uid for p in pods)
                pods = [
                    p
                    if p.uid != action.uid
                    else PodView(p.name, p.uid, p.phase, p.ready, True, p.config_hash)
                    for p in pods
                ]
        if creates:
            serial += 1
            pods = [PodView(POD, f"p-{serial}", "Pending", False, False, desired)]
        assert len(pods) <= 1
        status = plan.status
        if status.breaker is not None and status.breaker.state == BreakerState.OPEN:
            assert status.phase in (Phase.FAILED, Phase.DISABLED, Phase.PENDING, Phase.RUNNING)
        assert status.restarts >= 0 and status.consecutive_failures >= 0


def test_depends_on_waits_for_running_dependencies() -> None:
    obs = observe([], depends_on=["feed", "risk-desk"])
    plan = decide(obs)
    assert plan.actions == ()
    assert plan.status.phase == Phase.PENDING
    assert condition(plan.status, "Ready") == ("False", "WaitingForDependencies")
    assert plan.status.message == "waiting for feed (not found), risk-desk (not found)"
    ready = Observation(
        **{**obs.__dict__, "dependencies": {"feed": "Running", "risk-desk": "Running"}}
    )
    assert decide(ready).actions == (CreatePod("Creating"),)


def test_depends_on_never_stops_a_running_pod() -> None:
    obs = observe([pod()], depends_on=["feed"])
    assert decide(obs).actions == ()


def test_failed_pod_reports_the_runtimes_last_words() -> None:
    manifest = {
        "metadata": {
            "name": POD,
            "uid": "p-1",
            "annotations": {resources.ANNOTATION_CONFIG_HASH: "h"},
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {
                            "exitCode": 2,
                            "message": 'noise\n{"level": "ERROR", "msg": "invalid strategy '
                            'parameters: strategy.emaPeriod: too small", "exit": 2}\n',
                        }
                    }
                }
            ],
        },
    }
    view = PodView.from_manifest(manifest)
    assert view.exit_code == 2
    assert view.message == "invalid strategy parameters: strategy.emaPeriod: too small"
    plan = decide(observe([view]))
    assert plan.status.message is not None
    assert "exit code 2" in plan.status.message
    assert "strategy.emaPeriod: too small" in plan.status.message
    assert "strategy.emaPeriod" in plan.events[0].message


# ---- exit code 2: invalid configuration --------------------------------------------


def invalid_config_pod(uid: str = "p-1") -> PodView:
    return pod(
        uid=uid,
        phase="Failed",
        ready=False,
        exit_code=2,
        message="invalid strategy parameters: strategy.emaPeriod: too small",
    )


def test_exit_2_is_failed_invalid_config_and_not_restarted() -> None:
    plan = decide(observe([invalid_config_pod()]))
    assert plan.actions == ()
    assert plan.status.phase == Phase.FAILED
    assert condition(plan.status, "Ready") == ("False", "InvalidConfig")
    assert plan.status.message is not None and "strategy.emaPeriod" in plan.status.message
    assert [e.reason for e in plan.events] == ["InvalidConfig"]
    assert plan.requeue_after is None
    again = decide(observe([invalid_config_pod()], status=plan.status, now=NOW + timedelta(1)))
    assert again.actions == () and again.events == ()
    assert again.status.restarts == 0 and again.status.phase == Phase.FAILED


def test_a_new_generation_retries_an_invalid_config() -> None:
    failed_plan = decide(observe([invalid_config_pod()]))
    newer = Observation(
        module=ModuleRef(MODULE.name, MODULE.namespace, MODULE.uid, MODULE.generation + 1),
        spec=spec(),
        status=failed_plan.status,
        pods=[invalid_config_pod()],
        desired_hash="h",
        now=NOW,
        pod_name=POD,
    )
    retry = decide(newer)
    assert retry.actions == (DeletePod(POD, "p-1", "Retrying"),)
    created = decide(Observation(newer.module, newer.spec, retry.status, [], "h", NOW, POD))
    assert created.actions == (CreatePod("Retrying"),)
    assert created.status.restarts == 0  # not a failure restart: no backoff, no breaker
    # The retry fails the same way: Failed again, one event, no loop.
    again = [invalid_config_pod("p-2")]
    second = decide(Observation(newer.module, newer.spec, created.status, again, "h", NOW, POD))
    assert second.actions == () and [e.reason for e in second.events] == ["InvalidConfig"]
