"""Trade statistics: hand-computed cases, then properties over generated trade lists."""

from __future__ import annotations

import dataclasses
from decimal import Context, Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from module_runtime.positions import ClosedTrade, Position
from module_runtime.trade_stats import (
    INFINITY,
    STATS_CONTEXT,
    TradeStats,
    compute_stats,
    decimal_str,
    max_drawdown,
    profit_factor,
    sharpe,
)

D = Decimal


def trades(*pnls: str, capital: str = "100") -> list[ClosedTrade]:
    return [ClosedTrade(pnl=D(p), capital=D(capital)) for p in pnls]


def test_every_metric_on_a_small_hand_computed_list() -> None:
    # pnl: +10, -5, 0, +20, -15, each on 100 of capital; allocation 1000
    stats = compute_stats(trades("10", "-5", "0", "20", "-15"), capital=D(1000))
    assert (stats.trades, stats.wins, stats.losses, stats.breakeven) == (5, 2, 2, 1)
    assert stats.win_rate == D("0.4")  # 2 wins / 5 trades (the breakeven counts as a trade)
    assert stats.gross_profit == D(30)  # 10 + 20
    assert stats.gross_loss == D(20)  # 5 + 15, positive
    assert stats.realized_pnl == D(10)
    assert stats.profit_factor == D("1.5")  # 30 / 20
    assert stats.expectancy == D(2)  # 10 / 5
    # equity 1000, 1010, 1005, 1005, 1025, 1010; peaks ..., 1025; worst fall 1025 -> 1010
    assert stats.max_drawdown == D(15)
    assert stats.max_drawdown_percent.quantize(D("0.000001")) == D("1.463415")  # 15/1025
    # returns .10 -.05 0 .20 -.15: mean .02; squared deviations .0064 .0049 .0004 .0324
    # .0289 = .073; sample variance .073/4 = .01825; sharpe = .02 / sqrt(.01825) = .14805
    assert stats.sharpe is not None
    assert stats.sharpe.quantize(D("0.00001")) == D("0.14805")
    assert stats.unrealized_pnl == 0 and stats.capital_in_use == 0


def test_sharpe_exact_cases() -> None:
    # returns .02 .04 .06: mean .04, deviations -.02 0 .02, variance .0008/2 = .0004,
    # stdev .02 -> 2
    assert sharpe([D("0.02"), D("0.04"), D("0.06")]) == D(2)
    # returns .1 .3: mean .2, variance (.01 + .01)/1 = .02, stdev sqrt(.02) -> sqrt(2)
    with localcontext(STATS_CONTEXT):
        assert sharpe([D("0.1"), D("0.3")]) == D(2).sqrt()
    # from trades: pnl 2, 4, 6 on capital 100 is the first case
    assert compute_stats(trades("2", "4", "6"), capital=D(1000)).sharpe == D(2)


def test_sharpe_undefined() -> None:
    assert sharpe([]) is None
    assert sharpe([D("0.1")]) is None  # one trade: no sample deviation
    assert sharpe([D("0.1"), D("0.1")]) is None  # zero deviation


def test_profit_factor_without_losses() -> None:
    assert profit_factor(D(10), D(0)) == INFINITY  # profit, no loss: best case
    assert profit_factor(D(0), D(0)) is None  # neither: undefined
    only_wins = compute_stats(trades("10", "0"), capital=D(1000))
    assert only_wins.profit_factor == INFINITY
    assert only_wins.as_json()["profitFactor"] == "inf"
    breakeven = compute_stats(trades("0", "0"), capital=D(1000))
    assert breakeven.profit_factor is None and breakeven.as_json()["profitFactor"] is None
    assert breakeven.win_rate == 0  # two trades, no win
    only_losses = compute_stats(trades("-4"), capital=D(1000))
    assert only_losses.profit_factor == 0


def test_no_trades() -> None:
    stats = compute_stats([], capital=D(1000))
    assert stats.trades == 0
    assert stats.win_rate is None and stats.expectancy is None and stats.sharpe is None
    assert stats.profit_factor is None
    assert stats.max_drawdown == 0 and stats.realized_pnl == 0


