"""Venues: what a module asks for (`VenueConfig`) and the pools that answer it.

A *venue* is one constant-product pool (a `Pair`) and, for live trading, the `Router` that
trades it, under a short name that orders carry in `Order.venue` ("pool", "a", "b").

- `ChainPool`: a venue on a node, read over JSON-RPC through `PoolClient`.
- `SimulatedPool`: an in-memory pool for synthetic runs (see "Synthetic venues").
- `EvmAddress`: the strategy parameter type for contract addresses.

Synthetic venues. With `marketData.source: synthetic`, modules that need pools get
`SimulatedPool`s: constant-product pools (1000 base tokens deep, 30 bps fee, 18/6 decimals)
that start at `startPrice`. At each `stepSeconds` step a simulated trader swaps each pool
(paying the fee, which stays in the pool) to one shared seeded random walk of the price
(`RandomWalkMarket`) times that pool's own seeded noise of up to +/- `volatilityPercent`.
The pools follow one market and differ by bounded noise, so spreads between them open and
close (there is no free drift to arbitrage forever) and LPs earn the simulated traders' fees.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from typing import Annotated, Any, Protocol

from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address, to_checksum_address
from pydantic import AfterValidator
from web3 import AsyncWeb3

from ..clock import Clock
from ..market_data import MarketData
from ..positions import ACCOUNTING_CONTEXT
from .pool import FEE_DENOMINATOR, PoolClient, Token, get_amount_out
from .pool_state import LP_DECIMALS, PoolState

# ---- strategy parameter type -------------------------------------------------------------

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def checksummed(value: str) -> str:
    """A contract address as EIP-55 text. All-lower or all-upper hex (no checksum to check)
    is accepted and normalized; mixed case must be a valid checksum."""
    if not _HEX_ADDRESS.match(value):
        raise ValueError("must be a 0x-prefixed address of 40 hex digits")
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(value):
        raise ValueError(
            f"bad EIP-55 checksum (the checksummed form is {to_checksum_address(value)})"
        )
    if int(digits, 16) == 0:
        raise ValueError("the zero address is not a contract")
    return str(to_checksum_address(value))


EvmAddress = Annotated[str, AfterValidator(checksummed)]


# ---- venues and snapshots ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """What a module asks for: a pool trading `base`/`quote` (symbols), and its router."""

    name: str
    base: str
    quote: str
    pool: str | None = None  # Pair address (source evm)
    router: str | None = None  # Router address (live mode)
    deadline_seconds: int = 120

    @property
    def lp_symbol(self) -> str:
        return f"{self.base}-{self.quote}-LP"


class PoolVenue(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def config(self) -> VenueConfig: ...

    async def state(self) -> PoolState: ...


class ChainPool:
    """A venue on an EVM node. The pair's tokens and fee are read once, on first use."""

    def __init__(self, w3: AsyncWeb3[Any], config: VenueConfig) -> None:
        if config.pool is None:
            raise ValueError(f"venue {config.name}: no pool address")
        self.w3 = w3
        self._config = config
        self._client: PoolClient | None = None
        self._lp: Token | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ChainPool({self._config.name!r}, pool={self._config.pool})"

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def config(self) -> VenueConfig:
        return self._config

    async def client(self) -> PoolClient:
        async with self._lock:
            if self._client is None:
                assert self._config.pool is not None
                pool = await PoolClient.load(self.w3, self._config.pool, base=self._config.base)
                if pool.quote.symbol.upper() != self._config.quote.upper():
                    raise ValueError(
                        f"pool {pool.address} trades {pool.base.symbol}/{pool.quote.symbol}, "
                        f"not {self._config.base}/{self._config.quote}"
                    )
                self._lp = Token(pool.address, f"{self._config.lp_symbol}", LP_DECIMALS)
                self._client = pool
            return self._client

    async def lp_token(self) -> Token:
        await self.client()
        assert self._lp is not None
        return self._lp

    async def state(self) -> PoolState:
        """Reserves and LP supply read at one pinned block."""
        pool = await self.client()
        block = int(await self.w3.eth.block_number)
        reserves = await pool.reserves(block)
        supply = int(await pool.contract.functions.totalSupply().call(block_identifier=block))
        base_reserve, quote_reserve = pool.oriented(reserves, pool.base)
        return PoolState(
            venue=self.name,
            base=pool.base,
            quote=pool.quote,
            lp=await self.lp_token(),
            fee_bps=pool.fee_bps,
            base_reserve=base_reserve,
            quote_reserve=quote_reserve,
            total_supply=supply,
            block_number=block,
        )


