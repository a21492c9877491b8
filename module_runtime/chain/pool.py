"""Read a constant-product pool and quote it exactly, the way the contracts compute.

`get_amount_out` is the Router's integer formula (fee taken from the input), so a quote made
from the reserves of block N is, to the wei, what a swap mined right after block N pays.
Amounts stay integers (smallest units) until they are shown; `Token` converts with the
rounding rules of `units` (down for anything we send or demand).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_typing import ChecksumAddress
from web3 import AsyncWeb3
from web3.types import BlockIdentifier

from .artifacts import load_artifact
from .units import from_units, ratio, to_units

FEE_DENOMINATOR = 10_000


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    """Output of an exact-input swap; identical to `Router.getAmountOut`."""
    if amount_in <= 0:
        raise ValueError("amount_in must be positive")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError("pool has no liquidity")
    if not 0 <= fee_bps < FEE_DENOMINATOR:
        raise ValueError(f"fee_bps must be within [0, {FEE_DENOMINATOR}), got {fee_bps}")
    amount_in_with_fee = amount_in * (FEE_DENOMINATOR - fee_bps)
    return (amount_in_with_fee * reserve_out) // (reserve_in * FEE_DENOMINATOR + amount_in_with_fee)


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int) -> int:
    """Least input whose `get_amount_out` is at least `amount_out` (rounded up, as in V2)."""
    if amount_out <= 0:
        raise ValueError("amount_out must be positive")
    if reserve_in <= 0 or amount_out >= reserve_out:
        raise ValueError("pool cannot pay that much")
    numerator = reserve_in * amount_out * FEE_DENOMINATOR
    denominator = (reserve_out - amount_out) * (FEE_DENOMINATOR - fee_bps)
    return numerator // denominator + 1


@dataclass(frozen=True, slots=True)
class Token:
    """An ERC-20 as the runtime sees it: address, symbol and decimals (read once)."""

    address: ChecksumAddress
    symbol: str
    decimals: int

    def to_units(self, amount: Decimal) -> int:
        """Decimal tokens -> smallest units, rounded down (see `units`)."""
        return to_units(amount, self.decimals)

    def from_units(self, units: int) -> Decimal:
        return from_units(units, self.decimals)

    @classmethod
    async def load(cls, w3: AsyncWeb3[Any], address: str) -> Token:
        contract = w3.eth.contract(
            address=w3.to_checksum_address(address), abi=load_artifact("TestToken").abi
        )
        symbol = await contract.functions.symbol().call()
        decimals = await contract.functions.decimals().call()
        return cls(address=contract.address, symbol=str(symbol), decimals=int(decimals))


@dataclass(frozen=True, slots=True)
class Reserves:
    reserve0: int
    reserve1: int
    block_number: int | None = None  # the block they were read at, when known


@dataclass(frozen=True, slots=True)
class Quote:
    """An exact-input quote in smallest units, with the pool's view of price."""

    token_in: Token
    token_out: Token
    amount_in: int
    amount_out: int
    fee_bps: int
    price: Decimal  # quote per base implied by amount_in/amount_out (fee and impact included)
    block_number: int | None = None

    @property
    def amount_in_decimal(self) -> Decimal:
        return self.token_in.from_units(self.amount_in)

    @property
    def amount_out_decimal(self) -> Decimal:
        return self.token_out.from_units(self.amount_out)


