"""The portfolio decisions: status, kill switch and loss limits; members' runtime halts.

Pure, like `decisions.decide`: (portfolio spec, its status, its members as observed,
now, a person's annotations) -> the status to write, events, annotations to remove.
The halt lives in the portfolio's status, so it survives operator and pod restarts: a
restarted operator reads it back and halts the members again; new pods start halted.

A portfolio halt blocks new exposure in every member and lets reductions through (the
runtime's `portfolio halt`); it never restarts a pod. Members learn it from the
operator, which tells each running runtime (`runtime_control`) until the runtime's own
health report agrees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from . import conditions as cond
from .admission import draws_capital, fmt
from .api.models import Condition
from .api.portfolio import (
    HALT_KILL_SWITCH,
    HALT_MAX_DAILY_LOSS,
    HALT_MAX_DRAWDOWN,
    LossBaseline,
    MemberCounts,
    PortfolioHalt,
    PortfolioResume,
    TradingPortfolioSpec,
    TradingPortfolioStatus,
)

ANNOTATION_RESUME = "tradeplane.io/resume-halt"
# Who made the last change through `kubectl trading` (recorded with halts and resumes).
ANNOTATION_CHANGED_BY = "tradeplane.io/changed-by"

HALTED = "Halted"
WITHIN_BUDGET = "WithinBudget"
PORTFOLIO_HALTED = "PortfolioHalted"  # the condition on each member

ZERO = Decimal(0)
HUNDRED = Decimal(100)


def decimal(text: Any, default: Decimal = ZERO) -> Decimal:
    try:
        return Decimal(str(text)) if text is not None else default
    except InvalidOperation:
        return default


@dataclass(frozen=True)
class Member:
    """One member module as the portfolio sees it."""

    name: str
    uid: str
    allocation: Decimal
    phase: str | None
    realized_pnl: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Member:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        metrics = (status.get("metrics") or {}) if draws_capital(spec) else {}
        return cls(
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            allocation=(
                decimal((spec.get("capital") or {}).get("allocation"))
                if draws_capital(spec)
                else ZERO
            ),
            phase=status.get("phase"),
            realized_pnl=decimal(metrics.get("realizedPnl")),
            unrealized_pnl=decimal(metrics.get("unrealizedPnl")),
        )


@dataclass(frozen=True)
class PortfolioObservation:
    name: str
    generation: int
    spec: TradingPortfolioSpec
    status: TradingPortfolioStatus
    members: Sequence[Member]
    now: datetime
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class PortfolioEvent:
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class PortfolioPlan:
    status: TradingPortfolioStatus
    events: tuple[PortfolioEvent, ...] = ()
    remove_annotations: tuple[str, ...] = ()


def desired_halt(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str | None:
    """What the members must be: halted with this reason, or not (None). The status
    holds the halt; `spec.halted` counts at once, before the daemon records it."""
    halt = status.get("halt") or {}
    if halt.get("reason"):
        return str(halt["reason"])
    return HALT_KILL_SWITCH if spec.get("halted") else None


def _loss_breach(
    spec: TradingPortfolioSpec, baseline: Decimal, pnl: Decimal, peak: Decimal, equity: Decimal
) -> tuple[str, str] | None:
    loss = baseline - pnl
    if spec.max_daily_loss is not None and loss > 0 and loss >= spec.max_daily_loss:
        return (
            HALT_MAX_DAILY_LOSS,
            f"members lost {fmt(loss)} {spec.currency} today (realized + unrealized), "
            f"reaching maxDailyLoss {fmt(spec.max_daily_loss)}",
        )
    if spec.max_drawdown_percent is not None and peak > 0 and equity < peak:
        drawdown = (peak - equity) / peak * HUNDRED
        if drawdown >= spec.max_drawdown_percent:
            return (
                HALT_MAX_DRAWDOWN,
                f"members' equity {fmt(equity)} is {drawdown.quantize(Decimal('0.01'))}% "
                f"below its peak {fmt(peak)}, reaching maxDrawdownPercent "
                f"{spec.max_drawdown_percent}",
            )
    return None


def decide_portfolio(obs: PortfolioObservation) -> PortfolioPlan:
    spec, now = obs.spec, obs.now
    status = obs.status.model_copy(deep=True)
    events: list[PortfolioEvent] = []
    remove: list[str] = []
    now_text = cond.timestamp(now)

    def condition(type: str, value: bool, reason: str, message: str) -> None:
        status.conditions = cond.set_condition(
            list(status.conditions),
            type=type,
            status=value,
            reason=reason,
            message=message,
            generation=obs.generation,
            now=now,
        )

    allocated = sum((m.allocation for m in obs.members), ZERO)
    realized = sum((m.realized_pnl for m in obs.members), ZERO)
    unrealized = sum((m.unrealized_pnl for m in obs.members), ZERO)
    pnl = realized + unrealized
    equity = allocated + pnl
    by_phase: dict[str, int] = {}
    for m in obs.members:
        by_phase[m.phase or "Pending"] = by_phase.get(m.phase or "Pending", 0) + 1
    status.observed_generation = obs.generation
    status.allocated = fmt(allocated)
    status.available = fmt(spec.budget - allocated)
    status.members = MemberCounts(total=len(obs.members), by_phase=by_phase)
    status.realized_pnl, status.unrealized_pnl = fmt(realized), fmt(unrealized)
    status.pnl = fmt(pnl)

    today = now.date().isoformat()
    if status.loss_baseline is None or status.loss_baseline.day != today:
        status.loss_baseline = LossBaseline(day=today, pnl=fmt(pnl))
    peak = max(decimal(status.peak_equity, equity), equity)
    status.peak_equity = fmt(peak)

    def resume(by: str, what: str) -> None:
        assert status.halt is not None
        events.append(
            PortfolioEvent("Normal", "PortfolioResumed", f"{what} ({status.halt.reason}) by {by}")
        )
        status.halt = None
        status.last_resume = PortfolioResume(by=by, at=now_text)
        # Limits are measured from here on, or the same loss would halt again at once.
        status.loss_baseline = LossBaseline(day=today, pnl=fmt(pnl))
        status.peak_equity = fmt(equity)

    changed_by = obs.annotations.get(ANNOTATION_CHANGED_BY) or "unknown"
    who = obs.annotations.get(ANNOTATION_RESUME)
    if who is not None:
        remove.append(ANNOTATION_RESUME)
        if status.halt is not None and status.halt.reason != HALT_KILL_SWITCH:
            resume(who or "unknown", "portfolio loss-limit halt cleared")
    if not spec.halted and status.halt is not None and status.halt.reason == HALT_KILL_SWITCH:
        resume(changed_by, "kill switch released")
    if spec.halted and status.halt is None:
        status.halt = PortfolioHalt(
            reason=HALT_KILL_SWITCH, message="spec.halted is true", since=now_text, by=changed_by
        )
        events.append(
            PortfolioEvent(
                "Warning", "PortfolioHalted", f"kill switch: every member halted by {changed_by}"
            )
        )
    if status.halt is None:
        baseline = decimal(status.loss_baseline.pnl, pnl)
        breach = _loss_breach(spec, baseline, pnl, decimal(status.peak_equity, equity), equity)
        if breach is not None:
            reason, message = breach
            status.halt = PortfolioHalt(reason=reason, message=message, since=now_text)
            events.append(
                PortfolioEvent(
                    "Warning",
                    "PortfolioHalted",
                    f"{message}; every member halted until a person annotates "
                    f"{ANNOTATION_RESUME}=<name>",
                )
            )

    status.halted = status.halt is not None
    if status.halt is not None:
        condition(HALTED, True, status.halt.reason, status.halt.message)
    else:
        condition(HALTED, False, "NotHalted", "members may open positions")
    if allocated <= spec.budget:
        condition(WITHIN_BUDGET, True, "WithinBudget", f"{status.allocated} of {fmt(spec.budget)}")
    else:
        condition(
            WITHIN_BUDGET,
            False,
            "OverBudget",
            f"members allocate {status.allocated}, budget {fmt(spec.budget)}",
        )
    return PortfolioPlan(status, tuple(events), tuple(remove))


# ---- the members' side -------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeControl:
    """Tell a running runtime to enter (`reason`) or leave (None) the portfolio halt."""

    reason: str | None


def runtime_control(
    desired: str | None, reported: str | None, known: bool
) -> RuntimeControl | None:
    """What to tell the runtime: nothing when its last report (or our last successful
    call) agrees with `desired`; when we do not know (`known` False), say it again —
    the call is idempotent, and a restarted operator or a new pod must not be trusted
    to have heard it."""
    if known and (reported is None) == (desired is None):
        return None
    if not known and desired is None:
        return None  # a runtime starts unhalted unless its pod says otherwise
    return RuntimeControl(desired)


def member_condition(
    conditions: list[Condition],
    *,
    portfolio: str | None,
    desired: str | None,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """The member's PortfolioHalted condition (absent for modules outside a portfolio)."""
    if portfolio is None:
        return [c for c in conditions if c.type != PORTFOLIO_HALTED]
    if desired is None:
        value, reason, message = False, "NotHalted", f"portfolio {portfolio} is not halted"
    else:
        value, reason, message = True, desired, f"portfolio {portfolio} halted: {desired}"
    return cond.set_condition(
        conditions,
        type=PORTFOLIO_HALTED,
        status=value,
        reason=reason,
        message=message,
        generation=generation,
        now=now,
    )