def _fake_address(label: str) -> ChecksumAddress:
    return to_checksum_address("0x" + hashlib.sha256(label.encode()).hexdigest()[:40])


SIM_DEPTH = Decimal(1000)  # base tokens in a simulated pool at the start
SIM_FEE_BPS = 30
SIM_BASE_DECIMALS = 18
SIM_QUOTE_DECIMALS = 6
_NOISE_RESOLUTION = 10_000


class SimulatedPool:
    """An in-memory constant-product pool that follows a reference price (module docstring,
    "Synthetic venues"). Deterministic for a seed; advances with the clock when read."""

    def __init__(
        self,
        config: VenueConfig,
        *,
        reference: MarketData,
        clock: Clock,
        step: timedelta,
        seed: int,
        start_price: Decimal,
        noise_percent: Decimal,
        depth: Decimal = SIM_DEPTH,
        fee_bps: int = SIM_FEE_BPS,
    ) -> None:
        if start_price <= 0 or depth <= 0:
            raise ValueError("start_price and depth must be positive")
        self._config = config
        self._reference = reference
        self._clock = clock
        self._step = step
        self._seed = seed
        self._noise = noise_percent / 100
        self.fee_bps = fee_bps
        self.base = Token(
            _fake_address(f"{config.name}/{config.base}"), config.base, SIM_BASE_DECIMALS
        )
        self.quote = Token(
            _fake_address(f"{config.name}/{config.quote}"), config.quote, SIM_QUOTE_DECIMALS
        )
        self.lp = Token(_fake_address(f"{config.name}/lp"), config.lp_symbol, LP_DECIMALS)
        self.base_reserve = self.base.to_units(depth)
        self.quote_reserve = self.quote.to_units(depth * start_price)
        self.total_supply = math.isqrt(self.base_reserve * self.quote_reserve)
        self.swaps = 0
        self._start: datetime = clock.now()
        self._index = 0

    def __repr__(self) -> str:
        return f"SimulatedPool({self.name!r}, {self._config.base}/{self._config.quote})"

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def config(self) -> VenueConfig:
        return self._config

    async def state(self) -> PoolState:
        index = max(0, (self._clock.now() - self._start) // self._step)
        if index > self._index:
            self._index = index
            reference = await self._reference.price(self._config.base, self._config.quote)
            self._trade_toward(reference * (1 + self._draw(index)))
        return PoolState(
            venue=self.name,
            base=self.base,
            quote=self.quote,
            lp=self.lp,
            fee_bps=self.fee_bps,
            base_reserve=self.base_reserve,
            quote_reserve=self.quote_reserve,
            total_supply=self.total_supply,
            block_number=self._index,
        )

    def _draw(self, index: int) -> Decimal:
        """This pool's noise at step `index`, uniform in [-noise, +noise]."""
        draw = random.Random(f"{self._seed}/{self.name}/{index}").randint(
            -_NOISE_RESOLUTION, _NOISE_RESOLUTION
        )
        return self._noise * Decimal(draw) / _NOISE_RESOLUTION

    def _trade_toward(self, target: Decimal) -> None:
        """A simulated trader's exact-input swap that moves the mid price to about `target`."""
        with localcontext(ACCOUNTING_CONTEXT):
            scale = Decimal(10) ** (self.quote.decimals - self.base.decimals)
            target_units = target * scale  # quote units per base unit
            k = Decimal(self.base_reserve) * Decimal(self.quote_reserve)
            keep = Decimal(FEE_DENOMINATOR - self.fee_bps) / FEE_DENOMINATOR
            new_base = (k / target_units).sqrt()
            if new_base > self.base_reserve:  # sell base: the price falls
                amount_in = int((new_base - self.base_reserve) / keep)
                if amount_in <= 0:
                    return
                out = get_amount_out(amount_in, self.base_reserve, self.quote_reserve, self.fee_bps)
                self.base_reserve += amount_in
                self.quote_reserve -= out
            else:  # buy base with quote: the price rises
                amount_in = int(((k * target_units).sqrt() - self.quote_reserve) / keep)
                if amount_in <= 0:
                    return
                out = get_amount_out(amount_in, self.quote_reserve, self.base_reserve, self.fee_bps)
                self.quote_reserve += amount_in
                self.base_reserve -= out
            self.swaps += 1
