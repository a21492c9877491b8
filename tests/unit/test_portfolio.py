"""The portfolio decision: status sums, kill switch, loss limits, runtime control."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradeplane_operator.api.portfolio import TradingPortfolioSpec, TradingPortfolioStatus
from tradeplane_operator.portfolio import (
    ANNOTATION_CHANGED_BY,
    ANNOTATION_RESUME,
    Member,
    PortfolioObservation,
    PortfolioPlan,
    decide_portfolio,
    desired_halt,
    runtime_control,
)
from tradeplane_operator.webhook import module_facts

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
D = Decimal


def members(*pnls: str) -> list[Member]:
    return [
        Member(name=f"m{i}", uid=f"u{i}", allocation=D(100), phase="Running", realized_pnl=D(p))
        for i, p in enumerate(pnls)
    ]


def run(
    status: TradingPortfolioStatus | None = None,
    *,
    pnls: tuple[str, ...] = ("0", "0"),
    now: datetime = NOW,
    annotations: dict[str, str] | None = None,
    **spec: object,
) -> PortfolioPlan:
    return decide_portfolio(
        PortfolioObservation(
            name="fleet",
            generation=1,
            spec=TradingPortfolioSpec.model_validate({"budget": "1000", **spec}),
            status=status or TradingPortfolioStatus(),
            members=members(*pnls),
            now=now,
            annotations=annotations or {},
        )
    )


def test_status_sums_members() -> None:
    plan = decide_portfolio(
        PortfolioObservation(
            name="fleet",
            generation=1,
            spec=TradingPortfolioSpec.model_validate({"budget": "1000"}),
            status=TradingPortfolioStatus(),
            members=[
                Member("a", "1", D("250.5"), "Running", D("1.25"), D("-0.5")),
                Member("b", "2", D(300), "Failed", D(-2), D(0)),
                Member("c", "3", D(100), None),
            ],
            now=NOW,
            annotations={},
        )
    )
    s = plan.status
    assert (s.allocated, s.available) == ("650.5", "349.5")
    assert s.members is not None and s.members.total == 3
    assert s.members.by_phase == {"Running": 1, "Failed": 1, "Pending": 1}
    assert (s.realized_pnl, s.unrealized_pnl, s.pnl) == ("-0.75", "-0.5", "-1.25")
    assert s.halted is False


def test_kill_switch_halts_and_release_records_who() -> None:
    halted = run(halted=True, annotations={ANNOTATION_CHANGED_BY: "alice"})
    assert halted.status.halt is not None and halted.status.halt.reason == "KillSwitch"
    assert halted.status.halt.by == "alice" and halted.status.halted
    assert [e.reason for e in halted.events] == ["PortfolioHalted"]
    again = run(halted.status, halted=True)
    assert again.events == () and again.status.halt == halted.status.halt
    later = NOW + timedelta(minutes=5)
    released = run(halted.status, now=later, annotations={ANNOTATION_CHANGED_BY: "bob"})
    assert released.status.halt is None and released.status.halted is False
    assert released.status.last_resume is not None
    assert (released.status.last_resume.by, released.status.last_resume.at) == (
        "bob",
        "2026-03-01T12:05:00Z",
    )


def test_daily_loss_halts_and_stays_until_a_person_resumes() -> None:
    start = run(pnls=("0", "0"), maxDailyLoss="50")
    assert start.status.halt is None
    small = run(start.status, pnls=("-20", "-20"), maxDailyLoss="50")
    assert small.status.halt is None
    breached = run(small.status, pnls=("-30", "-20"), maxDailyLoss="50")
    assert breached.status.halt is not None and breached.status.halt.reason == "MaxDailyLoss"
    # Recovering PnL does not lift it; only the annotation does, and the baseline moves.
    recovered = run(breached.status, pnls=("0", "0"), maxDailyLoss="50")
    assert recovered.status.halt is not None
    resumed = run(
        breached.status,
        pnls=("-30", "-20"),
        maxDailyLoss="50",
        annotations={ANNOTATION_RESUME: "carol"},
    )
    assert resumed.status.halt is None and resumed.remove_annotations == (ANNOTATION_RESUME,)
    assert resumed.status.last_resume is not None and resumed.status.last_resume.by == "carol"
    assert run(resumed.status, pnls=("-30", "-20"), maxDailyLoss="50").status.halt is None


def test_a_new_day_starts_a_new_loss_budget() -> None:
    day1 = run(pnls=("0", "0"), maxDailyLoss="50")
    losing = run(day1.status, pnls=("-40", "0"), maxDailyLoss="50")
    tomorrow = NOW + timedelta(days=1)
    day2 = run(losing.status, pnls=("-40", "0"), now=tomorrow, maxDailyLoss="50")
    assert day2.status.loss_baseline is not None and day2.status.loss_baseline.pnl == "-40"
    assert run(day2.status, pnls=("-80", "0"), now=tomorrow, maxDailyLoss="50").status.halt is None
    assert run(day2.status, pnls=("-90", "0"), now=tomorrow, maxDailyLoss="50").status.halt


def test_drawdown_from_the_peak_halts() -> None:
    peak = run(pnls=("20", "0"), maxDrawdownPercent=5)  # equity 220, peak 220
    assert run(peak.status, pnls=("10", "0"), maxDrawdownPercent=5).status.halt is None
    deep = run(peak.status, pnls=("9", "0"), maxDrawdownPercent=5)  # 209/220: -5%
    assert deep.status.halt is not None and deep.status.halt.reason == "MaxDrawdown"


def test_desired_halt_reads_status_then_spec() -> None:
    assert desired_halt({"halted": True}, {}) == "KillSwitch"
    assert desired_halt({}, {"halt": {"reason": "MaxDailyLoss"}}) == "MaxDailyLoss"
    assert desired_halt({}, {}) is None


def test_runtime_control_only_when_the_runtime_disagrees_or_is_unknown() -> None:
    assert runtime_control("KillSwitch", "KillSwitch", known=True) is None
    assert runtime_control(None, None, known=True) is None
    control = runtime_control("KillSwitch", None, known=True)
    assert control is not None and control.reason == "KillSwitch"
    lift = runtime_control(None, "KillSwitch", known=True)
    assert lift is not None and lift.reason is None
    unknown = runtime_control("KillSwitch", None, known=False)
    assert unknown is not None and unknown.reason == "KillSwitch"
    assert runtime_control(None, None, known=False) is None


def test_a_backtest_member_draws_no_budget_and_its_losses_do_not_count() -> None:
    def body(mode: str) -> dict[str, object]:
        return {
            "metadata": {"name": "m", "uid": "u"},
            "spec": {"mode": mode, "capital": {"allocation": "5000"}, "portfolio": "fleet"},
            "status": {"phase": "Succeeded", "metrics": {"realizedPnl": "-900"}},
        }

    paper, backtest = Member.from_body(body("paper")), Member.from_body(body("backtest"))
    assert (paper.allocation, paper.realized_pnl) == (Decimal(5000), Decimal(-900))
    assert (backtest.allocation, backtest.realized_pnl) == (Decimal(0), Decimal(0))
    facts = module_facts(body("backtest")["spec"])  # type: ignore[arg-type]
    assert facts.allocation == 0 and facts.portfolio == "fleet"
    assert module_facts(body("live")["spec"]).allocation == Decimal(5000)  # type: ignore[arg-type]
