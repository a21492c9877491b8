"""`futures_trading`: a two-sided EMA band on a USDT/USDC-margined perpetual.

Goes long when the mark falls `bandPercent` below the EMA of earlier marks, short when it
rises `bandPercent` above it, and closes when the mark comes back to the EMA. Every
order is a perpetual (`Market.PERP`) at `leverage` with isolated margin `orderSize /
leverage`, through the one order path; the base class's stop loss protects both sides.
Before each tick the venue's funding payments and liquidations are booked
(`OrderPath.settle`).

Paper (and backtest): `PaperFuturesBroker` on the module's market data, with the
funding-rate series `fundingRates` every `fundingIntervalHours`. Live: Binance USDⓈ-M
through ccxt (`module_runtime.futures.exchange`), keys from `spec.exchangeSecretRef`.

spec.strategy example::

    base: BTC
    quote: USDC
    orderSize: "1000"        # notional per entry, quote units
    leverage: 3              # <= risk.maxLeverage and the pair's tier maximum
    emaPeriod: 20
    bandPercent: 0.5
    fundingIntervalHours: 8
    fundingRates: ["0.0001", "-0.00005"]
    takerFeeBps: 5
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import TYPE_CHECKING, Literal

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import Field, field_validator, model_validator

from module_runtime.clock import Clock
from module_runtime.futures.margin import margin_ratio
from module_runtime.futures.paper import (
    FundingSeries,
    PaperFuturesBroker,
    direction,
    position_liquidation_price,
)
from module_runtime.futures.tiers import TierTable, default_tables
from module_runtime.market_data import MarketData
from module_runtime.modules.base import BaseModule, InvalidStrategyParams, StrategyParams
from module_runtime.orders import Market, Order, Side
from module_runtime.positions import ACCOUNTING_CONTEXT, Position, PositionKey, PositionSide
from module_runtime.prom import LABELS, ScrapeCollector
from tradeplane_operator.api.models import Mode, TradingModuleSpec

if TYPE_CHECKING:
    from module_runtime.orders import Broker

log = logging.getLogger(__name__)

HUNDRED = Decimal(100)
MARGIN_ASSETS = ("USDT", "USDC")


class FuturesParams(StrategyParams):
    base: str = Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9]+$")
    quote: str = Field(description="Margin asset: USDT or USDC.")
    order_size: Decimal = Field(gt=0, description="Notional per entry, quote units.")
    leverage: Decimal = Field(default=Decimal(1), ge=1, le=125)
    ema_period: int = Field(default=20, ge=2, le=10_000)
    band_percent: Decimal = Field(default=Decimal("0.5"), gt=0, lt=100)
    funding_interval_hours: int = Field(default=8, gt=0, le=24)
    funding_rates: list[Decimal] = Field(
        default_factory=lambda: [Decimal("0.0001")],
        min_length=1,
        max_length=1000,
        description="Paper: the funding rate at successive funding times (cycled).",
    )
    taker_fee_bps: Decimal = Field(default=Decimal(5), ge=0, lt=10_000)
    slippage_bps: Decimal = Field(default=Decimal(0), ge=0, lt=10_000)
    quantity_decimals: int = Field(default=3, ge=0, le=8)
    exchange: Literal["binanceusdm"] = "binanceusdm"
    exchange_url: str | None = Field(
        default=None,
        max_length=512,
        pattern=r"^https?://",
        description="Live: the exchange's REST root instead of ccxt's (a testnet).",
    )

    @field_validator("quote")
    @classmethod
    def _margin_asset(cls, value: str) -> str:
        if value not in MARGIN_ASSETS:
            raise ValueError(f"must be one of {', '.join(MARGIN_ASSETS)} (the margin asset)")
        return value

    @field_validator("funding_rates")
    @classmethod
    def _bounded_rates(cls, rates: list[Decimal]) -> list[Decimal]:
        if any(abs(r) >= 1 for r in rates):
            raise ValueError("funding rates are fractions per interval, |rate| < 1")
        return rates

    @model_validator(mode="after")
    def _distinct(self) -> FuturesParams:
        if self.base == self.quote:
            raise ValueError("base and quote must differ")
        return self


def _invalid(field: str, why: str) -> InvalidStrategyParams:
    return InvalidStrategyParams(f"invalid strategy parameters: strategy.{field}: {why}")


def check_params(
    params: FuturesParams,
    spec: TradingModuleSpec,
    tiers: dict[PositionKey, TierTable],
    *,
    venue_decides: bool = False,
) -> TierTable | None:
    """What the schema cannot see: leverage and margin against the spec and the venue.
    `venue_decides` (live, before the exchange was asked): a pair missing from the
    built-in tables is left to the exchange's own list (checked at start)."""
    if params.leverage > spec.risk.max_leverage:
        raise _invalid(
            "leverage", f"{params.leverage} exceeds risk.maxLeverage {spec.risk.max_leverage}"
        )
    with localcontext(ACCOUNTING_CONTEXT):
        margin = params.order_size / params.leverage
    if margin > spec.capital.allocation:
        raise _invalid(
            "orderSize",
            f"the position's margin {margin} (orderSize / leverage) exceeds "
            f"capital.allocation {spec.capital.allocation}",
        )
    table = tiers.get((params.base, params.quote))
    if table is None and venue_decides:
        return None
    if table is None:
        known = ", ".join(sorted(f"{b}{q}" for b, q in tiers))
        raise _invalid("base", f"unknown symbol {params.base}{params.quote} (known: {known})")
    try:
        venue_max = table.max_leverage_for(params.order_size)
    except ValueError as error:
        raise _invalid("orderSize", str(error)) from None
    if params.leverage > venue_max:
        raise _invalid(
            "leverage",
            f"{params.leverage} exceeds {table.symbol}'s max leverage {venue_max} for a "
            f"notional of {params.order_size}",
        )
    return table


