"""`solana_strategies`: the price band strategy on a Solana constant-product pool.

- Without `rpcUrl` (the sample): the price band on the synthetic market, filled by the
  host's paper broker through the one order path (paper mode only).
- With `rpcUrl`, `programId`, `pool`, `baseMint`, `quoteMint`: prices are the pool's mid
  price from its real account state (module_runtime.solana.pool). Paper fills at exactly
  what the program would pay (`SolanaPaperBroker`, nothing sent); live signs and sends the
  program's Swap with the keypair from `walletSecretRef` (`SolanaBroker`). Every swap's
  `min_out` is the pool's exact quote for the order less `slippagePercent`, checked by the
  program on chain.

spec.strategy example (solana)::

    base: SOL
    quote: USDC
    orderSize: "100"
    emaPeriod: 12
    bandPercent: 0.8
    rpcUrl: http://solana-rpc:8899
    programId: <the pool program>
    pool: <the pool state account>
    baseMint: <SOL-side mint>
    quoteMint: <USDC mint>
    slippagePercent: 0.5
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator, model_validator

from module_runtime.clock import Clock
from module_runtime.modules.base import InvalidStrategyParams
from module_runtime.modules.price_band import PriceBandModule, PriceBandParams
from module_runtime.orders import Broker, Order
from module_runtime.positions import Position
from tradeplane_operator.api.models import Mode, TradingModuleSpec

log = logging.getLogger(__name__)

BASE58 = r"^[1-9A-HJ-NP-Za-km-z]{32,44}$"
POOL_FIELDS = ("program_id", "pool", "base_mint", "quote_mint")


class SolanaStrategiesParams(PriceBandParams):
    rpc_url: str | None = Field(
        default=None,
        max_length=512,
        pattern=r"^https?://",
        description="Solana JSON-RPC URL; unset: synthetic market (paper).",
    )
    program_id: str | None = Field(default=None, pattern=BASE58, description="Pool program.")
    pool: str | None = Field(default=None, pattern=BASE58, description="Pool state account.")
    base_mint: str | None = Field(default=None, pattern=BASE58, description="Mint of base.")
    quote_mint: str | None = Field(default=None, pattern=BASE58, description="Mint of quote.")
    slippage_percent: Decimal = Field(
        default=Decimal("0.5"), ge=0, lt=100, description="min_out = exact quote less this."
    )

    @field_validator("program_id", "pool", "base_mint", "quote_mint")
    @classmethod
    def _pubkey(cls, value: str | None) -> str | None:
        if value is not None:
            from solders.pubkey import Pubkey

            try:
                Pubkey.from_string(value)
            except ValueError:
                raise ValueError("not a Solana public key") from None
        return value

    @model_validator(mode="after")
    def _pool_fields(self) -> SolanaStrategiesParams:
        if self.rpc_url is not None:
            missing = [f for f in POOL_FIELDS if getattr(self, f) is None]
            if missing:
                names = ", ".join(_camel(f) for f in missing)
                raise ValueError(f"rpcUrl needs {names}")
            if self.base_mint == self.quote_mint:
                raise ValueError("baseMint and quoteMint must differ")
        return self


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class SolanaVenue:
    """A module's pool on Solana: its `MarketData` and the broker that trades it."""

    def __init__(self, params: SolanaStrategiesParams) -> None:
        from solders.pubkey import Pubkey

        from module_runtime.solana.pool import PoolConfig, SolanaMarket, SolanaPool
        from module_runtime.solana.rpc import SolanaRpc

        assert params.rpc_url and params.program_id and params.pool
        assert params.base_mint and params.quote_mint
        config = PoolConfig(
            params.base,
            params.quote,
            Pubkey.from_string(params.program_id),
            Pubkey.from_string(params.pool),
            Pubkey.from_string(params.base_mint),
            Pubkey.from_string(params.quote_mint),
        )
        self.pool = SolanaPool(SolanaRpc(params.rpc_url), config)
        self.market = SolanaMarket(self.pool)

    def broker(self, *, live: bool, wallet_key: str | None, clock: Clock) -> Broker:
        from module_runtime.solana.brokers import SolanaBroker, SolanaPaperBroker
        from module_runtime.solana.client import TxClient
        from module_runtime.solana.wallet import keypair_from_secret

        if not live:
            return SolanaPaperBroker(self.pool, clock=clock)
        if not wallet_key:
            raise ValueError("live mode needs the wallet key (spec.walletSecretRef)")
        client = TxClient(self.pool.rpc, keypair_from_secret(wallet_key))
        return SolanaBroker(self.pool, client, clock=clock)


class SolanaStrategiesModule(PriceBandModule):
    params_model = SolanaStrategiesParams

    @classmethod
    def solana_venue(cls, spec: TradingModuleSpec) -> SolanaVenue | None:
        """The module's pool when `strategy.rpcUrl` is set; None for the synthetic market.
        Raises `InvalidStrategyParams` for bad strategy fields."""
        params = cls.parse_params(spec.strategy)
        assert isinstance(params, SolanaStrategiesParams)
        if params.rpc_url is None:
            if spec.mode is Mode.LIVE:
                raise InvalidStrategyParams(
                    "invalid strategy parameters: strategy.rpcUrl: required in live mode"
                )
            return None
        return SolanaVenue(params)

    @property
    def sol(self) -> SolanaStrategiesParams:
        assert isinstance(self.params, SolanaStrategiesParams)
        return self.params

    def configure(self) -> None:
        super().configure()
        from module_runtime.solana.pool import SolanaMarket

        self.pool_market = self.market if isinstance(self.market, SolanaMarket) else None
        if self.sol.rpc_url is not None and self.pool_market is None:
            raise InvalidStrategyParams("strategy.rpcUrl needs the Solana pool market")

    def _entry(self, price: Decimal) -> Order | None:
        return self._exact(super()._entry(price))

    def exit_order(self, position: Position, price: Decimal) -> Order | None:
        return self._exact(super().exit_order(position, price))

    def _exact(self, order: Order | None) -> Order | None:
        """On a pool: min_out from the exact quote of the snapshot the price came from."""
        if order is None or self.pool_market is None:
            return order
        state = self.pool_market.pool.last
        if state is None:
            return None
        min_out = state.min_out(order.side, order.quantity, order.price, self.sol.slippage_percent)
        if min_out <= 0:
            log.info("order too small for the pool", extra={"module_name": self.name})
            return None
        return replace(order, min_out=min_out)

    async def on_stop(self) -> None:
        if self.pool_market is not None:
            await self.pool_market.close()

    @classmethod
    def runtime_parts(
        cls, spec: TradingModuleSpec, *, wallet_key: str | None, clock: Clock
    ) -> tuple[Any, Broker] | None:
        """(market, broker) for the runtime (module_runtime.cli), or None: synthetic."""
        venue = cls.solana_venue(spec)
        if venue is None:
            return None
        broker = venue.broker(live=spec.mode is Mode.LIVE, wallet_key=wallet_key, clock=clock)
        return venue.market, broker