def test_drawdown_hand_computed() -> None:
    # 1000 -> 1100 -> 1050 -> 950 -> 1150 -> 850: falls 50, 150 (from 1100), 300 (from 1150)
    dd = max_drawdown(D(1000), [D(100), D(-50), D(-100), D(200), D(-300)])
    assert dd.amount == D(300)
    assert dd.percent.quantize(D("0.0001")) == D("26.0870")  # 300 / 1150
    # the percent maximum can come from another point than the absolute one:
    # 100 -> 50 (50%) -> 1000 -> 900 (100 abs, 10%)
    dd = max_drawdown(D(100), [D(-50), D(950), D(-100)])
    assert (dd.amount, dd.percent) == (D(100), D(50))
    assert max_drawdown(D(1000), [D(10), D(20)]).amount == 0  # only up: none


def test_unrealized_pnl_capital_in_use_and_the_mark_to_market_point() -> None:
    # 2 WETH bought for 200 (avg 100), marked at 90: unrealized -20, 200 in use;
    # equity 1000 -> 980 at the mark: drawdown 20 (2 %)
    position = Position("WETH", "USDC", D(2), D(200))
    stats = compute_stats([], capital=D(1000), positions=[position], marks={position.key: D(90)})
    assert stats.unrealized_pnl == D(-20)
    assert stats.capital_in_use == D(200)
    assert (stats.max_drawdown, stats.max_drawdown_percent) == (D(20), D(2))
    unmarked = compute_stats([], capital=D(1000), positions=[position])
    assert unmarked.unrealized_pnl == 0  # no mark yet: valued at cost


def test_decimal_str() -> None:
    assert decimal_str(None) is None
    assert decimal_str(INFINITY) == "inf"
    assert decimal_str(D("1E+3")) == "1000"
    assert decimal_str(D("-0.00")) == "0"
    assert decimal_str(D("12.3400")) == "12.34"
    assert decimal_str(D(2) / D(3), 6) == "0.666667"


# ---- properties --------------------------------------------------------------------------


@st.composite
def trade_lists(draw: st.DrawFn) -> tuple[Decimal, list[ClosedTrade]]:
    """A spot account: each trade risks at most the current equity and loses at most
    what it risked, so equity never goes below zero."""
    allocation = draw(st.decimals(min_value=1, max_value=1_000_000, places=2))
    equity = allocation
    result = []
    for _ in range(draw(st.integers(min_value=0, max_value=25))):
        if equity <= D("0.01"):
            break
        capital = draw(st.decimals(min_value=D("0.01"), max_value=equity, places=2))
        pnl = draw(st.decimals(min_value=-capital, max_value=capital * 3, places=2))
        result.append(ClosedTrade(pnl=pnl, capital=capital))
        equity += pnl
    return allocation, result


def assert_no_float(stats: TradeStats) -> None:
    for f in dataclasses.fields(stats):
        value = getattr(stats, f.name)
        assert not isinstance(value, float), f.name
        if f.name in {"trades", "wins", "losses", "breakeven", "liquidations"}:
            assert type(value) is int
        else:
            assert value is None or type(value) is Decimal, f.name


@settings(deadline=None, max_examples=150)
@given(trade_lists())
def test_properties(case: tuple[Decimal, list[ClosedTrade]]) -> None:
    allocation, closed = case
    stats = compute_stats(closed, capital=allocation)
    assert_no_float(stats)
    for value in stats.as_json().values():
        assert value is None or isinstance(value, str | int)

    no_losses = all(t.pnl >= 0 for t in closed)
    assert (stats.profit_factor is None or stats.profit_factor.is_infinite()) == no_losses
    if no_losses:
        assert (stats.profit_factor is None) == (stats.gross_profit == 0)

    with localcontext(Context(prec=100)):  # exact for these sizes
        assert stats.realized_pnl == sum((t.pnl for t in closed), D(0))
        curve = [allocation]
        for t in closed:
            curve.append(curve[-1] + t.pnl)
    assert stats.max_drawdown >= 0 and stats.max_drawdown_percent >= 0
    assert stats.max_drawdown <= max(curve)
    assert stats.max_drawdown_percent <= 100
    assert stats.max_drawdown == max(max(curve[: i + 1]) - e for i, e in enumerate(curve))
    if stats.win_rate is not None:
        assert 0 <= stats.win_rate <= 1
    assert stats.wins + stats.losses + stats.breakeven == stats.trades == len(closed)
    assert stats.gross_loss >= 0 and stats.gross_profit >= 0