class TwoSidedBand:
    """EMA band signals for a position that may be long or short (pure)."""

    def __init__(self, period: int, band_percent: Decimal) -> None:
        self.period = period
        self.band = band_percent / HUNDRED
        self.ema: Decimal | None = None
        self.samples = 0
        with localcontext(ACCOUNTING_CONTEXT):
            self._alpha = Decimal(2) / (period + 1)

    def on_price(self, price: Decimal, holding: PositionSide | None) -> str:
        """ "long", "short", "close" or "hold"; decides on the EMA of earlier prices."""
        with localcontext(ACCOUNTING_CONTEXT):
            signal = "hold"
            if self.ema is not None and self.samples >= self.period:
                if holding is None and price <= self.ema * (1 - self.band):
                    signal = "long"
                elif holding is None and price >= self.ema * (1 + self.band):
                    signal = "short"
                elif (holding is PositionSide.LONG and price >= self.ema) or (
                    holding is PositionSide.SHORT and price <= self.ema
                ):
                    signal = "close"
            self.ema = price if self.ema is None else self.ema + self._alpha * (price - self.ema)
            self.samples += 1
            return signal


class PositionCollector(ScrapeCollector):
    """Per open perpetual position (label `pair`): liquidation price, margin ratio,
    isolated margin and unrealized PnL at the latest mark, computed at every scrape."""

    def __init__(self, module: FuturesTradingModule, labels: tuple[str, str, str]) -> None:
        self._module = module
        self._labels = list(labels)

    def _build(self, *, with_samples: bool) -> list[Metric]:
        names = [*LABELS, "pair", "side"]
        specs = (
            ("tradeplane_futures_liquidation_price", "Liquidation price, quote per base."),
            (
                "tradeplane_futures_margin_ratio",
                "Maintenance margin / margin balance (1: liquidated).",
            ),
            ("tradeplane_futures_margin", "Isolated margin posted, quote units."),
            ("tradeplane_futures_unrealized_pnl", "Unrealized PnL at the mark, quote units."),
        )
        families = [GaugeMetricFamily(name, doc, labels=names) for name, doc in specs]
        if not with_samples:
            return list(families)
        state = self._module.order_path.state
        for position in state.positions.values():
            table = self._module.tiers.get(position.key)
            mark = state.marks.get(position.key)
            if not position.is_perp or table is None or mark is None:
                continue
            side = direction(position)
            values = (
                position_liquidation_price(position, table),
                margin_ratio(
                    side, position.quantity, position.avg_cost, position.margin, mark, table
                ),
                position.margin,
                position.unrealized_pnl(mark),
            )
            labels = [*self._labels, f"{position.base}/{position.quote}", position.side.value]
            for family, value in zip(families, values, strict=True):
                family.add_metric(labels, float(value))  # the Prometheus text format's float
        return list(families)


