"""Performance statistics of a module, computed from its ledger. Pure, Decimal only.

Definitions (all money in quote units, the module's `capital.currency`):

- a *trade* is a `ClosedTrade` (one closing fill, see `module_runtime.positions`);
- a *win* has PnL > 0, a *loss* PnL < 0; a trade with PnL == 0 (breakeven) is neither,
  but it is still a trade: win rate = wins / trades, so breakevens lower it;
- gross profit = sum of winning PnL; gross loss = -(sum of losing PnL), a positive number;
- profit factor = gross profit / gross loss. With no losing trades it is undefined
  (`None`, JSON null) when there is no profit either, and `Decimal('Infinity')` (JSON
  "inf") when there is profit: "all profit, no loss" is the best case and must not read
  as "no data";
- expectancy = realized PnL / trades (mean PnL per trade);
- max drawdown is taken on the equity curve that starts at the allocated capital, adds
  each trade's PnL in order, and ends at the current mark-to-market equity (realized +
  unrealized). The absolute and the percent maximum are each the largest over the curve
  (they may come from different points); neither is ever negative;
- Sharpe is mean / sample standard deviation of per-trade returns (PnL / capital the
  trade used), not annualized; `None` with fewer than two trades or zero deviation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from module_runtime.positions import ACCOUNTING_CONTEXT, ClosedTrade, Position, PositionKey

# One fixed precision for every statistic, whatever the caller's decimal context is.
STATS_CONTEXT = ACCOUNTING_CONTEXT
ZERO = Decimal(0)
HUNDRED = Decimal(100)
INFINITY = Decimal("Infinity")


@dataclass(frozen=True, slots=True)
class Drawdown:
    amount: Decimal  # largest peak-to-trough fall, quote units, >= 0
    percent: Decimal  # largest fall as a percent of its peak, 0..100 while equity >= 0

    @property
    def ratio(self) -> Decimal:
        with localcontext(STATS_CONTEXT):
            return self.percent / HUNDRED


@dataclass(frozen=True, slots=True)
class TradeStats:
    trades: int
    wins: int
    losses: int
    breakeven: int
    win_rate: Decimal | None  # None without trades
    gross_profit: Decimal
    gross_loss: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    profit_factor: Decimal | None
    expectancy: Decimal | None
    max_drawdown: Decimal
    max_drawdown_percent: Decimal
    sharpe: Decimal | None
    capital_in_use: Decimal
    funding: Decimal = ZERO  # perpetuals: funding received (negative: paid), in realized_pnl
    liquidations: int = 0  # perpetuals: positions the venue liquidated (each also a trade)

    @property
    def max_drawdown_ratio(self) -> Decimal:
        with localcontext(STATS_CONTEXT):
            return self.max_drawdown_percent / HUNDRED

    def as_json(self) -> dict[str, Any]:
        """Every statistic, camelCase, decimals as strings ("inf" / null, never floats)."""
        return {
            "trades": self.trades,
            "wins": self.wins,
            "losses": self.losses,
            "breakeven": self.breakeven,
            "winRate": decimal_str(self.win_rate),
            "grossProfit": decimal_str(self.gross_profit),
            "grossLoss": decimal_str(self.gross_loss),
            "realizedPnl": decimal_str(self.realized_pnl),
            "unrealizedPnl": decimal_str(self.unrealized_pnl),
            "profitFactor": decimal_str(self.profit_factor),
            "expectancy": decimal_str(self.expectancy),
            "maxDrawdown": decimal_str(self.max_drawdown),
            "maxDrawdownPercent": decimal_str(self.max_drawdown_percent),
            "sharpe": decimal_str(self.sharpe),
            "capitalInUse": decimal_str(self.capital_in_use),
            "funding": decimal_str(self.funding),
            "liquidations": self.liquidations,
        }


def decimal_str(value: Decimal | None, places: int | None = None) -> str | None:
    """A decimal as JSON wants it: plain notation, "inf" for infinity, None stays None.

    `places` rounds (half-even) for display; PnL is never rounded by default.
    """
    if value is None:
        return None
    if value.is_infinite():
        return "inf" if value > 0 else "-inf"
    if value.is_nan():
        return None
    if places is not None:
        with localcontext(STATS_CONTEXT):
            value = value.quantize(Decimal(1).scaleb(-places))
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def profit_factor(gross_profit: Decimal, gross_loss: Decimal) -> Decimal | None:
    """gross profit / gross loss; see the module docstring for the no-loss cases."""
    if gross_loss < 0 or gross_profit < 0:
        raise ValueError("gross profit and gross loss are both >= 0")
    if gross_loss == 0:
        return INFINITY if gross_profit > 0 else None
    with localcontext(STATS_CONTEXT):
        return gross_profit / gross_loss


def max_drawdown(capital: Decimal, pnls: Iterable[Decimal], unrealized: Decimal = ZERO) -> Drawdown:
    """Largest fall from a running peak of the equity curve (see module docstring)."""
    if capital <= 0:
        raise ValueError(f"capital must be > 0, got {capital}")
    with localcontext(STATS_CONTEXT):
        equity = peak = capital
        worst = worst_pct = ZERO
        points = [*pnls, None]  # None: the final mark-to-market point

        for pnl in points:
            point = equity + unrealized if pnl is None else equity + pnl
            if pnl is not None:
                equity = point
            peak = max(peak, point)
            fall = peak - point
            worst = max(worst, fall)
            worst_pct = max(worst_pct, fall / peak * HUNDRED)
        return Drawdown(worst, worst_pct)


def sharpe(returns: Sequence[Decimal]) -> Decimal | None:
    """mean / sample stdev of per-trade returns; None if < 2 returns or no dispersion."""
    n = len(returns)
    if n < 2:
        return None
    with localcontext(STATS_CONTEXT):
        mean = sum(returns, ZERO) / n
        variance = sum(((r - mean) ** 2 for r in returns), ZERO) / (n - 1)
        if variance == 0:
            return None
        return mean / variance.sqrt()


def unrealized_pnl(
    positions: Iterable[Position], marks: Mapping[PositionKey, Decimal] | None = None
) -> Decimal:
    """Sum of open positions valued at their marks (unmarked positions count zero)."""
    marks = marks or {}
    with localcontext(STATS_CONTEXT):
        return sum((p.unrealized_pnl(marks.get(p.key)) for p in positions), ZERO)


def capital_in_use(positions: Iterable[Position]) -> Decimal:
    """Capital tied up in open positions (spot: the whole cost; perpetuals: the margin)."""
    with localcontext(STATS_CONTEXT):
        return sum((p.capital for p in positions), ZERO)


def compute_stats(
    trades: Sequence[ClosedTrade],
    *,
    capital: Decimal,
    positions: Sequence[Position] = (),
    marks: Mapping[PositionKey, Decimal] | None = None,
    funding: Decimal = ZERO,
    liquidations: int = 0,
) -> TradeStats:
    """All statistics for `trades` (in closing order) and the open `positions`.

    Perpetuals: `funding` (received, negative when paid) is part of realized PnL (and of
    the equity curve, as one step before the mark-to-market point) but no trade; a
    liquidation is a trade (its loss is the margin), counted again in `liquidations`."""
    with localcontext(STATS_CONTEXT):
        pnls = [t.pnl for t in trades]
        wins = [p for p in pnls if p > 0]
        losses = [p for p in pnls if p < 0]
        gross_profit = sum(wins, ZERO)
        gross_loss = -sum(losses, ZERO)
        realized = sum(pnls, ZERO) + funding
        unrealized = unrealized_pnl(positions, marks)
        n = len(pnls)
        curve = [*pnls, funding] if funding else pnls
        drawdown = max_drawdown(capital, curve, unrealized)
        return TradeStats(
            trades=n,
            wins=len(wins),
            losses=len(losses),
            breakeven=n - len(wins) - len(losses),
            win_rate=Decimal(len(wins)) / n if n else None,
            gross_profit=gross_profit,
            gross_loss=gross_loss,
            realized_pnl=realized,
            unrealized_pnl=unrealized,
            profit_factor=profit_factor(gross_profit, gross_loss),
            expectancy=sum(pnls, ZERO) / n if n else None,
            max_drawdown=drawdown.amount,
            max_drawdown_percent=drawdown.percent,
            sharpe=sharpe([t.ret for t in trades]),
            capital_in_use=capital_in_use(positions),
            funding=funding,
            liquidations=liquidations,
        )
