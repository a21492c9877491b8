"""The backtest case shared by the runtime, CLI and cluster tests: a small candle file of
the price band module, its spec, and the report computed from it by hand (the price band
rules as docs/backtest.md states them, written out plainly)."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Any

D = Decimal
CTX = localcontext

CLOSES = ["100", "100", "98", "98.3", "100", "97", "95", "94.9", "96", "97", "93", "100", "99"]
T0 = 1767225600  # 2026-01-01T00:00:00Z


def candle_file(closes: list[str] = CLOSES) -> str:
    rows = ["time,open,high,low,close,volume"]
    previous = closes[0]
    for i, close in enumerate(closes):
        hi, lo = max(D(previous), D(close)), min(D(previous), D(close))
        rows.append(f"{T0 + 60 * i},{previous},{hi},{lo},{close},1")
        previous = close
    return "\n".join(rows) + "\n"


BAND_RISK = {
    "maxPositionSize": "500",
    "maxDailyLoss": "500",
    "maxDrawdownPercent": 50,
    "stopLossPercent": 0,
}
BAND_STRATEGY = {
    "base": "WETH",
    "quote": "USDC",
    "orderSize": "100",
    "emaPeriod": 2,
    "bandPercent": 1,
}


def band_spec(backtest: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The price band module backtested over `backtest` (a spec document)."""
    return {
        "type": "dex_trading",
        "mode": "backtest",
        "capital": {"allocation": "1000"},
        "risk": dict(BAND_RISK),
        "strategy": dict(BAND_STRATEGY),
        "backtest": backtest,
        **extra,
    }


# ---- the independent computation -----------------------------------------------------


def by_hand(closes: list[str], *, allocation: D, fee: D, slip: D) -> dict[str, Any]:
    """The price band rules as docs/backtest.md states them, written out plainly."""
    with CTX() as ctx:
        ctx.prec = 60
        alpha = D(2) / D(3)  # EMA period 2
        ema: D | None = None
        holding: tuple[D, D] | None = None  # (quantity, cost incl. fee)
        realized = D(0)
        pnls: list[D] = []
        fees = D(0)
        equities: list[D] = []
        exposed = 0
        for seen, text in enumerate(closes):
            price = D(text)
            if seen >= 2 and ema is not None:
                band = ema * D(1) / 100
                if holding is None and price <= ema - band:
                    qty = (D(100) / price).quantize(D("1E-8"), rounding=ROUND_DOWN)
                    notional = qty * price
                    buy_fee = notional * fee / 10_000
                    exec_price = price * (10_000 + slip) / 10_000
                    got = ((notional - buy_fee) / exec_price).quantize(
                        D("1E-18"), rounding=ROUND_DOWN
                    )
                    holding = (got, got * exec_price + buy_fee)
                    fees += buy_fee
                elif holding is not None and price >= ema:
                    qty, cost = holding
                    exec_price = price * (10_000 - slip) / 10_000
                    gross = qty * exec_price
                    sell_fee = gross * fee / 10_000
                    pnl = gross - sell_fee - cost
                    pnls.append(pnl)
                    realized += pnl
                    fees += sell_fee
                    holding = None
            ema = price if ema is None else ema + alpha * (price - ema)
            equity = allocation + realized
            if holding is not None:
                exposed += 1
                equity += holding[0] * price - holding[1]
            equities.append(equity)
        # the equity curve: returns, drawdown
        returns, previous, peak = [], allocation, allocation
        max_dd = max_dd_pct = D(0)
        for equity in equities:
            returns.append(equity / previous - 1)
            previous = equity
            peak = max(peak, equity)
            max_dd = max(max_dd, peak - equity)
            max_dd_pct = max(max_dd_pct, (peak - equity) / peak * 100)
        n = len(returns)
        mean = sum(returns, D(0)) / n
        sd = (sum(((r - mean) ** 2 for r in returns), D(0)) / (n - 1)).sqrt()
        down = (sum((min(r, D(0)) ** 2 for r in returns), D(0)) / n).sqrt()
        year = D(525_600).sqrt()  # 1-minute candles, 365 days
        wins = [p for p in pnls if p > 0]
        losses = [p for p in pnls if p < 0]
        return {
            "trades": len(pnls),
            "wins": len(wins),
            "losses": len(losses),
            "winRate": D(len(wins)) / len(pnls) if pnls else None,
            "realizedPnl": realized,
            "profitFactor": (
                sum(wins, D(0)) / -sum(losses, D(0)) if losses else ("inf" if wins else None)
            ),
            "maxDrawdown": max_dd,
            "maxDrawdownPercent": max_dd_pct,
            "sharpe": mean / sd * year,
            "sortino": mean / down * year,
            "exposurePercent": D(exposed) / n * 100,
            "exposureSeconds": exposed * 60,
            "bestTrade": max(pnls) if pnls else None,
            "worstTrade": min(pnls) if pnls else None,
            "fees": fees,
            "endingEquity": equities[-1],
            "candles": n,
        }


def shown(value: Any) -> Any:
    """As a report shows a figure: 6 places, no trailing zeros."""
    if not isinstance(value, D):
        return value
    with CTX() as ctx:
        ctx.prec = 60
        text = format(value.quantize(D("1E-6")), "f")
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text
