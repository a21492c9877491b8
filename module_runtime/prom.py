"""Prometheus metrics and the JSON summary of one module.

Each module gets its own `CollectorRegistry` (never the global one), so tests and a
future multi-module process cannot mix series. Two kinds of metrics:

- events that happen once — orders by final status, rejections by reason — are plain
  counters incremented by the order path;
- everything the ledger can answer (trades, wins, PnL, drawdown, ...) is computed from
  the current `TradeStats` at scrape time by `StatsCollector`, so there is no second
  copy to drift from the ledger.

Every series carries `module`, `namespace` and `type` labels. Values are Decimals up to
`_export`, the one place a float is made. An undefined statistic (win rate without
trades, Sharpe with fewer than two) is exported as NaN; an infinite profit factor as +Inf.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from module_runtime.orders import OrderStatus
from module_runtime.risk import RejectReason
from module_runtime.trade_stats import TradeStats, decimal_str

LABELS = ("module", "namespace", "type")


class ScrapeCollector(Collector):
    """A collector whose families are built at every scrape by `_build`; `describe` is
    the same build without samples (the registry calls it once, to check names)."""

    def describe(self) -> Iterable[Metric]:
        return self._build(with_samples=False)

    def collect(self) -> Iterable[Metric]:
        return self._build(with_samples=True)

    def _build(self, *, with_samples: bool) -> list[Metric]:
        raise NotImplementedError


MONEY_PLACES = 6  # the summary is for people (status, printer columns); the ledger stays exact
RATIO_PLACES = 6


class StatsSource(Protocol):
    def stats(self) -> TradeStats: ...

    @property
    def halted(self) -> bool: ...

    @property
    def ledger_ok(self) -> bool: ...

    @property
    def drawdown_ratio(self) -> Decimal: ...

    @property
    def drawdown_limit_ratio(self) -> Decimal: ...


def _export(value: Decimal | None) -> float:
    """Decimal -> float for the Prometheus text format: the only float in the runtime."""
    if value is None:
        return float("nan")
    return float(value)


_COUNTERS: tuple[tuple[str, str, Callable[[TradeStats], int]], ...] = (
    ("tradeplane_module_trades", "Closed trades.", lambda s: s.trades),
    ("tradeplane_module_wins", "Closed trades with PnL > 0.", lambda s: s.wins),
    ("tradeplane_module_losses", "Closed trades with PnL < 0.", lambda s: s.losses),
    (
        "tradeplane_module_liquidations",
        "Perpetual positions liquidated by the venue (each also a losing trade).",
        lambda s: s.liquidations,
    ),
)

_GAUGES: tuple[tuple[str, str, Callable[[TradeStats], Decimal | None]], ...] = (
    (
        "tradeplane_module_realized_pnl",
        "Realized PnL, capital currency.",
        lambda s: s.realized_pnl,
    ),
    (
        "tradeplane_module_unrealized_pnl",
        "Unrealized PnL of open positions at their marks, capital currency.",
        lambda s: s.unrealized_pnl,
    ),
    (
        "tradeplane_module_win_rate_ratio",
        "Wins / trades (NaN without trades).",
        lambda s: s.win_rate,
    ),
    (
        "tradeplane_module_profit_factor",
        "Gross profit / gross loss (+Inf: profit and no loss; NaN: neither).",
        lambda s: s.profit_factor,
    ),
    (
        "tradeplane_module_max_drawdown",
        "Largest fall of equity from a peak, capital currency.",
        lambda s: s.max_drawdown,
    ),
    (
        "tradeplane_module_max_drawdown_ratio",
        "Largest fall of equity from a peak, as a fraction of that peak.",
        lambda s: s.max_drawdown_ratio,
    ),
    (
        "tradeplane_module_sharpe_ratio",
        "Mean / sample stdev of per-trade returns, not annualized (NaN if undefined).",
        lambda s: s.sharpe,
    ),
    (
        "tradeplane_module_funding",
        "Perpetual funding received (negative: paid), capital currency; part of realized PnL.",
        lambda s: s.funding,
    ),
    (
        "tradeplane_module_capital_in_use",
        "Capital tied up in open positions, at cost, capital currency.",
        lambda s: s.capital_in_use,
    ),
)

HALTED = "tradeplane_module_halted"
# Beside the ledger's statistics, what the alert rules need (charts/.../prometheusrule.yaml):
# the risk check's current drawdown and its limit, and whether the ledger is failing.
_SOURCE_GAUGES: tuple[tuple[str, str, Callable[[StatsSource], Decimal | int]], ...] = (
    (
        "tradeplane_module_drawdown_ratio",
        "Current fall of equity from its peak, as a fraction (what the risk check halts on).",
        lambda s: s.drawdown_ratio,
    ),
    (
        "tradeplane_module_drawdown_limit_ratio",
        "The module's spec.risk.maxDrawdownPercent, as a fraction.",
        lambda s: s.drawdown_limit_ratio,
    ),
    (
        "tradeplane_module_ledger_degraded",
        "1 while the ledger fails (orders with unknown outcome are possible), else 0.",
        lambda s: 0 if s.ledger_ok else 1,
    ),
)


class StatsCollector:
    """Series derived from the ledger's statistics, computed at every scrape."""

    def __init__(self, source: StatsSource, labels: tuple[str, str, str]) -> None:
        self._source = source
        self._labels = list(labels)

    def describe(self) -> Iterable[Metric]:
        """Names only (no samples), so the registry can detect clashes."""
        return self._build(None, halted=False)

    def collect(self) -> Iterable[Metric]:
        return self._build(self._source.stats(), halted=self._source.halted)

    def _build(self, stats: TradeStats | None, *, halted: bool) -> list[Metric]:
        names = list(LABELS)
        families: list[Metric] = []
        for name, doc, count in _COUNTERS:
            counter = CounterMetricFamily(name, doc, labels=names)
            if stats is not None:
                counter.add_metric(self._labels, count(stats))
            families.append(counter)
        for name, doc, value in _GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=names)
            if stats is not None:
                gauge.add_metric(self._labels, _export(value(stats)))
            families.append(gauge)
        halt = GaugeMetricFamily(HALTED, "1 while the module is halted, else 0.", labels=names)
        if stats is not None:
            halt.add_metric(self._labels, 1 if halted else 0)
        families.append(halt)
        for name, doc, read in _SOURCE_GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=names)
            if stats is not None:
                gauge.add_metric(self._labels, _export(Decimal(read(self._source))))
            families.append(gauge)
        return families


