"""A constant-product pool on Solana as the runtime sees it: config, snapshots, quotes.

`SolanaPool.state()` reads the pool's vaults in one getMultipleAccounts call (one slot),
so a `PoolSnapshot` is a consistent view of the real pool account state; quotes use the
program's own integer formula (`amm.swap_out`), so a quote is to the unit what the
program pays at that state.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from solders.pubkey import Pubkey

from ..chain.units import from_units, product, ratio, to_units
from ..market_data import MarketDataUnavailable
from ..orders import Side
from . import amm, spl
from .rpc import SolanaRpc

HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    base: str
    quote: str
    program_id: Pubkey
    pool: Pubkey
    base_mint: Pubkey
    quote_mint: Pubkey


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    config: PoolConfig
    account: amm.PoolAccount
    base_decimals: int
    quote_decimals: int
    base_reserve: int
    quote_reserve: int
    slot: int | None = None

    @property
    def fee_bps(self) -> int:
        return self.account.fee_bps

    @property
    def base_is_a(self) -> bool:
        return self.account.mint_a == self.config.base_mint

    def mid_price(self) -> Decimal:
        if self.base_reserve == 0 or self.quote_reserve == 0:
            raise MarketDataUnavailable(f"pool {self.config.pool} has no liquidity")
        return ratio(
            from_units(self.quote_reserve, self.quote_decimals),
            from_units(self.base_reserve, self.base_decimals),
        )

    def decimals(self, side: Side) -> tuple[int, int]:
        """(decimals in, decimals out) of a swap for `side`."""
        if side is Side.BUY:
            return self.quote_decimals, self.base_decimals
        return self.base_decimals, self.quote_decimals

    def amount_in(self, side: Side, quantity: Decimal, price: Decimal) -> int:
        """Units spent: quote (quantity x price) for a buy, base for a sell; rounded down."""
        if side is Side.BUY:
            return to_units(product(quantity, price), self.quote_decimals)
        return to_units(quantity, self.base_decimals)

    def swap_out(self, side: Side, amount_in: int) -> int:
        reserve_in, reserve_out = (
            (self.quote_reserve, self.base_reserve)
            if side is Side.BUY
            else (self.base_reserve, self.quote_reserve)
        )
        return amm.swap_out(amount_in, reserve_in, reserve_out, self.fee_bps)

    def min_out(
        self, side: Side, quantity: Decimal, price: Decimal, slippage_percent: Decimal
    ) -> Decimal:
        """This snapshot's exact output for the order, less `slippage_percent` (tokens)."""
        out = self.swap_out(side, self.amount_in(side, quantity, price))
        least = int(Decimal(out) * (HUNDRED - slippage_percent) / HUNDRED)
        return from_units(least, self.decimals(side)[1])

    def swap_accounts(self, side: Side) -> tuple[Pubkey, Pubkey, bool]:
        """(mint in, mint out, a_to_b) for `side`."""
        if side is Side.BUY:
            return self.config.quote_mint, self.config.base_mint, not self.base_is_a
        return self.config.base_mint, self.config.quote_mint, self.base_is_a


class SolanaPool:
    def __init__(self, rpc: SolanaRpc, config: PoolConfig) -> None:
        self.rpc = rpc
        self.config = config
        self._static: tuple[amm.PoolAccount, int, int] | None = None
        self.last: PoolSnapshot | None = None

    def __repr__(self) -> str:
        return f"SolanaPool({self.config.base}/{self.config.quote} {self.config.pool})"

    async def _load(self) -> tuple[amm.PoolAccount, int, int]:
        if self._static is None:
            c = self.config
            pool, base, quote = await self.rpc.accounts([c.pool, c.base_mint, c.quote_mint])
            if pool is None or pool.owner != c.program_id:
                raise MarketDataUnavailable(f"{c.pool} is not a pool of program {c.program_id}")
            account = amm.PoolAccount.parse(c.pool, pool.data)
            if {account.mint_a, account.mint_b} != {c.base_mint, c.quote_mint}:
                raise MarketDataUnavailable(
                    f"pool {c.pool} does not trade {c.base_mint}/{c.quote_mint}"
                )
            if base is None or quote is None:
                raise MarketDataUnavailable("base or quote mint not found")
            self._static = (account, spl.mint_decimals(base.data), spl.mint_decimals(quote.data))
        return self._static

    async def state(self) -> PoolSnapshot:
        account, base_decimals, quote_decimals = await self._load()
        vault_a, vault_b = await self.rpc.accounts([account.vault_a, account.vault_b])
        if vault_a is None or vault_b is None:
            raise MarketDataUnavailable(f"vaults of pool {account.address} not found")
        a = spl.TokenAccount.parse(vault_a.data).amount
        b = spl.TokenAccount.parse(vault_b.data).amount
        base_is_a = account.mint_a == self.config.base_mint
        snapshot = PoolSnapshot(
            self.config,
            account,
            base_decimals,
            quote_decimals,
            base_reserve=a if base_is_a else b,
            quote_reserve=b if base_is_a else a,
        )
        self.last = snapshot
        return snapshot


class SolanaMarket:
    """`MarketData` over one pool: the mid price of a fresh snapshot."""

    def __init__(self, pool: SolanaPool) -> None:
        self.pool = pool

    async def price(self, base: str, quote: str) -> Decimal:
        c = self.pool.config
        if (base.upper(), quote.upper()) != (c.base.upper(), c.quote.upper()):
            raise MarketDataUnavailable(f"no pool for {base}/{quote}")
        try:
            state = await self.pool.state()
        except MarketDataUnavailable:
            raise
        except Exception as error:
            raise MarketDataUnavailable(f"pool state unavailable: {error!r}") from error
        return state.mid_price()

    async def close(self) -> None:
        await self.pool.rpc.close()
