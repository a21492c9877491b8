"""The backtest loop: the module's own code, candle by candle, through the one order path.

    for each candle:  clock := its close time -> module.step() (stop losses, then tick)
                      -> orders go risk -> ledger -> PaperBroker (fees, slippage) -> ledger
                      -> equity at the close (for drawdown, Sharpe, Sortino, exposure)

The module is built by `ModuleHost` exactly as in paper mode; only the clock
(`ReplayClock`), the market data (`ReplayMarket`) and the broker's fee and slippage
(`spec.backtest`) differ. A module with a paper broker of its own keeps it: perpetual
futures (`futures_trading`) fill at the candle's mark with the strategy's taker fee and
slippage, pay or receive funding at every funding time the candles cross, and are
liquidated when a mark crosses the liquidation price; the report adds funding and
liquidations. The runner drives `module.step()` itself instead of the timed
`module.run()` loop: there is nothing to wait for, so it runs as fast as the data allows.
A tick that raises (a look-ahead, a bug) fails the whole backtest: a result computed over
skipped candles would be a lie.

Report definitions (docs/backtest.md): trades, wins, win rate, gross profit and loss,
profit factor and realized PnL from the ledger's closed trades (`trade_stats`); the
equity curve is the mark-to-market equity at every candle close, starting from the
starting balance; max drawdown (absolute and percent of the running peak) is taken on it;
Sharpe and Sortino are computed on its per-candle returns and annualized by
sqrt(periods per year), 365-day year (crypto trades every day): Sharpe = mean / sample
standard deviation, Sortino = mean / downside deviation (root mean square of the negative
returns over all returns, target 0); exposure is the share of candles that closed with a
position open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from module_runtime.backtest.candles import CandleSeries, iso
from module_runtime.backtest.replay import ReplayClock, ReplayMarket
from module_runtime.host import ModuleHost
from module_runtime.ledger import InMemoryLedger
from module_runtime.modules.base import BaseModule
from module_runtime.modules.registry import module_class_for
from module_runtime.positions import ACCOUNTING_CONTEXT
from module_runtime.trade_stats import decimal_str
from tradeplane_operator.api.models import (
    BacktestReport,
    BacktestSpec,
    MarketDataSource,
    MarketDataSpec,
    TradingModuleSpec,
)

log = logging.getLogger(__name__)

YEAR_SECONDS = 365 * 86_400
MONEY_PLACES = 6
RATIO_PLACES = 6
ZERO = Decimal(0)
HUNDRED = Decimal(100)


class BacktestFailed(RuntimeError):
    """The backtest could not run to its end (a tick raised, e.g. on a look-ahead)."""


class BacktestUnsupported(ValueError):
    """This module cannot be backtested from one pair's candles."""


@dataclass
class _Curve:
    """Online statistics of the per-candle equity curve (no list of 525,600 points)."""

    peak: Decimal
    previous: Decimal
    max_drawdown: Decimal = ZERO
    max_drawdown_percent: Decimal = ZERO
    n: int = 0
    total: Decimal = ZERO  # sum of returns
    squares: Decimal = ZERO  # sum of squared returns
    downside: Decimal = ZERO  # sum of squared negative returns

    def point(self, equity: Decimal) -> None:
        """One candle's closing equity (call inside ACCOUNTING_CONTEXT)."""
        self.n += 1
        if equity == self.previous:
            return  # a zero return: counted in n, adds nothing to the sums
        r = equity / self.previous - 1
        self.total += r
        self.squares += r * r
        if r < 0:
            self.downside += r * r
        self.previous = equity
        if equity > self.peak:
            self.peak = equity
            return
        fall = self.peak - equity
        if fall > self.max_drawdown:
            self.max_drawdown = fall
        percent = fall / self.peak * HUNDRED
        if percent > self.max_drawdown_percent:
            self.max_drawdown_percent = percent

    def sharpe(self, periods: Decimal) -> Decimal | None:
        if self.n < 2:
            return None
        mean = self.total / self.n
        variance = (self.squares - self.n * mean * mean) / (self.n - 1)
        if variance <= 0:
            return None
        return mean / variance.sqrt() * periods.sqrt()

    def sortino(self, periods: Decimal) -> Decimal | None:
        if self.n < 2 or self.downside == 0:
            return None
        mean = self.total / self.n
        return mean / (self.downside / self.n).sqrt() * periods.sqrt()


def _money(value: Decimal | None) -> str | None:
    return decimal_str(value, MONEY_PLACES)


def _ratio(value: Decimal | None) -> str | None:
    return decimal_str(value, RATIO_PLACES)


def pair_of(module_class: type[BaseModule[Any]], spec: TradingModuleSpec) -> tuple[str, str]:
    params = module_class.parse_params(spec.strategy)
    base, quote = getattr(params, "base", None), getattr(params, "quote", None)
    if not isinstance(base, str) or not isinstance(quote, str):
        raise BacktestUnsupported(
            f"spec.mode backtest: module {module_class.__name__} trades no single "
            "strategy.base/strategy.quote pair, so it cannot be replayed from candles"
        )
    return base, quote


def run_spec(spec: TradingModuleSpec) -> TradingModuleSpec:
    """The spec the module runs with: capital = the starting balance, prices from the
    replay (a module that reads pools itself is told the market is not a pool)."""
    bt = spec.backtest or BacktestSpec()
    capital = spec.capital.model_copy(
        update={"allocation": bt.starting_balance or spec.capital.allocation}
    )
    return spec.model_copy(
        update={
            "capital": capital,
            "market_data": MarketDataSpec(source=MarketDataSource.SYNTHETIC),
        }
    )


