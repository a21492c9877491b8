"""Backtests: the price band module over a small candle file, against a computation by
hand in this test; look-ahead refused; the candle sources; the termination message."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from module_runtime.backtest import termination
from module_runtime.backtest.candles import CandleError, read_csv, synthetic, timeframe_seconds
from module_runtime.backtest.replay import LookAheadError
from module_runtime.backtest.runner import Backtest, BacktestFailed, BacktestUnsupported
from module_runtime.backtest.sources import load_candles
from module_runtime.modules.price_band import PriceBandModule
from tests.backtest_case import CLOSES, T0, band_spec, by_hand, candle_file, shown
from tradeplane_operator.api.models import BacktestReport, BacktestSpec, TradingModuleSpec

D = Decimal


def module_spec(**backtest: Any) -> TradingModuleSpec:
    return TradingModuleSpec.model_validate(
        band_spec({"source": "csv", "path": "/x.csv", "feeBps": 30, "slippageBps": 10} | backtest)
    )


async def test_report_equals_a_computation_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "candles.csv"
    path.write_text(candle_file())
    spec = module_spec(path=str(path))
    assert spec.backtest is not None
    candles = await load_candles(spec.backtest, base="WETH", strategy=spec.strategy)
    report = await Backtest(spec, candles, name="bt", namespace="ns").run()
    expected = by_hand(CLOSES, allocation=D(1000), fee=D(30), slip=D(10))
    assert expected["trades"] >= 2 and expected["wins"] >= 1 and expected["losses"] >= 1
    got = report.model_dump(mode="json", by_alias=True)
    assert {k: got[k] for k in expected} == {k: shown(v) for k, v in expected.items()}
    assert got["dataStart"] == "2026-01-01T00:00:00Z"
    assert got["dataEnd"] == "2026-01-01T00:13:00Z"  # the last candle's close
    assert got["startingBalance"] == "1000"
    assert "sqrt(525600)" in got["annualization"]


async def test_start_end_and_starting_balance(tmp_path: Path) -> None:
    path = tmp_path / "candles.csv"
    path.write_text(candle_file())
    spec = module_spec(
        path=str(path),
        start="2026-01-01T00:02:00Z",
        end="2026-01-01T00:10:00Z",
        startingBalance="400",
    )
    assert spec.backtest is not None
    candles = await load_candles(spec.backtest, base="WETH", strategy=spec.strategy)
    report = await Backtest(spec, candles, name="bt", namespace="ns").run()
    assert report.candles == 8
    assert (report.data_start, report.data_end) == ("2026-01-01T00:02:00Z", "2026-01-01T00:10:00Z")
    assert report.starting_balance == "400"
    expected = by_hand(CLOSES[2:10], allocation=D(400), fee=D(30), slip=D(10))
    assert report.realized_pnl == shown(expected["realizedPnl"])


# ---- no look-ahead ---------------------------------------------------------------------


class PeekingModule(PriceBandModule):
    """Trades on the *next* candle's close: a strategy that would look brilliant."""

    async def tick(self) -> None:
        history = self.market.candles("WETH", "USDC")  # type: ignore[attr-defined]
        upcoming = history[len(history)]  # the candle after the latest closed one
        assert upcoming.close > 0


class FuturePriceModule(PriceBandModule):
    async def tick(self) -> None:
        later = self.clock.now().replace(year=self.clock.now().year + 1)
        await self.market.price("WETH", "USDC")
        self.market.price_at("WETH", "USDC", later)  # type: ignore[attr-defined]


class HistoryModule(PriceBandModule):
    """Reads only what has closed: allowed."""

    closes: list[Decimal]

    async def tick(self) -> None:
        history = self.market.candles("WETH", "USDC")  # type: ignore[attr-defined]
        latest = history[-1]
        assert latest.close == await self.market.price("WETH", "USDC")
        assert len(history[0 : len(history)]) == len(history)
        self.closes = [c.close for c in history]
        now = self.clock.now()
        assert self.market.price_at("WETH", "USDC", now) == latest.close  # type: ignore[attr-defined]


