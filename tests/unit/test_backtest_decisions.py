"""The pure decision for backtests and promotion: a finished backtest is a success (no
restart, breaker untouched), its report lands in the status and a ConfigMap once; the
promote annotation moves backtest -> paper -> live only on the figures."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from tests.unit.test_decisions import NOW, POD, condition, observe, ok, pod
from tradeplane_operator.api.models import (
    BacktestReport,
    MetricsSummary,
    Mode,
    Phase,
    TradingModuleStatus,
)
from tradeplane_operator.decisions import (
    CreatePod,
    DeletePod,
    PodView,
    RemoveAnnotation,
    SetMode,
    WriteBacktestReport,
    decide,
)
from tradeplane_operator.promotion import ANNOTATION_PROMOTE, PROMOTION_READY

PROMOTION = {
    "minTrades": 3,
    "minProfitFactor": 1.2,
    "maxDrawdownPercent": 10,
    "minSharpe": 0.5,
    "minPaperSeconds": 3600,
}


def report(**kw: Any) -> BacktestReport:
    values: dict[str, Any] = {
        "trades": 12,
        "wins": 8,
        "losses": 4,
        "winRate": "0.666667",
        "realizedPnl": "152.25",
        "profitFactor": "2.1",
        "maxDrawdown": "40",
        "maxDrawdownPercent": "4",
        "sharpe": "1.8",
        "sortino": "2.4",
        "startingBalance": "1000",
        "endingEquity": "1152.25",
        "dataStart": "2026-01-01T00:00:00Z",
        "dataEnd": "2026-01-02T00:00:00Z",
        "candles": 1440,
        "wallSeconds": "0.5",
    }
    values.update(kw)
    return BacktestReport.model_validate(values)


def done(rep: BacktestReport | None = None) -> PodView:
    return pod(phase="Succeeded", ready=False, exit_code=0, report=rep or report())


def backtest(pods: list[PodView], **kw: Any) -> Any:
    return observe(pods, mode="backtest", promotion=PROMOTION, **kw)


def test_creating_a_backtest_pod_posts_backtest_started() -> None:
    plan = decide(backtest([]))
    assert plan.actions == (CreatePod("Creating"),)
    assert "BacktestStarted" in [e.reason for e in plan.events]


def test_completion_is_success_once_not_a_restart() -> None:
    running = decide(backtest([pod()], probe=ok())).status
    plan = decide(backtest([done()], status=running))
    assert plan.status.phase == Phase.SUCCEEDED
    assert not any(isinstance(a, (CreatePod, DeletePod)) for a in plan.actions)
    assert plan.status.restarts == 0 and plan.status.recent_restarts == []
    assert plan.status.breaker is None and plan.status.pending_restart is None
    assert plan.requeue_after is None
    assert plan.status.backtest is not None and plan.status.backtest.pod_uid == "p-1"
    assert plan.status.metrics is not None and plan.status.metrics.realized_pnl == "152.25"
    (write,) = [a for a in plan.actions if isinstance(a, WriteBacktestReport)]
    assert write.report["realizedPnl"] == "152.25" and write.report["podUid"] == "p-1"
    assert [e.reason for e in plan.events] == ["BacktestFinished"]
    assert condition(plan.status, "Ready") == ("False", "BacktestSucceeded")
    assert condition(plan.status, PROMOTION_READY) == ("True", "ThresholdsMet")
    # Later passes over the same finished pod: nothing more to do or say.
    again = decide(backtest([done()], status=plan.status, now=NOW + timedelta(minutes=5)))
    assert again.actions == () and again.events == ()
    assert again.status == plan.status


def test_a_failed_backtest_is_a_failure_as_before() -> None:
    failed = pod(phase="Failed", ready=False, exit_code=1, message="backtest failed: look-ahead")
    plan = decide(backtest([failed]))
    assert plan.actions == (DeletePod(POD, "p-1", "PodFailed"),)
    assert plan.status.phase == Phase.PENDING
    assert plan.status.pending_restart is not None and plan.status.pending_restart.failure


def test_a_succeeded_paper_pod_is_still_a_failure() -> None:
    plan = decide(observe([done()]))
    assert plan.actions == (DeletePod(POD, "p-1", "PodFailed"),)


def test_the_report_comes_from_the_termination_message() -> None:
    message = json.dumps({"backtest": report().model_dump(mode="json", by_alias=True)})
    manifest = {
        "metadata": {"name": POD, "uid": "p-1"},
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [{"state": {"terminated": {"exitCode": 0, "message": message}}}],
        },
    }
    view = PodView.from_manifest(manifest)
    assert view.report == report()
    assert PodView.from_manifest({**manifest, "status": {"phase": "Failed"}}).report is None


# ---- promotion ------------------------------------------------------------------------


def finished(rep: BacktestReport) -> TradingModuleStatus:
    return decide(backtest([done(rep)])).status


def test_promotion_refused_below_thresholds() -> None:
    status = finished(report(trades=2, profitFactor="1.1", maxDrawdownPercent="12"))
    assert condition(status, PROMOTION_READY) == ("False", "ThresholdsNotMet")
    plan = decide(backtest([done()], status=status, annotations={ANNOTATION_PROMOTE: "carol"}))
    assert RemoveAnnotation(ANNOTATION_PROMOTE) in plan.actions
    assert not any(isinstance(a, SetMode) for a in plan.actions)
    (refused,) = [e for e in plan.events if e.reason == "PromotionRefused"]
    assert refused.type == "Warning"
    for reason in ("trades 2 < minTrades 3", "profitFactor 1.1 <", "maxDrawdownPercent 12 >"):
        assert reason in refused.message
    assert plan.status.promotions == []


def test_promotion_accepted_above_thresholds_records_who_when_and_figures() -> None:
    status = finished(report())
    later = NOW + timedelta(minutes=1)
    plan = decide(
        backtest([done()], status=status, now=later, annotations={ANNOTATION_PROMOTE: "carol"})
    )
    assert SetMode(Mode.PAPER) in plan.actions
    assert RemoveAnnotation(ANNOTATION_PROMOTE) in plan.actions
    (record,) = plan.status.promotions
    assert (record.from_mode, record.to_mode, record.by) == (Mode.BACKTEST, Mode.PAPER, "carol")
    assert record.at == "2026-01-01T00:01:00Z"
    assert record.figures["trades"] == "12" and record.figures["sharpe"] == "1.8"
    assert "Promoted" in [e.reason for e in plan.events]


def paper_status(since: str, **metrics: Any) -> TradingModuleStatus:
    values = {
        "trades": 5,
        "profitFactor": "1.5",
        "maxDrawdownPercent": "3",
        "sharpe": "0.9",
        "realizedPnl": "12",
    } | metrics
    return TradingModuleStatus(paper_since=since, metrics=MetricsSummary.model_validate(values))


WALLET = {"name": "wallet", "key": "key"}


def paper(status: TradingModuleStatus, **kw: Any) -> Any:
    return observe(
        [pod()],
        status=status,
        mode="paper",
        promotion=PROMOTION,
        annotations={ANNOTATION_PROMOTE: "dave"},
        **kw,
    )


def test_paper_to_live_needs_run_time_and_a_wallet() -> None:
    young = decide(paper(paper_status("2025-12-31T23:30:00Z"), walletSecretRef=WALLET))
    assert not any(isinstance(a, SetMode) for a in young.actions)
    (refused,) = [e for e in young.events if e.reason == "PromotionRefused"]
    assert "minPaperSeconds 3600" in refused.message
    no_wallet = decide(paper(paper_status("2025-12-31T22:00:00Z")))
    (refused,) = [e for e in no_wallet.events if e.reason == "PromotionRefused"]
    assert "walletSecretRef" in refused.message
    weak = decide(paper(paper_status("2025-12-31T22:00:00Z", sharpe="0.1"), walletSecretRef=WALLET))
    assert not any(isinstance(a, SetMode) for a in weak.actions)
    good = decide(paper(paper_status("2025-12-31T22:00:00Z"), walletSecretRef=WALLET))
    assert SetMode(Mode.LIVE) in good.actions
    (record,) = good.status.promotions
    assert record.figures["paperSeconds"] == "7200" and record.by == "dave"


def test_paper_condition_does_not_move_with_every_probe() -> None:
    status = paper_status("2025-12-31T23:30:00Z")
    first = decide(observe([pod()], status=status, mode="paper", probe=ok()))
    # The figures move (trades, PnL); the thresholds they miss do not.
    moved = ok(metrics=paper_status("", trades=6, realizedPnl="13").metrics)
    second = decide(observe([pod()], status=first.status, mode="paper", probe=moved))
    one = next(c for c in first.status.conditions if c.type == PROMOTION_READY)
    two = next(c for c in second.status.conditions if c.type == PROMOTION_READY)
    assert one == two


def test_paper_condition_is_on_this_passs_probe() -> None:
    """The first probe's figures give the condition at once: the second probe, with the
    same shortfalls, changes no condition (and so forces no status write)."""
    pending = decide(observe([pod(phase="Pending", ready=False)], mode="paper"))
    figures = paper_status("").metrics
    first = decide(observe([pod()], status=pending.status, mode="paper", probe=ok(metrics=figures)))
    moved = ok(metrics=paper_status("", trades=6, realizedPnl="13").metrics)
    second = decide(observe([pod()], status=first.status, mode="paper", probe=moved))
    assert first.status.conditions == second.status.conditions


def test_paper_since_is_set_by_the_first_ready_paper_pod() -> None:
    pending = decide(observe([pod(phase="Pending", ready=False)], mode="paper"))
    assert pending.status.paper_since is None
    ready = decide(observe([pod()], status=pending.status, mode="paper", probe=ok()))
    assert ready.status.paper_since == "2026-01-01T00:00:00Z"
    back = decide(backtest([pod()], status=ready.status))
    assert back.status.paper_since is None
