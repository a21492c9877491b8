"""Price band mean reversion around an EMA: the built-in paper strategy.

Buy when the price falls `bandPercent` below the EMA of earlier prices; sell when it
comes back to the EMA (`exitAt: mean`) or rises `bandPercent` above it (`exitAt:
upper`). `PriceBandStrategy` is pure (prices in, signals out), so `dex_trading` can
reuse it with on-chain prices; `PriceBandModule` wires it to the order path.

spec.strategy example::

    base: WETH
    quote: USDC
    orderSize: "500"      # quote spent per entry
    emaPeriod: 20
    bandPercent: 1.5
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, localcontext
from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from module_runtime.modules.base import BPS, BaseModule, StrategyParams
from module_runtime.orders import Order, Side
from module_runtime.positions import ACCOUNTING_CONTEXT

HUNDRED = Decimal(100)


class PriceBandParams(StrategyParams):
    base: str = Field(min_length=1, max_length=32, description="Token bought and sold.")
    quote: str = Field(min_length=1, max_length=32, description="Token paid with.")
    order_size: Decimal = Field(gt=0, description="Quote spent per entry.")
    ema_period: int = Field(default=20, ge=2, le=10_000)
    band_percent: Decimal = Field(default=Decimal(1), gt=0, lt=100)
    exit_at: Literal["mean", "upper"] = "mean"
    max_slippage_bps: Decimal = Field(
        default=Decimal(100), ge=0, lt=10_000, description="min_out tolerance on entries."
    )
    quantity_decimals: int = Field(default=8, ge=0, le=18)

    @model_validator(mode="after")
    def _distinct_pair(self) -> PriceBandParams:
        if self.base == self.quote:
            raise ValueError("base and quote must differ")
        return self


class Signal(StrEnum):
    BUY = "buy"
    SELL = "sell"
    HOLD = "hold"


class PriceBandStrategy:
    """EMA band signals. Decides against the EMA of *earlier* prices, then updates it."""

    def __init__(
        self, *, ema_period: int, band_percent: Decimal, exit_at: Literal["mean", "upper"]
    ) -> None:
        self.ema_period = ema_period
        self.band_percent = band_percent
        self.exit_at = exit_at
        self.ema: Decimal | None = None
        self.samples = 0
        with localcontext(ACCOUNTING_CONTEXT):
            self._alpha = Decimal(2) / (ema_period + 1)

    @classmethod
    def from_params(cls, params: PriceBandParams) -> PriceBandStrategy:
        return cls(
            ema_period=params.ema_period, band_percent=params.band_percent, exit_at=params.exit_at
        )

    @property
    def warm(self) -> bool:
        return self.samples >= self.ema_period

    def on_price(self, price: Decimal, *, holding: bool) -> Signal:
        with localcontext(ACCOUNTING_CONTEXT):
            signal = self._decide(price, holding) if self.warm else Signal.HOLD
            self.ema = price if self.ema is None else self.ema + self._alpha * (price - self.ema)
            self.samples += 1
            return signal

    def _decide(self, price: Decimal, holding: bool) -> Signal:
        assert self.ema is not None
        band = self.ema * self.band_percent / HUNDRED
        if not holding and price <= self.ema - band:
            return Signal.BUY
        target = self.ema if self.exit_at == "mean" else self.ema + band
        if holding and price >= target:
            return Signal.SELL
        return Signal.HOLD


class PriceBandModule(BaseModule[PriceBandParams]):
    params_model = PriceBandParams

    def configure(self) -> None:
        self.strategy = PriceBandStrategy.from_params(self.params)
        self._step = Decimal(1).scaleb(-self.params.quantity_decimals)

    async def tick(self) -> None:
        p = self.params
        price = await self.market.price(p.base, p.quote)
        self.order_path.mark(p.base, p.quote, price)
        holding = self.order_path.state.positions.get((p.base, p.quote))
        signal = self.strategy.on_price(price, holding=holding is not None)
        # no re-entry on the tick a stop loss got us out: wait for the next price
        if signal is Signal.BUY and self.can_open and (p.base, p.quote) not in self.stopped_out:
            order = self._entry(price)
            if order is not None:
                await self.submit(order)
        elif signal is Signal.SELL and holding is not None:
            exit_order = self.exit_order(holding, price)
            if exit_order is not None:
                await self.submit(exit_order)

    def _entry(self, price: Decimal) -> Order | None:
        p = self.params
        with localcontext(ACCOUNTING_CONTEXT):
            quantity = (p.order_size / price).quantize(self._step, rounding=ROUND_DOWN)
            if quantity <= 0:
                return None
            min_out = (quantity * (BPS - p.max_slippage_bps) / BPS).quantize(
                self._step, rounding=ROUND_DOWN
            )
        return Order(
            venue=self.venue,
            side=Side.BUY,
            base=p.base,
            quote=p.quote,
            quantity=quantity,
            price=price,
            min_out=min_out,
            created_at=self.clock.now(),
        )
