"""A module's pool market and broker, as the runtime builds them (`build_market` /
`build_host`): the venues a module asks for, a market over chain or simulated pools, and the
paper or live broker that trades it.

The pieces: `venues` (`VenueConfig`, `ChainPool`, `SimulatedPool`), `pool_state`
(`PoolState`, the contracts' math), `pool_market` (`PoolMarket`, `LiquidityReceipt`) and
`pool_brokers` (`PoolPaperBroker`, `ChainBroker`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from ..clock import Clock
from ..orders import Broker
from ..synthetic_market import RandomWalkMarket
from .pool_brokers import ChainBroker, PoolPaperBroker
from .pool_market import PoolMarket
from .rpc import connect
from .tx import Signer, TxSender
from .venues import ChainPool, SimulatedPool, VenueConfig

# `db.reconcile` finds the brokers here (by module name, only once this module is imported).
__all__ = [
    "ChainBroker",
    "ChainPool",
    "PoolPaperBroker",
    "chain_market",
    "module_venues",
    "pool_broker",
    "simulated_market",
]


def module_venues(module_class: type[Any], spec: Any) -> list[VenueConfig]:
    """The venues a module class asks for (`venues(params, spec)`), [] if it has none.
    Raises `InvalidStrategyParams` for invalid or missing strategy fields."""
    venues = getattr(module_class, "venues", None)
    if venues is None:
        return []
    return list(venues(module_class.parse_params(spec.strategy), spec))


def chain_market(rpc_url: str, venues: Sequence[VenueConfig]) -> PoolMarket:
    """A market over pools on the node at `rpc_url` (connects lazily: nothing is read yet)."""
    w3 = connect(rpc_url)
    return PoolMarket([ChainPool(w3, venue) for venue in venues], connection=w3)


def simulated_market(
    venues: Sequence[VenueConfig],
    *,
    clock: Clock,
    seed: int,
    start_price: Decimal,
    volatility_percent: Decimal,
    step: timedelta,
) -> PoolMarket:
    """A market over `SimulatedPool`s that follow one seeded random walk."""
    reference = RandomWalkMarket(
        clock, seed=seed, start_price=start_price, volatility_percent=volatility_percent, step=step
    )
    return PoolMarket(
        [
            SimulatedPool(
                venue,
                reference=reference,
                clock=clock,
                step=step,
                seed=seed,
                start_price=start_price,
                noise_percent=volatility_percent,
            )
            for venue in venues
        ]
    )


def pool_broker(market: PoolMarket, *, live: bool, wallet_key: str | None, clock: Clock) -> Broker:
    """Paper: `PoolPaperBroker`. Live: `ChainBroker` signing with `wallet_key`."""
    if not live:
        return PoolPaperBroker(market, clock=clock)
    if market.w3 is None:
        raise ValueError(
            "live mode needs spec.marketData.source evm: simulated pools cannot be traded"
        )
    if not wallet_key:
        raise ValueError("live mode needs the wallet key (TRADEPLANE_WALLET_KEY)")
    return ChainBroker(market, TxSender(market.w3, Signer(wallet_key)), clock=clock)