class Backtest:
    """One backtest of `spec` over `candles`; `host` is served while it runs."""

    def __init__(
        self,
        spec: TradingModuleSpec,
        candles: CandleSeries,
        *,
        name: str,
        namespace: str,
        module_class: type[BaseModule[Any]] | None = None,
    ) -> None:
        if len(candles) == 0:
            raise BacktestFailed("no candles in the backtest's range")
        cls = module_class or module_class_for(spec)
        self.spec = run_spec(spec)
        self.backtest = spec.backtest or BacktestSpec()
        self.candles = candles
        base, quote = pair_of(cls, self.spec)
        first = candles.times[0]
        self.clock = ReplayClock(datetime.fromtimestamp(first, UTC))
        self.market = ReplayMarket(candles, base, quote, self.clock)
        self.host = ModuleHost(
            self.spec,
            name=name,
            namespace=namespace,
            market=self.market,
            clock=self.clock,
            module_class=cls,
            fee_bps=self.backtest.fee_bps,
            slippage_bps=self.backtest.slippage_bps,
        )
        self.processed = 0

    async def run(self, *, yield_every: int = 4096) -> BacktestReport:
        """Replay every candle, then stop the module (ledger flushed) and report."""
        started = time.perf_counter()
        module, path, market = self.host.module, self.host.order_path, self.market
        allocation = path.limits.allocation
        curve = _Curve(peak=allocation, previous=allocation)
        exposed = 0
        await module.start()
        step, point = module.step, curve.point
        state = path.state
        flat: Decimal | None = state.realized_pnl  # realized PnL at the last flat point
        try:
            with localcontext(ACCOUNTING_CONTEXT):
                for i in range(len(self.candles)):
                    market.advance()
                    await step()
                    if module.consecutive_errors:
                        when = iso(self.candles.times[i] + self.candles.timeframe)
                        raise BacktestFailed(
                            f"tick at candle {i} ({when}) failed: {module.last_error}"
                        )
                    if state.positions:
                        exposed += 1
                        point(state.equity)
                        flat = None  # the next flat candle takes a point again
                    elif state.realized_pnl is not flat:  # a trade closed since
                        flat = state.realized_pnl
                        point(allocation + flat)
                    else:
                        curve.n += 1  # flat, nothing realized: a zero return
                    self.processed = i + 1
                    if i % yield_every == 0:
                        await asyncio.sleep(0)  # let the server answer probes
        finally:
            await module.stop()
        wall = time.perf_counter() - started
        return await self._report(curve, exposed, wall)

    async def _report(self, curve: _Curve, exposed: int, wall: float) -> BacktestReport:
        path = self.host.order_path
        trades = await path.ledger.closed_trades()
        stats = path.stats()
        candles = self.candles
        n = len(candles)
        periods = Decimal(YEAR_SECONDS) / Decimal(candles.timeframe)
        fees = ZERO
        ledger = self.host.ledger
        if isinstance(ledger, InMemoryLedger):  # whichever broker filled (spot, perpetual)
            fees = sum((f.fee for f in ledger.fills()), ZERO)
        events = await ledger.events()
        liquidations = sum(1 for e in events if e.kind == "liquidation")
        with localcontext(ACCOUNTING_CONTEXT):
            pnls = [t.pnl for t in trades]
            ending = path.state.equity
            sharpe, sortino = curve.sharpe(periods), curve.sortino(periods)
            exposure = Decimal(exposed) / n * HUNDRED
        halt = path.halt_info
        return BacktestReport(
            trades=stats.trades,
            wins=stats.wins,
            losses=stats.losses,
            win_rate=_ratio(stats.win_rate),
            realized_pnl=_money(stats.realized_pnl) or "0",
            unrealized_pnl=_money(stats.unrealized_pnl) or "0",
            gross_profit=_money(stats.gross_profit) or "0",
            gross_loss=_money(stats.gross_loss) or "0",
            profit_factor=_ratio(stats.profit_factor),
            max_drawdown=_money(curve.max_drawdown) or "0",
            max_drawdown_percent=_ratio(curve.max_drawdown_percent) or "0",
            sharpe=_ratio(sharpe),
            sortino=_ratio(sortino),
            annualization=(
                f"per-candle equity returns x sqrt({decimal_str(periods, 3)}) "
                f"({candles.timeframe}s candles, 365-day year)"
            ),
            exposure_percent=_ratio(exposure) or "0",
            exposure_seconds=exposed * candles.timeframe,
            best_trade=_money(max(pnls)) if pnls else None,
            worst_trade=_money(min(pnls)) if pnls else None,
            fees=_money(fees) or "0",
            funding=_money(path.state.funding) or "0",
            liquidations=liquidations,
            starting_balance=_money(path.limits.allocation) or "0",
            ending_equity=_money(ending) or "0",
            data_start=iso(candles.times[0]),
            data_end=iso(candles.times[-1] + candles.timeframe),
            timeframe=f"{candles.timeframe}s",
            source=candles.source,
            candles=self.processed,
            wall_seconds=f"{wall:.3f}",
            halted=halt.reason if halt is not None else None,
        )
