"""Backtest speed: a year of 1-minute candles (525,600) through the price band module.

Printed beside a baseline measured in the same run on the same candles: a plain pandas
loop (`DataFrame.itertuples`, floats) doing the same EMA band logic - enter
`bandPercent` below the EMA of earlier closes, exit at the EMA, fees and slippage on
both fills. Two backtest figures:

- order-free: a band no price reaches, so every candle is the whole per-candle path
  (replay, stop-loss scan, mark, strategy, equity point) without an order; target
  >= 100,000 candles/s;
- overall: a band that trades, every order through risk checks, ledger and paper broker
  in Decimal; target within 3x of the pandas loop's time.

    python -m bench backtest
"""

from __future__ import annotations

import asyncio
import gc
import time
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Any

from module_runtime.backtest.candles import CandleSeries, synthetic
from module_runtime.backtest.runner import Backtest
from tradeplane_operator.api.models import BacktestReport, TradingModuleSpec

CANDLES = 525_600  # one year of 1-minute candles
START = 1767225600  # 2026-01-01T00:00:00Z
EMA_PERIOD = 20
TRADING_BAND = "0.6"
QUIET_BAND = "60"  # never reached: no order
FEE_BPS = 30
SLIPPAGE_BPS = 10


def series(count: int = CANDLES) -> CandleSeries:
    return synthetic(
        start=START,
        timeframe=60,
        count=count,
        seed=42,
        start_price=Decimal(3000),
        volatility_percent=Decimal("0.3"),
    )


def spec(band: str) -> TradingModuleSpec:
    return TradingModuleSpec.model_validate(
        {
            "type": "dex_trading",
            "mode": "backtest",
            "capital": {"allocation": "100000"},
            "risk": {
                "maxPositionSize": "5000",
                "maxDailyLoss": "100000",
                "maxDrawdownPercent": 100,
                "stopLossPercent": 0,
            },
            "strategy": {
                "base": "WETH",
                "quote": "USDC",
                "orderSize": "1000",
                "emaPeriod": EMA_PERIOD,
                "bandPercent": band,
            },
            "backtest": {"feeBps": FEE_BPS, "slippageBps": SLIPPAGE_BPS},
        }
    )


def run_backtest(candles: CandleSeries, band: str) -> tuple[float, BacktestReport]:
    backtest = Backtest(spec(band), candles, name="bench", namespace="bench")
    gc.collect()
    started = time.perf_counter()
    report = asyncio.run(backtest.run())
    return time.perf_counter() - started, report


def pandas_loop(candles: CandleSeries, band: float) -> tuple[float, dict[str, Any]]:
    """The same EMA band logic as a pandas user writes it: a loop over the rows."""
    import pandas as pd  # type: ignore[import-untyped]

    frame = pd.DataFrame(
        {
            "time": candles.times,
            "open": [float(p) for p in candles.opens],
            "high": [float(p) for p in candles.highs],
            "low": [float(p) for p in candles.lows],
            "close": [float(p) for p in candles.closes],
        }
    )
    gc.collect()
    started = time.perf_counter()
    alpha = 2 / (EMA_PERIOD + 1)
    fee, slip = FEE_BPS / 10_000, SLIPPAGE_BPS / 10_000
    ema: float | None = None
    qty = cost = 0.0
    realized = 0.0
    trades = 0
    peak = equity = 100_000.0
    worst = 0.0
    for seen, row in enumerate(frame.itertuples(index=False)):
        price = row.close
        if seen >= EMA_PERIOD and ema is not None:
            width = ema * band / 100
            if qty == 0 and price <= ema - width:
                want = 1000 / price
                notional = want * price
                qty = (notional * (1 - fee)) / (price * (1 + slip))
                cost = notional
            elif qty > 0 and price >= ema:
                proceeds = qty * price * (1 - slip) * (1 - fee)
                realized += proceeds - cost
                trades += 1
                qty = cost = 0.0
        ema = price if ema is None else ema + alpha * (price - ema)
        equity = 100_000.0 + realized + (qty * price - cost if qty else 0.0)
        peak = max(peak, equity)
        worst = max(worst, peak - equity)
    elapsed = time.perf_counter() - started
    return elapsed, {"trades": trades, "realizedPnl": realized, "maxDrawdown": worst}