class PoolClient:
    """One Pair contract: token order, decimals, fee, reserves and exact quotes.

    `base`/`quote` orient prices (quote per base) independently of the pair's token0/token1
    order, which is by address and so arbitrary. Construct with `await PoolClient.load(...)`.
    All reads are async (`AsyncWeb3`): the runtime's event loop must never block on RPC.
    """

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        address: str,
        token0: Token,
        token1: Token,
        fee_bps: int,
        base: Token,
    ) -> None:
        if base not in (token0, token1):
            raise ValueError(f"{base.symbol} is not a token of pool {address}")
        self.w3 = w3
        self.address = w3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact("Pair").abi)
        self.token0 = token0
        self.token1 = token1
        self.fee_bps = fee_bps
        self.base = base
        self.quote = token1 if base == token0 else token0

    def __repr__(self) -> str:
        return (
            f"PoolClient({self.base.symbol}/{self.quote.symbol} at {self.address}, "
            f"fee={self.fee_bps}bps)"
        )

    @classmethod
    async def load(cls, w3: AsyncWeb3[Any], address: str, base: str | None = None) -> PoolClient:
        """Read the pair's tokens and fee. `base` (address or symbol) defaults to token0."""
        pair = w3.eth.contract(
            address=w3.to_checksum_address(address), abi=load_artifact("Pair").abi
        )
        token0 = await Token.load(w3, await pair.functions.token0().call())
        token1 = await Token.load(w3, await pair.functions.token1().call())
        fee_bps = int(await pair.functions.feeBps().call())
        pool = cls(w3, address, token0, token1, fee_bps, token0)
        if base is not None:
            pool = cls(w3, address, token0, token1, fee_bps, pool.token(base))
        return pool

    def token(self, ref: str | Token) -> Token:
        """One of the pool's tokens, by `Token`, address (any case) or symbol."""
        if isinstance(ref, Token):
            ref = ref.address
        for token in (self.token0, self.token1):
            if ref.lower() in (token.address.lower(), token.symbol.lower()):
                return token
        raise KeyError(f"{ref} is not a token of {self!r}")

    def other(self, ref: str | Token) -> Token:
        return self.token1 if self.token(ref) == self.token0 else self.token0

    async def reserves(self, block_identifier: BlockIdentifier = "latest") -> Reserves:
        """Reserves at one block. With "latest" the block number is pinned first, so the
        reserves and the number always belong together."""
        if block_identifier == "latest":
            block_identifier = await self.w3.eth.block_number
        r0, r1, _ = await self.contract.functions.getReserves().call(
            block_identifier=block_identifier
        )
        number = block_identifier if isinstance(block_identifier, int) else None
        return Reserves(int(r0), int(r1), number)

    def oriented(self, reserves: Reserves, token_in: Token) -> tuple[int, int]:
        """(reserve_in, reserve_out) for a swap that sells `token_in`."""
        if token_in == self.token0:
            return reserves.reserve0, reserves.reserve1
        return reserves.reserve1, reserves.reserve0

    def quote_from(self, reserves: Reserves, token_in: str | Token, amount_in: int) -> Quote:
        """Exact quote against given reserves (pure: no RPC)."""
        tin = self.token(token_in)
        tout = self.other(tin)
        reserve_in, reserve_out = self.oriented(reserves, tin)
        amount_out = get_amount_out(amount_in, reserve_in, reserve_out, self.fee_bps)
        return Quote(
            token_in=tin,
            token_out=tout,
            amount_in=amount_in,
            amount_out=amount_out,
            fee_bps=self.fee_bps,
            price=self.execution_price(tin, amount_in, amount_out),
            block_number=reserves.block_number,
        )

    async def quote_exact_in(
        self,
        token_in: str | Token,
        amount_in: int | Decimal,
        block_identifier: BlockIdentifier = "latest",
    ) -> Quote:
        """What selling `amount_in` of `token_in` pays now. A `Decimal` amount is in tokens and
        is rounded down to units first; an `int` is already in units."""
        tin = self.token(token_in)
        units = tin.to_units(amount_in) if isinstance(amount_in, Decimal) else amount_in
        return self.quote_from(await self.reserves(block_identifier), tin, units)

    def execution_price(self, token_in: Token, amount_in: int, amount_out: int) -> Decimal:
        """Quote per base for a swap that moved these amounts (either direction)."""
        if token_in == self.base:
            base_units, quote_units = amount_in, amount_out
        else:
            base_units, quote_units = amount_out, amount_in
        if base_units == 0:
            return Decimal(0)
        return ratio(self.quote.from_units(quote_units), self.base.from_units(base_units))

    async def mid_price(self, block_identifier: BlockIdentifier = "latest") -> Decimal:
        """Quote per base from the reserves alone: no fee, no price impact."""
        reserves = await self.reserves(block_identifier)
        base_reserve, quote_reserve = self.oriented(reserves, self.base)
        if base_reserve == 0:
            raise ValueError("pool has no liquidity")
        return ratio(self.quote.from_units(quote_reserve), self.base.from_units(base_reserve))
