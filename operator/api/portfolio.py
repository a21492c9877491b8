"""The TradingPortfolio API: a fleet capital budget, fleet loss limits, a kill switch.

A TradingModule joins a portfolio by `spec.portfolio: NAME` (same namespace). The sum
of the members' `spec.capital.allocation` never exceeds `spec.budget`: the operator's
validating webhook refuses the write that would (see `tradeplane_operator.admission`).
`crds/tradingportfolios.yaml` is generated from these models (`make manifests`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .models import ApiModel, Condition, Currency, Money, Percent

KIND = "TradingPortfolio"
PLURAL = "tradingportfolios"
SINGULAR = "tradingportfolio"
SHORT_NAMES = ["tp"]

# Reasons a portfolio halts its members (status.halt.reason).
HALT_KILL_SWITCH = "KillSwitch"
HALT_MAX_DAILY_LOSS = "MaxDailyLoss"
HALT_MAX_DRAWDOWN = "MaxDrawdown"


class TradingPortfolioSpec(ApiModel):
    budget: Money = Field(description="Capital the members may allocate in total.")
    currency: Currency = Field(
        default="USDC",
        description="Unit of the budget; members must allocate in the same currency.",
    )
    max_daily_loss: Money | None = Field(
        default=None,
        description="Summed member loss per UTC day (realized + unrealized) that halts them all.",
    )
    max_drawdown_percent: Percent | None = Field(
        default=None,
        description="Drawdown of the members' summed equity from its peak that halts them all.",
    )
    halted: bool = Field(
        default=False,
        description="The kill switch: true halts every member (no new exposure).",
    )


class PortfolioHalt(ApiModel):
    reason: str
    message: str = ""
    since: str
    by: str | None = None


class PortfolioResume(ApiModel):
    by: str
    at: str


class MemberCounts(ApiModel):
    total: int = 0
    by_phase: dict[str, int] = Field(default_factory=dict)


class LossBaseline(ApiModel):
    """The members' summed PnL at the start of the UTC day (or the last resume)."""

    day: str
    pnl: str


class TradingPortfolioStatus(ApiModel):
    observed_generation: int | None = None
    allocated: str | None = None
    available: str | None = None
    members: MemberCounts | None = None
    realized_pnl: str | None = None
    unrealized_pnl: str | None = None
    pnl: str | None = None
    halted: bool | None = None
    halt: PortfolioHalt | None = None
    last_resume: PortfolioResume | None = None
    loss_baseline: LossBaseline | None = None
    peak_equity: str | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Budget", "type": "string", "jsonPath": ".spec.budget"},
    {"name": "Allocated", "type": "string", "jsonPath": ".status.allocated"},
    {"name": "Available", "type": "string", "jsonPath": ".status.available"},
    {"name": "Members", "type": "integer", "jsonPath": ".status.members.total"},
    {"name": "PnL", "type": "string", "jsonPath": ".status.pnl"},
    {"name": "Halted", "type": "boolean", "jsonPath": ".status.halted"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
