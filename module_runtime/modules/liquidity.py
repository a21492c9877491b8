"""`liquidity_provision`: provide liquidity to a pool while its price is within a band.

Each tick reads the pool. While the mid price is within `bandPercent` of the band's center
(`centerPrice`, or the first mid price the module reads) and no liquidity is deposited, it
adds `depositValue` worth of liquidity (half base, half quote at the pool's ratio); when the
price leaves the band it removes all of it. The wallet supplies both tokens and keeps both
when liquidity is removed (nothing is swapped).

Risk checks. Adding liquidity commits capital, so it goes through the `OrderPath` like any
order: an add is a BUY of the pool's LP token (`WETH-USDC-LP`) whose notional is the value
deposited (both tokens at the mid price), so max position size, available capital, the
daily loss budget at the stop and drawdown all apply; a remove is a reducing SELL. The
ledger records intent and outcome of both; realized PnL of a round trip is value withdrawn
- value deposited. The LP position is marked at the LP token's value, so the base module's
stop loss removes liquidity too. (`module_runtime.chain.pool_brokers`, "Liquidity orders".)

Fees and impermanent loss, versus holding the deposited tokens (quote units, Decimal):
with `b0`, `q0` the tokens deposited, `L0 = sqrt(b0 x q0)` the deposit's liquidity (the
deposit is at the pool's ratio), `p` the mid price and `V` the position's value at `p`
(withdrawn: the tokens paid out; open: LP tokens x LP token value),

    hold      = b0 x p + q0                 what the deposited tokens are worth now
    no_fees   = 2 x sqrt(p) x L0            what the position would be worth without fees
    fees      = V - no_fees                 fees earned (grow the pool's k)
    IL        = hold - no_fees  (>= 0)      impermanent loss, the price move's cost
    so  fees - IL = V - hold.

Closed positions add to running totals; the open one is re-marked every tick. Exported as
`tradeplane_module_lp_fees_earned` and `tradeplane_module_lp_impermanent_loss` (gauges,
quote units) on the host's registry.

spec.strategy example::

    base: WETH
    quote: USDC
    depositValue: "20000"
    bandPercent: 10
    centerPrice: "3000"      # optional; default: the first price read
    pool: "0x..."            # evm: the Pair and its Router (live)
    router: "0x..."
    slippagePercent: 0.5
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, localcontext

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import Field, model_validator

from module_runtime.chain.pool_market import LiquidityReceipt, PoolMarket
from module_runtime.chain.pool_state import PoolState
from module_runtime.chain.units import apply_slippage
from module_runtime.chain.venues import EvmAddress, VenueConfig
from module_runtime.modules.base import BaseModule, InvalidStrategyParams, StrategyParams
from module_runtime.modules.dex_trading import require
from module_runtime.orders import Fill, Order, OrderStatus, Side
from module_runtime.positions import ACCOUNTING_CONTEXT, Position
from module_runtime.prom import LABELS, ScrapeCollector
from tradeplane_operator.api.models import MarketDataSource, Mode, TradingModuleSpec

log = logging.getLogger(__name__)

VENUE = "pool"
ZERO = Decimal(0)
HUNDRED = Decimal(100)
FEES_METRIC = "tradeplane_module_lp_fees_earned"
IL_METRIC = "tradeplane_module_lp_impermanent_loss"


class LiquidityParams(StrategyParams):
    base: str = Field(min_length=1, max_length=32, description="The pool's base token.")
    quote: str = Field(min_length=1, max_length=32, description="The pool's quote token.")
    deposit_value: Decimal = Field(gt=0, description="Quote value deposited per add.")
    band_percent: Decimal = Field(default=Decimal(10), gt=0, lt=100)
    center_price: Decimal | None = Field(
        default=None, gt=0, description="Band center; default: the first price read."
    )
    pool: EvmAddress | None = Field(default=None, description="The Pair (evm).")
    router: EvmAddress | None = Field(default=None, description="Its Router (live).")
    slippage_percent: Decimal = Field(default=Decimal("0.5"), ge=0, lt=100)
    deadline_seconds: int = Field(default=120, ge=1, le=3600)

    @model_validator(mode="after")
    def _distinct_pair(self) -> LiquidityParams:
        if self.base == self.quote:
            raise ValueError("base and quote must differ")
        return self


@dataclass
class Deposit:
    base: Decimal
    quote: Decimal
    lp: Decimal  # LP tokens held
    root: Decimal  # sqrt(base x quote): the deposit's liquidity


class LpAccount:
    """Fees earned and impermanent loss vs holding (module docstring). Decimal only."""

    def __init__(self) -> None:
        self.deposit: Deposit | None = None
        self.fees_closed = ZERO
        self.loss_closed = ZERO
        self.fees_open = ZERO
        self.loss_open = ZERO

    @property
    def fees_earned(self) -> Decimal:
        with localcontext(ACCOUNTING_CONTEXT):
            return self.fees_closed + self.fees_open

    @property
    def impermanent_loss(self) -> Decimal:
        with localcontext(ACCOUNTING_CONTEXT):
            return self.loss_closed + self.loss_open

    def split(self, value: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
        """(fees, impermanent loss) of the open deposit, were it worth `value` at `price`."""
        assert self.deposit is not None
        d = self.deposit
        with localcontext(ACCOUNTING_CONTEXT):
            no_fees = 2 * price.sqrt() * d.root
            return value - no_fees, d.base * price + d.quote - no_fees

    def opened(self, receipt: LiquidityReceipt) -> None:
        state = receipt.state
        with localcontext(ACCOUNTING_CONTEXT):
            base = state.base.from_units(receipt.base_amount)
            quote = state.quote.from_units(receipt.quote_amount)
            self.deposit = Deposit(
                base, quote, state.lp.from_units(receipt.liquidity), (base * quote).sqrt()
            )
        self.mark(state)

    def closed(self, receipt: LiquidityReceipt) -> None:
        if self.deposit is None:
            return
        fees, loss = self.split(receipt.value, receipt.state.mid)
        with localcontext(ACCOUNTING_CONTEXT):
            self.fees_closed += fees
            self.loss_closed += loss
        self.deposit = None
        self.fees_open = self.loss_open = ZERO

    def mark(self, state: PoolState) -> None:
        if self.deposit is None:
            return
        with localcontext(ACCOUNTING_CONTEXT):
            value = self.deposit.lp * state.lp_price
        self.fees_open, self.loss_open = self.split(value, state.mid)


class LpCollector(ScrapeCollector):
    """The LP gauges, read from the account at every scrape."""

    def __init__(self, account: LpAccount, labels: tuple[str, str, str]) -> None:
        self._account = account
        self._labels = list(labels)

    def _build(self, *, with_samples: bool) -> list[Metric]:
        families: list[Metric] = []
        for name, doc, value in (
            (FEES_METRIC, "LP fees earned vs holding, quote units.", self._account.fees_earned),
            (
                IL_METRIC,
                "LP impermanent loss vs holding (>= 0), quote units.",
                self._account.impermanent_loss,
            ),
        ):
            gauge = GaugeMetricFamily(name, doc, labels=list(LABELS))
            if with_samples:
                gauge.add_metric(self._labels, float(value))  # the Prometheus text format's float
            families.append(gauge)
        return families


class LiquidityModule(BaseModule[LiquidityParams]):
    params_model = LiquidityParams

    @classmethod
    def venues(cls, params: StrategyParams, spec: TradingModuleSpec) -> list[VenueConfig]:
        assert isinstance(params, LiquidityParams)
        p = params
        if spec.market_data.source is not MarketDataSource.EVM:
            return [VenueConfig(VENUE, p.base, p.quote)]
        pool = require(p.pool, "pool", "required when marketData.source is evm")
        router = p.router
        if spec.mode is Mode.LIVE:
            router = require(router, "router", "required in live mode")
        return [
            VenueConfig(
                VENUE,
                p.base,
                p.quote,
                pool=pool,
                router=router,
                deadline_seconds=p.deadline_seconds,
            )
        ]

    def configure(self) -> None:
        if not isinstance(self.market, PoolMarket):
            raise InvalidStrategyParams(
                "liquidity_provision needs a pool (module_runtime.chain.market)"
            )
        self.pools = self.market
        self.lp_symbol = self.pools.venue(VENUE).config.lp_symbol
        self.key = (self.lp_symbol, self.params.quote)
        self.center: Decimal | None = self.params.center_price
        self.account = LpAccount()

    def metric_collectors(self, labels: tuple[str, str, str]) -> list[Collector]:
        """Extra series for the host's registry (module, namespace, type labels)."""
        return [LpCollector(self.account, labels)]

    def band(self) -> tuple[Decimal, Decimal] | None:
        if self.center is None:
            return None
        with localcontext(ACCOUNTING_CONTEXT):
            width = self.center * self.params.band_percent / HUNDRED
            return self.center - width, self.center + width

    async def tick(self) -> None:
        state = await self.pools.state(VENUE)
        mid = state.mid
        if self.center is None:
            self.center = mid
            log.info("band centered", extra={"module_name": self.name, "center": str(mid)})
        band = self.band()
        assert band is not None
        in_band = band[0] <= mid <= band[1]
        position = self.order_path.state.positions.get(self.key)
        if position is not None:
            self.order_path.mark(*self.key, state.lp_price)
        self.account.mark(state)
        if position is None and in_band and self.can_open and self.key not in self.stopped_out:
            await self._add(state)
        elif position is not None and not in_band:
            await self._remove(state, position)

    async def _add(self, state: PoolState) -> None:
        p = self.params
        quote_half = state.quote.to_units(p.deposit_value / 2)
        if state.quote_reserve <= 0:
            return
        liquidity = quote_half * state.total_supply // state.quote_reserve
        if liquidity <= 0:
            return
        order = Order(
            venue=VENUE,
            side=Side.BUY,
            base=self.lp_symbol,
            quote=p.quote,
            quantity=state.lp.from_units(liquidity),
            price=state.lp_price,
            min_out=state.lp.from_units(apply_slippage(liquidity, p.slippage_percent)),
            created_at=self.clock.now(),
        )
        await self.submit(order)

    async def _remove(self, state: PoolState, position: Position) -> None:
        quantity = self.order_path.state.sellable(self.key)
        if quantity <= 0:
            return
        value = state.value(*state.burn(state.lp.to_units(quantity)))
        with localcontext(ACCOUNTING_CONTEXT):
            least = value * (HUNDRED - self.params.slippage_percent) / HUNDRED
            step = Decimal(1).scaleb(-state.quote.decimals)
        order = Order(
            venue=VENUE,
            side=Side.SELL,
            base=self.lp_symbol,
            quote=self.params.quote,
            quantity=quantity,
            price=state.lp_price,
            min_out=least.quantize(step, rounding=ROUND_DOWN),
            reduces_position=True,
            created_at=self.clock.now(),
        )
        await self.submit(order)

    async def submit(self, order: Order) -> Fill:
        """Every liquidity order (also stop-loss exits) updates the fee/IL account."""
        fill = await super().submit(order)
        if fill.status is OrderStatus.FILLED and order.base == self.lp_symbol:
            receipt = self.pools.receipts.get(order.order_id)
            if receipt is None:
                log.error("liquidity fill without a receipt", extra={"order_id": order.order_id})
            elif receipt.added:
                self.account.opened(receipt)
            else:
                self.account.closed(receipt)
            log.info(
                "liquidity %s" % ("added" if order.side is Side.BUY else "removed"),
                extra={
                    "module_name": self.name,
                    "value": str(fill.notional),
                    "fees_earned": str(self.account.fees_earned),
                    "impermanent_loss": str(self.account.impermanent_loss),
                },
            )
        return fill

    async def on_stop(self) -> None:
        await self.pools.close()
