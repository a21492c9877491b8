"""`dex_trading`: the price band strategy on a DEX pool, or on the synthetic market.

- `marketData.source: synthetic` (the default): exactly `price_band` - the EMA band on the
  seeded random walk, filled by the host's `PaperBroker`. `router`/`pool` are not needed
  (and are ignored if given).
- `marketData.source: evm` (+ `rpcUrl`): prices are the pool's mid price read over
  JSON-RPC (`module_runtime.chain.pool_market`). Paper mode fills at exactly what the pool
  would pay (`PoolPaperBroker`); live mode signs and sends swaps through the Router
  (`ChainBroker` -> `Web3Broker`) with the wallet key from `TRADEPLANE_WALLET_KEY`.
  Every swap's `min_out` (the router's `amountOutMin`) is the pool's exact quote for that
  order - fee and price impact included - less `slippagePercent`, for entries, band exits
  and stop-loss exits alike (`maxSlippageBps`/`exitSlippageBps` only apply to synthetic
  runs, which have no exact quote). `deadlineSeconds` bounds how long a sent swap may wait
  to be mined.

spec.strategy example (evm)::

    base: WETH
    quote: USDC
    orderSize: "1000"
    emaPeriod: 12
    bandPercent: 0.8
    pool: "0x..."          # the WETH/USDC Pair
    router: "0x..."        # its Router (live mode)
    slippagePercent: 0.5
    deadlineSeconds: 120
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal

from pydantic import Field

from module_runtime.chain.pool_market import PoolMarket
from module_runtime.chain.venues import EvmAddress, VenueConfig
from module_runtime.modules.base import InvalidStrategyParams, StrategyParams
from module_runtime.modules.price_band import PriceBandModule, PriceBandParams
from module_runtime.orders import Order
from module_runtime.positions import Position
from tradeplane_operator.api.models import MarketDataSource, Mode, TradingModuleSpec

log = logging.getLogger(__name__)

VENUE = "pool"


class DexTradingParams(PriceBandParams):
    pool: EvmAddress | None = Field(
        default=None, description="The Pair trading base/quote (marketData.source evm)."
    )
    router: EvmAddress | None = Field(default=None, description="The pool's Router (live mode).")
    slippage_percent: Decimal = Field(
        default=Decimal("0.5"),
        ge=0,
        lt=100,
        description="min_out = the pool's exact quote less this (evm).",
    )
    deadline_seconds: int = Field(
        default=120, ge=1, le=3600, description="A sent swap expires after this (evm)."
    )


def require(value: str | None, field: str, why: str) -> str:
    if value is None:
        raise InvalidStrategyParams(f"invalid strategy parameters: strategy.{field}: {why}")
    return value


class DexTradingModule(PriceBandModule):
    params_model = DexTradingParams

    @classmethod
    def venues(cls, params: StrategyParams, spec: TradingModuleSpec) -> list[VenueConfig]:
        """Its one pool when the market data source is evm; none otherwise."""
        assert isinstance(params, DexTradingParams)
        if spec.market_data.source is not MarketDataSource.EVM:
            return []
        pool = require(params.pool, "pool", "required when marketData.source is evm")
        router = params.router
        if spec.mode is Mode.LIVE:
            router = require(router, "router", "required in live mode")
        return [
            VenueConfig(
                VENUE,
                params.base,
                params.quote,
                pool=pool,
                router=router,
                deadline_seconds=params.deadline_seconds,
            )
        ]

    @property
    def dex(self) -> DexTradingParams:
        assert isinstance(self.params, DexTradingParams)
        return self.params

    def configure(self) -> None:
        super().configure()
        self.pools: PoolMarket | None = None
        if self.spec.market_data.source is MarketDataSource.EVM:
            if not isinstance(self.market, PoolMarket):
                raise InvalidStrategyParams(
                    "marketData.source evm needs the pool market (module_runtime.chain.market)"
                )
            self.pools = self.market
        elif self.dex.pool is not None or self.dex.router is not None:
            log.warning(
                "strategy.pool/router ignored: marketData.source is synthetic",
                extra={"module_name": self.name},
            )

    def _entry(self, price: Decimal) -> Order | None:
        return self._exact(super()._entry(price))

    def exit_order(self, position: Position, price: Decimal) -> Order | None:
        return self._exact(super().exit_order(position, price))

    def _exact(self, order: Order | None) -> Order | None:
        """On a pool: min_out from the exact quote of the snapshot the price came from."""
        if order is None or self.pools is None:
            return order
        state = self.pools.last_state(VENUE)
        if state is None:
            return None  # no snapshot yet: no price to trade on either
        min_out = state.min_out(order.side, order.quantity, order.price, self.dex.slippage_percent)
        if min_out <= 0:
            log.info("order too small for the pool", extra={"module_name": self.name})
            return None
        return replace(order, min_out=min_out)

    async def on_stop(self) -> None:
        if self.pools is not None:
            await self.pools.close()
