"""The pure reconcile decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tradeplane_operator import resources
from tradeplane_operator.api.models import Phase, TradingModuleSpec, TradingModuleStatus
from tradeplane_operator.decisions import CreatePod, DeletePod, Observation, PodView, decide
from tradeplane_operator.resources import ModuleRef

MODULE = ModuleRef(name="dex", namespace="ns", uid="u-1", generation=3)
POD = resources.pod_name(MODULE)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def spec(**overrides: object) -> TradingModuleSpec:
    base: dict[str, object] = {
        "type": "dex_trading",
        "capital": {"allocation": "1000"},
        "risk": {"maxPositionSize": "100", "maxDailyLoss": "50"},
    }
    base.update(overrides)
    return TradingModuleSpec.model_validate(base)


def pod(**kw: object) -> PodView:
    values: dict[str, object] = {
        "name": POD,
        "uid": "p-1",
        "phase": "Running",
        "ready": True,
        "deleting": False,
        "config_hash": "h",
    }
    values.update(kw)
    return PodView(**values)  # type: ignore[arg-type]


def observe(
    pods: list[PodView], *, status: TradingModuleStatus | None = None, **spec_kw: object
) -> Observation:
    return Observation(
        module=MODULE,
        spec=spec(**spec_kw),
        status=status or TradingModuleStatus(),
        pods=pods,
        desired_hash="h",
        now=NOW,
        pod_name=POD,
    )


def test_creates_the_pod_when_none_exists() -> None:
    plan = decide(observe([]))
    assert plan.actions == (CreatePod("Creating"),)
    assert plan.status.phase == Phase.PENDING
    assert plan.status.observed_generation == 3


def test_running_and_ready_is_running() -> None:
    plan = decide(observe([pod()]))
    assert plan.actions == ()
    assert plan.status.phase == Phase.RUNNING
    ready = plan.status.conditions[0]
    assert (ready.type, ready.status, ready.observed_generation) == ("Ready", "True", 3)


def test_not_ready_is_pending() -> None:
    plan = decide(observe([pod(ready=False)]))
    assert plan.actions == () and plan.status.phase == Phase.PENDING


def test_spec_change_deletes_first_and_waits() -> None:
    plan = decide(observe([pod(config_hash="old")]))
    assert plan.actions == (DeletePod(POD, "p-1", "ConfigChanged"),)
    waiting = decide(observe([pod(config_hash="old", deleting=True)]))
    assert waiting.actions == ()  # no new pod while the old one terminates
    assert waiting.status.conditions[0].reason == "WaitingForPodTermination"


def test_failed_pod_is_replaced_after_it_is_gone() -> None:
    plan = decide(observe([pod(phase="Failed", ready=False)]))
    assert plan.actions == (DeletePod(POD, "p-1", "PodFailed"),)
    previous = TradingModuleStatus(pod_name=POD, restarts=2)
    after = decide(observe([], status=previous))
    assert after.actions == (CreatePod("Replacing"),)
    assert after.status.restarts == 3


def test_disabled_removes_the_pod() -> None:
    plan = decide(observe([pod()], enabled=False))
    assert plan.actions == (DeletePod(POD, "p-1", "Disabled"),)
    assert plan.status.phase == Phase.DISABLED
    gone = decide(observe([], enabled=False))
    assert gone.actions == () and gone.status.phase == Phase.DISABLED


def test_stray_pods_are_removed_and_block_creation() -> None:
    stray = pod(name="dex-old", uid="p-0")
    plan = decide(observe([stray]))
    assert plan.actions == (DeletePod("dex-old", "p-0", "StrayPod"),)


def test_transition_time_kept_when_status_unchanged() -> None:
    first = decide(observe([pod()]))
    later = Observation(
        module=MODULE,
        spec=spec(),
        status=first.status,
        pods=[pod()],
        desired_hash="h",
        now=NOW + timedelta(minutes=5),
        pod_name=POD,
    )
    second = decide(later)
    assert second.status == first.status


pod_states = st.builds(
    PodView,
    name=st.sampled_from([POD, "other"]),
    uid=st.sampled_from(["a", "b"]),
    phase=st.sampled_from(["Pending", "Running", "Failed", "Succeeded", "Unknown"]),
    ready=st.booleans(),
    deleting=st.booleans(),
    config_hash=st.sampled_from(["h", "old", None]),
)


@given(pods=st.lists(pod_states, max_size=3), enabled=st.booleans())
def test_never_creates_while_any_pod_exists(pods: list[PodView], enabled: bool) -> None:
    plan = decide(observe(pods, enabled=enabled))
    creates = [a for a in plan.actions if isinstance(a, CreatePod)]
    assert len(creates) <= 1
    if pods or not enabled:
        assert not creates
    for action in plan.actions:
        if isinstance(action, DeletePod):
            assert any(p.name == action.name and p.uid == action.uid for p in pods)
