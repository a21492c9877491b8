"""Each pre-trade check accepts one order and rejects another, with its reason code."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from module_runtime.orders import Order
from module_runtime.positions import ClosedTrade, Position
from module_runtime.risk import (
    HaltReason,
    RejectReason,
    RiskLimits,
    RiskState,
    breach,
    check,
    stop_loss_hit,
)
from tradeplane_operator.api.models import CapitalSpec, RiskSpec

from .conftest import T0, buy, make_limits, sell

D = Decimal
ETH = ("WETH", "USDC")
BTC = ("WBTC", "USDC")


def state(limits: RiskLimits | None = None, **kw: object) -> RiskState:
    s = RiskState.initial(limits or make_limits(), T0)
    for key, value in kw.items():
        setattr(s, key, value)
    return s


def position(base: str, quantity: str, cost: str) -> Position:
    return Position(base, "USDC", D(quantity), D(cost))


def reason(order_state: RiskState, order: Order, limits: RiskLimits | None = None) -> str | None:
    decision = check(order, order_state, limits or make_limits())
    assert decision.accepted == (decision.reason is None)
    return None if decision.reason is None else decision.reason.value


def test_limits_from_spec() -> None:
    risk = RiskSpec.model_validate({"maxPositionSize": "2000", "maxDailyLoss": "500"})
    limits = RiskLimits.from_spec(risk, CapitalSpec(allocation=D(10_000)))
    assert limits == make_limits(max_open_positions=1)


def test_baseline_accepts() -> None:
    assert reason(state(), buy("1", "1000")) is None


def test_invalid_order() -> None:
    assert reason(state(), buy("0", "1000")) == RejectReason.INVALID_ORDER


def test_max_position_size_order_notional() -> None:
    assert reason(state(), buy("2", "1000")) is None  # 2000 == limit
    assert reason(state(), buy("2.5", "1000")) == RejectReason.MAX_POSITION_SIZE


def test_max_position_size_resulting_position() -> None:
    s = state(positions={ETH: position("WETH", "1.5", "1500")})
    assert reason(s, buy("0.4", "1000")) is None  # 1.5 x 1000 + 400 = 1900
    assert reason(s, buy("0.6", "1000")) == RejectReason.MAX_POSITION_SIZE  # 2100


def test_max_open_positions() -> None:
    s = state(positions={ETH: position("WETH", "1", "1000"), BTC: position("WBTC", "0.01", "500")})
    assert reason(s, buy("0.5", "1000")) is None  # adds to an open position
    assert reason(s, buy("1", "100", base="SOL")) == RejectReason.MAX_OPEN_POSITIONS


def test_max_leverage_of_the_order() -> None:
    assert reason(state(), buy("1", "1000", leverage=D(1))) is None
    assert reason(state(), buy("1", "1000", leverage=D(2))) == RejectReason.MAX_LEVERAGE


def test_max_leverage_of_the_account() -> None:
    # equity 10000 - 3000 = 7000 (old loss, peak reset), 5000 exposed in WBTC
    limits = make_limits(max_position_size=D(10_000), max_daily_loss=D(10_000))
    s = state(
        limits,
        realized_pnl=D(-3000),
        equity_peak=D(7000),
        positions={BTC: position("WBTC", "0.1", "5000")},
        marks={BTC: D(50_000)},
    )
    assert reason(s, buy("1.5", "1000"), limits) is None  # 6500 <= 1 x 7000
    assert reason(s, buy("2.5", "1000"), limits) == RejectReason.MAX_LEVERAGE  # 7500


def test_available_capital() -> None:
    limits = make_limits(max_position_size=D(10_000), max_open_positions=5)
    s = state(limits, positions={BTC: position("WBTC", "0.18", "9000")})
    assert reason(s, buy("1", "1000"), limits) is None  # 10000 - 9000 = 1000 left
    assert reason(s, buy("1.5", "1000"), limits) == RejectReason.INSUFFICIENT_CAPITAL


def test_available_capital_counts_buys_with_unknown_outcome() -> None:
    limits = make_limits(max_position_size=D(10_000), max_open_positions=5)
    s = state(limits, pending=[buy("9", "1000", base="WBTC")])
    assert reason(s, buy("1", "1000"), limits) is None
    assert reason(s, buy("1.5", "1000"), limits) == RejectReason.INSUFFICIENT_CAPITAL


def test_remaining_daily_loss_budget() -> None:
    # used up: realized today -500 of 500
    assert reason(state(realized_pnl_today=D(-500)), buy("0.1", "1000")) == "daily_loss_limit"
    # 20 left; with a 5 % stop, 400 risks 20 (fits) and 1000 risks 50 (does not)
    s = state(realized_pnl_today=D(-480), realized_pnl=D(-480))
    assert reason(s, buy("0.4", "1000")) is None
    assert reason(s, buy("1", "1000")) == RejectReason.DAILY_LOSS_LIMIT
    # without a stop loss the whole notional is at risk
    no_stop = make_limits(stop_loss_percent=D(0))
    assert reason(s, buy("0.02", "1000"), no_stop) is None
    assert reason(s, buy("0.03", "1000"), no_stop) == RejectReason.DAILY_LOSS_LIMIT
    # profit made today extends the budget
    assert reason(state(realized_pnl_today=D(100)), buy("2", "1000")) is None


def test_max_drawdown_from_the_equity_peak() -> None:
    assert reason(state(equity_peak=D(12_000)), buy("1", "1000")) is None  # 16.7 %
    s = state(equity_peak=D(12_500))  # equity 10000: 20 %
    assert reason(s, buy("1", "1000")) == RejectReason.MAX_DRAWDOWN


def test_paused_blocks_new_exposure_but_not_reductions() -> None:
    s = state(paused=True, positions={ETH: position("WETH", "1", "1000")})
    assert reason(s, buy("0.1", "1000")) == RejectReason.PAUSED
    assert reason(s, sell("1", "900", reduces_position=True)) is None
    assert reason(state(), buy("0.1", "1000")) is None


def test_stopping_blocks_new_exposure() -> None:
    s = state(stopping=True, positions={ETH: position("WETH", "1", "1000")})
    assert reason(s, buy("0.1", "1000")) == RejectReason.STOPPING
    assert reason(s, sell("1", "900")) is None


def test_halted_blocks_everything_until_resume() -> None:
    s = state(positions={ETH: position("WETH", "1", "1000")})
    s.halt_now(HaltReason.MAX_DAILY_LOSS.value, "test", T0)
    assert reason(s, buy("0.1", "1000")) == RejectReason.HALTED
    assert reason(s, sell("1", "900", reduces_position=True)) == RejectReason.HALTED
    s.resume()
    assert reason(s, buy("0.1", "1000")) is None
    assert reason(s, sell("1", "900", reduces_position=True)) is None


def test_sells_must_reduce_a_long() -> None:
    assert reason(state(), sell("1", "1000")) == RejectReason.SHORT_NOT_SUPPORTED
    s = state(positions={ETH: position("WETH", "1", "1000")})
    assert reason(s, sell("1", "1000")) is None
    assert reason(s, sell("1.1", "1000")) == RejectReason.SHORT_NOT_SUPPORTED
    # 0.6 already being sold: only 0.4 left to sell
    s.pending = [sell("0.6", "1000")]
    assert reason(s, sell("0.4", "1000")) is None
    assert reason(s, sell("0.5", "1000")) == RejectReason.SHORT_NOT_SUPPORTED


def test_a_buy_claiming_to_reduce_is_refused() -> None:
    s = state(positions={ETH: position("WETH", "1", "1000")})
    assert reason(s, buy("0.1", "1000", reduces_position=True)) == RejectReason.NOT_REDUCING


def test_reductions_pass_when_every_exposure_limit_is_reached() -> None:
    limits = make_limits(max_open_positions=1)
    s = state(
        limits,
        positions={ETH: position("WETH", "3", "3000")},  # above max position size
        realized_pnl_today=D(-499),
        equity_peak=D(12_500),  # 20 % drawdown
        paused=True,
    )
    assert reason(s, buy("0.01", "1000"), limits) is not None
    assert reason(s, sell("3", "1000", reduces_position=True), limits) is None


def test_breach_on_daily_loss() -> None:
    limits = make_limits()
    assert breach(state(realized_pnl_today=D(-499)), limits) is None
    found = breach(state(realized_pnl_today=D(-500)), limits)
    assert found is not None and found[0] is HaltReason.MAX_DAILY_LOSS


def test_breach_on_drawdown() -> None:
    limits = make_limits()
    assert breach(state(equity_peak=D(12_000)), limits) is None
    found = breach(state(equity_peak=D(12_500)), limits)
    assert found is not None and found[0] is HaltReason.MAX_DRAWDOWN


def test_daily_budget_follows_the_utc_day() -> None:
    s = state()
    loss = ClosedTrade(pnl=D(-300), capital=D(1000), closed_at=T0)
    s.sync(positions=[], trades=[loss], pending=[], now=T0)
    assert (s.realized_pnl, s.realized_pnl_today) == (D(-300), D(-300))
    tomorrow = T0 + timedelta(days=1)
    s.roll_day(tomorrow)
    assert s.realized_pnl_today == 0 and s.day == tomorrow.date()
    s.sync(positions=[], trades=[loss], pending=[], now=tomorrow)
    assert (s.realized_pnl, s.realized_pnl_today) == (D(-300), D(0))


def test_stop_loss() -> None:
    p = position("WETH", "2", "2000")  # avg cost 1000
    assert not stop_loss_hit(p, D("950.01"), D(5))
    assert stop_loss_hit(p, D(950), D(5))
    assert not stop_loss_hit(p, D(1), D(0))  # 0 % disables it