class FuturesTradingModule(BaseModule[FuturesParams]):
    params_model = FuturesParams

    @classmethod
    def paper_broker(cls, spec: TradingModuleSpec, market: MarketData, clock: Clock) -> Broker:
        """The host's broker in paper and backtest mode."""
        params = cls.parse_params(spec.strategy)
        assert isinstance(params, FuturesParams)
        interval = timedelta(hours=params.funding_interval_hours)
        return PaperFuturesBroker(
            market,
            default_tables(),
            FundingSeries(params.funding_rates, interval),
            clock=clock,
            taker_fee_bps=params.taker_fee_bps,
            slippage_bps=params.slippage_bps,
        )

    def metric_collectors(self, labels: tuple[str, str, str]) -> list[Collector]:
        """Extra series for the host's registry (module, namespace, type labels)."""
        return [PositionCollector(self, labels)]

    @property
    def futures(self) -> FuturesParams:
        assert isinstance(self.params, FuturesParams)
        return self.params

    def configure(self) -> None:
        p = self.futures
        tiers = dict(getattr(self.order_path.broker, "tiers", None) or default_tables())
        self.tiers = tiers
        self.table = check_params(p, self.spec, tiers, venue_decides=self.spec.mode is Mode.LIVE)
        self.order_path.use_tiers(tiers)
        self.strategy = TwoSidedBand(p.ema_period, p.band_percent)
        self._step = Decimal(1).scaleb(-p.quantity_decimals)

    async def on_start(self) -> None:
        start = getattr(self.order_path.broker, "start", None)
        if start is not None and self.spec.mode is Mode.LIVE:
            await start(self.futures.base, self.futures.quote, self.futures.leverage)
            self.tiers = dict(
                getattr(self.order_path.broker, "tiers", self.tiers)
            )  # the exchange's
            self.table = check_params(self.futures, self.spec, self.tiers)
            self.order_path.use_tiers(self.tiers)

    async def on_stop(self) -> None:
        """SIGTERM: the live broker cancels the open orders and closes its session."""
        close = getattr(self.order_path.broker, "close", None)
        if close is not None:
            await close()

    async def protect(self) -> None:
        """Book funding and liquidations first, then marks and stop losses."""
        await self.order_path.settle()
        await super().protect()

    async def tick(self) -> None:
        p = self.futures
        price = await self.market.price(p.base, p.quote)
        self.order_path.mark(p.base, p.quote, price)
        key = (p.base, p.quote)
        holding = self.order_path.state.positions.get(key)
        signal = self.strategy.on_price(price, None if holding is None else holding.side)
        if signal in ("long", "short") and self.can_open and key not in self.stopped_out:
            order = self.entry(Side.BUY if signal == "long" else Side.SELL, price)
            if order is not None:
                await self.submit(order)
        elif signal == "close" and holding is not None:
            exit_order = self.exit_order(holding, price)
            if exit_order is not None:
                await self.submit(exit_order)

    def entry(self, side: Side, price: Decimal) -> Order | None:
        p = self.futures
        with localcontext(ACCOUNTING_CONTEXT):
            quantity = (p.order_size / price).quantize(self._step, rounding=ROUND_DOWN)
        if quantity <= 0:
            return None
        return Order(
            venue=self.venue,
            side=side,
            base=p.base,
            quote=p.quote,
            quantity=quantity,
            price=price,
            leverage=p.leverage,
            created_at=self.clock.now(),
            market=Market.PERP,
        )

    def exit_order(self, position: Position, price: Decimal) -> Order | None:
        """A reducing order for all that is closable, on the side opposite the position."""
        quantity = self.order_path.state.closable(position.key)
        if quantity <= 0:
            return None
        return Order(
            venue=self.venue,
            side=Side.SELL if position.side is PositionSide.LONG else Side.BUY,
            base=position.base,
            quote=position.quote,
            quantity=quantity,
            price=price,
            leverage=position.leverage,
            reduces_position=True,
            created_at=self.clock.now(),
            market=Market.PERP,
        )
