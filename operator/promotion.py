"""Gated promotion: backtest -> paper -> live, on the figures, by a person. Pure.

A person asks with `kubectl annotate tm NAME tradeplane.io/promote=<who>`. The operator
promotes only when the run in the current mode meets `spec.promotion`:

- backtest -> paper: the backtest's report (`status.backtest`): trades, profit factor,
  max drawdown percent, and the annualized Sharpe when `minSharpe` is set;
- paper -> live: the paper run's own metrics (`status.metrics`, as the runtime reports
  them: its Sharpe is per trade, not annualized), at least `minPaperSeconds` of paper
  running (since `status.paperSince`), and a wallet (`spec.walletSecretRef`).

Either way the decision patches `spec.mode`, records who, when and on which figures in
`status.promotions`, and posts an Event; a refusal posts the reasons instead. The
`PromotionReady` condition says, at every pass, whether a promotion would be accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from .api.models import (
    BacktestReport,
    MetricsSummary,
    Mode,
    PromotionSpec,
    TradingModuleSpec,
    TradingModuleStatus,
)

ANNOTATION_PROMOTE = "tradeplane.io/promote"
PROMOTION_READY = "PromotionReady"
NEXT_MODE = {Mode.BACKTEST: Mode.PAPER, Mode.PAPER: Mode.LIVE}


@dataclass(frozen=True)
class Assessment:
    target: Mode | None  # where a promotion would go; None: nowhere (live)
    figures: dict[str, str]  # stable between passes (they go into a condition message)
    missed: list[tuple[str, str]]  # (which threshold, why); empty: ready
    paper_seconds: int | None = None  # recorded with a promotion, not in the condition

    @property
    def record(self) -> dict[str, str]:
        if self.paper_seconds is None:
            return dict(self.figures)
        return {**self.figures, "paperSeconds": str(self.paper_seconds)}

    @property
    def ready(self) -> bool:
        return self.target is not None and not self.missed

    @property
    def shortfalls(self) -> list[str]:
        return [why for _, why in self.missed]

    @property
    def stable(self) -> bool:
        """Whether the figures stay put (a backtest's report) or move with every probe (a
        paper run's metrics, which must not rewrite a condition at every probe)."""
        return "paperSince" not in self.figures and self.target is not Mode.LIVE

    def condition_message(self) -> str:
        if self.stable:
            return f"{'; '.join(self.shortfalls)} ({self.summary})"
        names = ", ".join(key for key, _ in self.missed)
        return f"not met: {names} (figures: status.metrics, status.paperSince)"

    @property
    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.figures.items()) or "no figures yet"


def _number(text: str | None) -> Decimal | None:
    if text is None:
        return None
    if text == "inf":
        return Decimal("Infinity")
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def report_figures(report: BacktestReport) -> dict[str, str]:
    figures = {
        "trades": str(report.trades),
        "profitFactor": report.profit_factor or "none",
        "maxDrawdownPercent": report.max_drawdown_percent,
        "sharpe": report.sharpe or "none",
        "realizedPnl": report.realized_pnl,
    }
    return figures


def metrics_figures(metrics: MetricsSummary | None, paper_since: str | None) -> dict[str, str]:
    m = metrics or MetricsSummary()
    figures = {
        "trades": str(m.trades),
        "profitFactor": m.profit_factor or "none",
        "maxDrawdownPercent": m.max_drawdown_percent or "none",
        "sharpe": m.sharpe or "none",
        "realizedPnl": m.realized_pnl,
    }
    if paper_since is not None:
        figures["paperSince"] = paper_since
    return figures


def shortfalls(limits: PromotionSpec, figures: dict[str, str]) -> list[tuple[str, str]]:
    """What keeps `figures` from meeting `limits`: (threshold, reason) each."""
    found: list[tuple[str, str]] = []
    trades = int(figures.get("trades", "0"))
    if trades < limits.min_trades:
        found.append(("minTrades", f"trades {trades} < minTrades {limits.min_trades}"))
    pf = _number(figures.get("profitFactor"))
    if pf is None or pf < limits.min_profit_factor:
        found.append(
            (
                "minProfitFactor",
                f"profitFactor {figures.get('profitFactor')} < minProfitFactor "
                f"{limits.min_profit_factor}",
            )
        )
    dd = _number(figures.get("maxDrawdownPercent"))
    if dd is None or dd > limits.max_drawdown_percent:
        found.append(
            (
                "maxDrawdownPercent",
                f"maxDrawdownPercent {figures.get('maxDrawdownPercent')} > maxDrawdownPercent "
                f"{limits.max_drawdown_percent}",
            )
        )
    if limits.min_sharpe is not None:
        sharpe = _number(figures.get("sharpe"))
        if sharpe is None or sharpe < limits.min_sharpe:
            found.append(
                ("minSharpe", f"sharpe {figures.get('sharpe')} < minSharpe {limits.min_sharpe}")
            )
    return found


def assess(spec: TradingModuleSpec, status: TradingModuleStatus, now: datetime) -> Assessment:
    limits = spec.promotion or PromotionSpec()
    target = NEXT_MODE.get(spec.mode)
    if target is None:
        return Assessment(None, {}, [("mode", "mode is live: there is nothing to promote to")])
    if spec.mode is Mode.BACKTEST:
        if status.backtest is None:
            why = "no backtest report yet (the backtest has not finished)"
            return Assessment(target, {}, [("report", why)])
        figures = report_figures(status.backtest)
        return Assessment(target, figures, shortfalls(limits, figures))
    paper_seconds = None
    if status.paper_since is not None:
        since = datetime.strptime(status.paper_since, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=now.tzinfo
        )
        paper_seconds = max(0, int((now - since).total_seconds()))
    figures = metrics_figures(status.metrics, status.paper_since)
    found = shortfalls(limits, figures)
    if paper_seconds is None:
        found.append(("minPaperSeconds", "the paper run has not started yet"))
    elif paper_seconds < limits.min_paper_seconds:
        found.append(
            (
                "minPaperSeconds",
                f"paper run since {status.paper_since} is shorter than minPaperSeconds "
                f"{limits.min_paper_seconds}",
            )
        )
    if spec.wallet_secret_ref is None:
        found.append(("walletSecretRef", "spec.walletSecretRef is not set (live signs with it)"))
    return Assessment(target, figures, found, paper_seconds)
