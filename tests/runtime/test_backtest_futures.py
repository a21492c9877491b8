"""A perpetual-futures backtest: the module's own paper broker over replayed candles,
with its taker fee, funding at every funding time the candles cross, and the report's
fees, funding and PnL equal to what its ledger booked."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, localcontext
from pathlib import Path

import yaml

from module_runtime.backtest.candles import synthetic
from module_runtime.backtest.runner import Backtest
from module_runtime.ledger import InMemoryLedger
from module_runtime.positions import ACCOUNTING_CONTEXT, Market, Position, PositionSide
from module_runtime.risk import RiskState
from tradeplane_operator.api.models import TradingModuleSpec

ROOT = Path(__file__).resolve().parents[2]
T0 = 1767225600  # 2026-01-01T00:00:00Z
D = Decimal


def futures_backtest_spec() -> TradingModuleSpec:
    doc = yaml.safe_load((ROOT / "config/samples/futures_trading.yaml").read_text())["spec"]
    doc["mode"] = "backtest"
    doc["backtest"] = {"source": "synthetic", "timeframe": "1h"}
    return TradingModuleSpec.model_validate(doc)


async def test_futures_backtest_books_fees_and_funding_as_its_ledger_did() -> None:
    spec = futures_backtest_spec()
    candles = synthetic(
        start=T0, timeframe=3600, count=600, seed=7, start_price=D(3000), volatility_percent=D(1)
    )
    bt = Backtest(spec, candles, name="f", namespace="ns")
    report = await bt.run()

    ledger = bt.host.ledger
    assert isinstance(ledger, InMemoryLedger)
    fills = ledger.fills()
    events = await ledger.events()
    trades = await ledger.closed_trades()
    funding = [e for e in events if e.kind == "funding"]
    # The sample's band trades both ways over 25 days of hourly candles, and holds
    # positions across 8-hourly funding times.
    assert report.trades == len(trades) > 10 and funding
    with localcontext(ACCOUNTING_CONTEXT):
        fees = sum((f.fee for f in fills), D(0))
        # Taker fee 5 bps of the filled notional, as the strategy says.
        assert fees == sum((f.quantity * f.price * D(5) / D(10000) for f in fills), D(0))
        paid = sum((e.amount for e in funding), D(0))
        realized = sum((t.pnl for t in trades), D(0)) + paid
    assert D(report.fees) == fees.quantize(D("0.000001"))
    assert D(report.funding) == paid.quantize(D("0.000001")) != 0
    assert D(report.realized_pnl) == realized.quantize(D("0.000001"))
    # Every funding time the candles crossed with a position open is booked once.
    assert len({e.event_id for e in funding}) == len(funding)
    assert all((int(e.at.timestamp()) - T0) % (8 * 3600) == 0 for e in funding)
    assert report.liquidations == sum(1 for e in events if e.kind == "liquidation")
    assert D(report.ending_equity) == (
        D(report.starting_balance) + D(report.realized_pnl) + D(report.unrealized_pnl)
    )


def test_equity_counts_a_short_perpetual_the_right_way_round() -> None:
    s = RiskState(allocation=D(10000), day=date(2026, 1, 1), equity_peak=D(10000))
    short = Position(
        "BTC",
        "USDT",
        D(1),
        D(50000),
        side=PositionSide.SHORT,
        market=Market.PERP,
        leverage=D(10),
        margin=D(5000),
        fees=D(25),
    )
    s.positions = {short.key: short}
    s.marks = {short.key: D(49000)}
    # Short 1 BTC at 50,000, mark 49,000: +1,000, less the 25 of entry fees.
    assert s.equity == D(10000) + D(975) == D(10000) + s.unrealized_pnl