def pandas_decimal_loop(candles: CandleSeries, band: Decimal) -> tuple[float, dict[str, Any]]:
    """The same loop over the same Decimal closes (object column), in the strategy's
    60-digit context: the cost of the logic itself, without the order path around it."""
    import pandas as pd

    from module_runtime.positions import ACCOUNTING_CONTEXT

    frame = pd.DataFrame(
        {
            "time": candles.times,
            "open": candles.opens,
            "high": candles.highs,
            "low": candles.lows,
            "close": candles.closes,
        }
    )
    gc.collect()
    started = time.perf_counter()
    with localcontext(ACCOUNTING_CONTEXT):
        alpha = Decimal(2) / (EMA_PERIOD + 1)
        fee = Decimal(FEE_BPS) / 10_000
        slip = Decimal(SLIPPAGE_BPS) / 10_000
        step = Decimal("1E-8")
        ema: Decimal | None = None
        qty = cost = realized = Decimal(0)
        trades = 0
        peak = equity = Decimal(100_000)
        worst = Decimal(0)
        for seen, row in enumerate(frame.itertuples(index=False)):
            price = row.close
            if seen >= EMA_PERIOD and ema is not None:
                width = ema * band / 100
                if not qty and price <= ema - width:
                    notional = (1000 / price).quantize(step, rounding=ROUND_DOWN) * price
                    qty = (notional * (1 - fee)) / (price * (1 + slip))
                    cost = notional
                elif qty and price >= ema:
                    realized += qty * price * (1 - slip) * (1 - fee) - cost
                    trades += 1
                    qty = cost = Decimal(0)
            ema = price if ema is None else ema + alpha * (price - ema)
            equity = 100_000 + realized + (qty * price - cost if qty else 0)
            if equity > peak:
                peak = equity
            elif peak - equity > worst:
                worst = peak - equity
    elapsed = time.perf_counter() - started
    return elapsed, {"trades": trades, "realizedPnl": realized, "maxDrawdown": worst}


def main(count: int = CANDLES) -> None:
    candles = series(count)
    n = len(candles)
    base_s, base = pandas_loop(candles, float(TRADING_BAND))
    dec_s, dec = pandas_decimal_loop(candles, Decimal(TRADING_BAND))
    quiet_s, quiet = run_backtest(candles, QUIET_BAND)
    trade_s, trading = run_backtest(candles, TRADING_BAND)
    rows = [
        ("pandas itertuples loop, floats (baseline)", base_s, base["trades"]),
        ("pandas itertuples loop, Decimal (baseline)", dec_s, dec["trades"]),
        ("backtest, order-free (band never reached)", quiet_s, quiet.trades),
        ("backtest, trading (the whole order path)", trade_s, trading.trades),
    ]
    print(f"\nbacktest: {n:,} 1-minute candles, price band EMA {EMA_PERIOD}, same run")
    print(f"{'run':44} {'seconds':>8} {'candles/s':>11} {'x floats':>9} {'x Decimal':>9} trades")
    for name, seconds, trades in rows:
        print(
            f"{name:44} {seconds:>8.2f} {n / seconds:>11,.0f} {seconds / base_s:>9.2f} "
            f"{seconds / dec_s:>9.2f} {trades}"
        )
    print(
        f"targets: order-free >= 100,000 candles/s: {n / quiet_s:,.0f}; trading within 3x "
        f"of the pandas loop: {trade_s / base_s:.2f}x (floats), {trade_s / dec_s:.2f}x (Decimal)"
    )
    print(
        f"same logic: pandas {base['trades']} trades, PnL {base['realizedPnl']:.2f}; "
        f"Decimal pandas {dec['trades']}, PnL {dec['realizedPnl']:.6f}; "
        f"backtest {trading.trades}, PnL {trading.realized_pnl}"
    )


if __name__ == "__main__":
    main()