def csv_series() -> Any:
    return read_csv(candle_file(), timeframe=60)


@pytest.mark.parametrize("cls", [PeekingModule, FuturePriceModule])
async def test_a_strategy_that_peeks_at_the_next_candle_fails(cls: type[PriceBandModule]) -> None:
    backtest = Backtest(module_spec(), csv_series(), name="bt", namespace="ns", module_class=cls)
    with pytest.raises(BacktestFailed, match="LookAheadError") as raised:
        await backtest.run()
    assert "candle 0" in str(raised.value)
    assert backtest.processed == 0


async def test_history_up_to_the_clock_is_allowed() -> None:
    backtest = Backtest(
        module_spec(), csv_series(), name="bt", namespace="ns", module_class=HistoryModule
    )
    report = await backtest.run()
    assert report.candles == len(CLOSES)
    module = backtest.host.module
    assert isinstance(module, HistoryModule)
    assert [str(c) for c in module.closes] == CLOSES


def test_the_view_refuses_the_future_directly() -> None:
    from module_runtime.backtest.replay import ReplayClock, ReplayMarket

    series = csv_series()
    from datetime import UTC, datetime

    market = ReplayMarket(series, "WETH", "USDC", ReplayClock(datetime.fromtimestamp(T0, UTC)))
    market.advance()
    market.advance()
    view = market.candles("WETH", "USDC")
    assert len(view) == 2 and view[-1].close == D("100")
    with pytest.raises(LookAheadError):
        view[2]
    with pytest.raises(LookAheadError):
        view[0:3]


# ---- sources ---------------------------------------------------------------------------


def test_csv_errors_name_the_line() -> None:
    with pytest.raises(CandleError, match=r"line 3: .*not after"):
        read_csv("time,open,high,low,close\n60,1,1,1,1\n60,1,1,1,1\n", timeframe=60)
    with pytest.raises(CandleError, match=r"line 2: .*'x' is not a decimal"):
        read_csv("time,open,high,low,close\n60,x,1,1,1\n", timeframe=60)
    with pytest.raises(CandleError, match="header lacks close"):
        read_csv("time,open,high,low\n", timeframe=60)
    with pytest.raises(CandleError, match="low <= open"):
        read_csv("time,open,high,low,close\n2026-01-01T00:00:00Z,5,4,1,2\n", timeframe=60)
    assert timeframe_seconds("4h") == 14_400


def test_synthetic_is_seeded_and_exact() -> None:
    a = synthetic(
        start=T0, timeframe=60, count=500, seed=7, start_price=D(3000), volatility_percent=D(1)
    )
    b = synthetic(
        start=T0, timeframe=60, count=500, seed=7, start_price=D(3000), volatility_percent=D(1)
    )
    assert a.closes == b.closes and len(a) == 500
    assert all(isinstance(c, Decimal) for c in a.closes)
    assert a.opens[1:] == a.closes[:-1]


def test_a_module_without_one_pair_cannot_be_backtested() -> None:
    spec = TradingModuleSpec.model_validate(
        {
            "type": "liquidity_provision",
            "mode": "backtest",
            "capital": {"allocation": "1000"},
            "risk": {"maxPositionSize": "500", "maxDailyLoss": "500"},
            "strategy": {"base": "WETH", "quote": "USDC", "amount": "100"},
        }
    )
    with pytest.raises((BacktestUnsupported, ValueError)):
        Backtest(spec, csv_series(), name="bt", namespace="ns")


# ---- the report leaves the pod ---------------------------------------------------------


async def test_termination_message_is_compact_json(tmp_path: Path) -> None:
    backtest = Backtest(module_spec(), csv_series(), name="bt", namespace="ns")
    report = await backtest.run()
    target = tmp_path / "termination-log"
    termination.write(report, {termination.ENV_TERMINATION_MESSAGE_PATH: str(target)})
    text = target.read_text()
    assert len(text.encode()) < 4096
    assert BacktestReport.model_validate(json.loads(text)["backtest"]) == report
    assert BacktestSpec().source == "synthetic"