class ModuleMetrics:
    """The metrics of one module, in their own registry."""

    def __init__(
        self,
        *,
        module: str,
        namespace: str,
        module_type: str,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.labels = (module, namespace, module_type)
        self._orders = Counter(
            "tradeplane_module_orders",
            "Orders by final status (rejected: refused by risk checks).",
            [*LABELS, "status"],
            registry=self.registry,
        )
        self._rejected = Counter(
            "tradeplane_module_orders_rejected",
            "Orders refused by risk checks, by reason.",
            [*LABELS, "reason"],
            registry=self.registry,
        )
        # Known label values start at 0, so rates work from the first increment.
        for status in OrderStatus:
            self._orders.labels(*self.labels, status.value)
        for reason in RejectReason:
            self._rejected.labels(*self.labels, reason.value)
        self._collector: StatsCollector | None = None

    def order(self, status: OrderStatus) -> None:
        self._orders.labels(*self.labels, status.value).inc()

    def rejected(self, reason: RejectReason) -> None:
        self._rejected.labels(*self.labels, reason.value).inc()

    def watch(self, source: StatsSource) -> None:
        """Export `source`'s statistics at every scrape (once per registry)."""
        if self._collector is not None:
            raise RuntimeError("this registry already exports a stats source")
        self._collector = StatsCollector(source, self.labels)
        self.registry.register(self._collector)


def summary_json(stats: TradeStats) -> dict[str, Any]:
    """The summary the operator copies into `status.metrics` (`MetricsSummary` keys).

    Decimal strings; profit factor "inf" when there is profit and no loss, null when
    undefined; win rate null without trades.
    """
    return {
        "trades": stats.trades,
        "winRate": decimal_str(stats.win_rate, RATIO_PLACES),
        "realizedPnl": decimal_str(stats.realized_pnl, MONEY_PLACES),
        "unrealizedPnl": decimal_str(stats.unrealized_pnl, MONEY_PLACES),
        "profitFactor": decimal_str(stats.profit_factor, RATIO_PLACES),
        "maxDrawdown": decimal_str(stats.max_drawdown, MONEY_PLACES),
        "capitalInUse": decimal_str(stats.capital_in_use, MONEY_PLACES),
        "maxDrawdownPercent": decimal_str(stats.max_drawdown_percent, RATIO_PLACES),
        "sharpe": decimal_str(stats.sharpe, RATIO_PLACES),
    }
