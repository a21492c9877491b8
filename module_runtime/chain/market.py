"""EVM venues for trading modules: pools as market data, and the brokers that trade them.

A *venue* is one constant-product pool (a `Pair`) and, for live trading, the `Router` that
trades it, under a short name that orders carry in `Order.venue` ("pool", "a", "b").

- `PoolState`: one consistent snapshot of a pool (reserves and LP supply read at one block)
  with the contracts' exact integer math: swap output (`Router.getAmountOut`), what an add
  mints and what a remove pays (`Router.addLiquidity`/`removeLiquidity`, `Pair.mint`/`burn`).
  Pure: no RPC.
- `ChainPool`: a venue on a node, read over JSON-RPC through `PoolClient`.
  `SimulatedPool`: an in-memory pool for synthetic runs (see "Synthetic venues").
- `PoolMarket`: the module's view of its venues; implements `MarketData`.
- `PoolPaperBroker` (paper) and `ChainBroker` (live) execute orders against those venues.

Which price. `PoolMarket.price(base, quote)` is the pool's *mid price*: quote reserve / base
reserve, in tokens (decimals applied) - fee-free and without price impact. Modules mark
positions and compare bands against it. What an order actually gets is the exact quote
(`PoolState.swap_out`), fee and impact included, which modules use for `min_out`. With several
venues trading one pair, `price()` answers from the first venue listed (arbitrage: pool A);
`state(name)` reads a named one. A venue's LP token ("WETH-USDC-LP") has a price too: the
value of one LP token (10**18 units) at the mid price, 2 x quote reserve / LP supply.

Paper fills equal live fills. `PoolPaperBroker` reads a fresh snapshot and computes what the
Router would pay with the same integer formula and the same rounding of the order to token
units as `Web3Broker`, and builds the Fill with `Web3Broker`'s identity (fee-exclusive price,
pool fee in quote units); so a paper fill is, to the unit, the live fill at that block. (It
is not a `PaperBroker` with a pool `QuoteSource`: that interface prices a *base quantity*
and charges a fee on the unrounded notional, while an exact-input swap's output depends on
the quote amount spent, rounded to token units.) Paper never moves the pool: the next quote
does not see our own paper trades.

Liquidity orders. Adding or removing liquidity is not a swap, but it commits capital, so it
goes through the same `OrderPath` (risk checks, ledger intent and outcome) as an order on the
venue's LP token (`VenueConfig.lp_symbol`, quoted in the pool's quote token):
- add = BUY `quantity` LP tokens at `price` = value of one LP token at the mid price, so the
  notional the risk checks size is the value deposited; `min_out` = least LP tokens minted;
- remove = SELL LP tokens, `min_out` = least value (in quote, at the mid price) paid out.
The Fill books LP tokens at the value of the tokens that moved (both at the mid price of the
snapshot, fee 0), so the ledger's realized PnL of an LP round trip is value out - value in.
The token amounts that moved are kept per order in `PoolMarket.receipts`
(`LiquidityReceipt`), for modules that account fees and impermanent loss. A paper add mints
*virtual* LP tokens (the pool's supply is not changed) valued at the pool's per-token value.

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
import logging
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Annotated, Any, Protocol

from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address, to_checksum_address
from pydantic import AfterValidator
from web3 import AsyncWeb3

from ..clock import Clock, SystemClock
from ..market_data import MarketData, MarketDataUnavailable
from ..orders import Broker, Fill, Order, OrderStatus, Side
from ..positions import ACCOUNTING_CONTEXT
from ..synthetic_market import RandomWalkMarket
from .pool import FEE_DENOMINATOR, PoolClient, Token, get_amount_out
from .router import NATIVE_DECIMALS, RouterClient, transfers
from .rpc import connect, disconnect
from .tx import UNKNOWN_OUTCOME_ERRORS, Signer, TxOutcome, TxSender
from .units import apply_slippage, from_units, product, ratio
from .web3_broker import Web3Broker

log = logging.getLogger(__name__)

LP_DECIMALS = 18  # Pair.decimals
ZERO_ADDRESS = "0x" + "0" * 40
DEFAULT_SLIPPAGE_PERCENT = Decimal("0.5")

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


@dataclass(frozen=True, slots=True)
class PoolState:
    """One pool at one moment, oriented base/quote, with the contracts' integer math."""

    venue: str
    base: Token
    quote: Token
    lp: Token
    fee_bps: int
    base_reserve: int
    quote_reserve: int
    total_supply: int
    block_number: int | None = None

    @property
    def reserves(self) -> tuple[int, int]:
        return (self.base_reserve, self.quote_reserve)

    @property
    def mid(self) -> Decimal:
        """Quote per base from the reserves: no fee, no price impact."""
        if self.base_reserve <= 0 or self.quote_reserve <= 0:
            raise MarketDataUnavailable(f"venue {self.venue} has no liquidity")
        return ratio(
            self.quote.from_units(self.quote_reserve), self.base.from_units(self.base_reserve)
        )

    @property
    def lp_price(self) -> Decimal:
        """Value of one LP token in quote at the mid price: 2 x quote reserve / supply."""
        if self.total_supply <= 0 or self.quote_reserve <= 0:
            raise MarketDataUnavailable(f"venue {self.venue} has no liquidity")
        return ratio(
            2 * self.quote.from_units(self.quote_reserve), self.lp.from_units(self.total_supply)
        )

    def value(self, base_amount: int, quote_amount: int) -> Decimal:
        """Quote value of token amounts (units) at the mid price."""
        with localcontext(ACCOUNTING_CONTEXT):
            return product(self.base.from_units(base_amount), self.mid) + self.quote.from_units(
                quote_amount
            )

    # ---- swaps -------------------------------------------------------------------------

    def amount_in(self, side: Side, quantity: Decimal, price: Decimal) -> int:
        """Units an order spends, rounded as `Web3Broker` rounds them: a buy spends
        quantity x price quote, a sell `quantity` base; both rounded down."""
        if side is Side.BUY:
            return self.quote.to_units(product(quantity, price))
        return self.base.to_units(quantity)

    def swap_out(self, side: Side, amount_in: int) -> int:
        """Exact output of an exact-input swap: base for a buy, quote for a sell."""
        if amount_in <= 0:
            return 0
        if side is Side.BUY:
            return get_amount_out(amount_in, self.quote_reserve, self.base_reserve, self.fee_bps)
        return get_amount_out(amount_in, self.base_reserve, self.quote_reserve, self.fee_bps)

    def min_out(
        self, side: Side, quantity: Decimal, price: Decimal, slippage_percent: Decimal
    ) -> Decimal:
        """The order's exact output here, less `slippage_percent`, rounded down: `min_out`."""
        out = self.swap_out(side, self.amount_in(side, quantity, price))
        token = self.base if side is Side.BUY else self.quote
        return token.from_units(apply_slippage(out, slippage_percent))

    # ---- liquidity ---------------------------------------------------------------------

    def add_amounts(self, liquidity: int) -> tuple[int, int]:
        """(base, quote) units to offer for `liquidity` LP units: pro rata, rounded up."""
        if self.total_supply <= 0:
            raise MarketDataUnavailable(f"venue {self.venue} has no liquidity to join")
        return (
            -(-liquidity * self.base_reserve // self.total_supply),
            -(-liquidity * self.quote_reserve // self.total_supply),
        )

    def mint(self, base_desired: int, quote_desired: int) -> tuple[int, int, int]:
        """(base used, quote used, LP minted) of `Router.addLiquidity` on this pool."""
        rb, rq, supply = self.base_reserve, self.quote_reserve, self.total_supply
        if rb <= 0 or rq <= 0 or supply <= 0:
            raise MarketDataUnavailable(f"venue {self.venue} has no liquidity to join")
        quote_optimal = base_desired * rq // rb
        if quote_optimal <= quote_desired:
            base_used, quote_used = base_desired, quote_optimal
        else:
            base_used, quote_used = quote_desired * rb // rq, quote_desired
        minted = min(base_used * supply // rb, quote_used * supply // rq)
        return base_used, quote_used, minted

    def burn(self, liquidity: int) -> tuple[int, int]:
        """(base, quote) units `Pair.burn` pays for `liquidity` LP units."""
        if self.total_supply <= 0:
            return (0, 0)
        return (
            liquidity * self.base_reserve // self.total_supply,
            liquidity * self.quote_reserve // self.total_supply,
        )


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


# ---- the module's market -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiquidityReceipt:
    """Token amounts (units) one liquidity order moved, and the snapshot it was priced at."""

    order_id: str
    venue: str
    added: bool
    base_amount: int  # deposited (add) or paid out (remove)
    quote_amount: int
    liquidity: int  # LP units minted (add) or burned (remove)
    state: PoolState = field(repr=False)
    tx_hash: str | None = None

    @property
    def value(self) -> Decimal:
        """The tokens' value in quote at the snapshot's mid price."""
        return self.state.value(self.base_amount, self.quote_amount)


class PoolMarket:
    """`MarketData` from pools (mid prices; see the module docstring), plus the snapshots,
    routing and liquidity receipts that modules and brokers share."""

    def __init__(
        self, venues: Sequence[PoolVenue], *, connection: AsyncWeb3[Any] | None = None
    ) -> None:
        if not venues:
            raise ValueError("a PoolMarket needs at least one venue")
        self.venues: dict[str, PoolVenue] = {}
        for venue in venues:
            if venue.name in self.venues:
                raise ValueError(f"two venues named {venue.name!r}")
            self.venues[venue.name] = venue
        self.w3 = connection
        self.receipts: dict[str, LiquidityReceipt] = {}
        self._last: dict[str, PoolState] = {}

    def __repr__(self) -> str:
        return f"PoolMarket({list(self.venues.values())!r})"

    def venue(self, name: str) -> PoolVenue:
        try:
            return self.venues[name]
        except KeyError:
            raise LookupError(f"no venue {name!r} (known: {', '.join(self.venues)})") from None

    async def state(self, name: str) -> PoolState:
        """A fresh snapshot of venue `name` (also kept as its `last_state`)."""
        state = await self.venue(name).state()
        self._last[name] = state
        return state

    def last_state(self, name: str) -> PoolState | None:
        """The snapshot `state()` or `price()` read last for venue `name`."""
        return self._last.get(name)

    async def price(self, base: str, quote: str) -> Decimal:
        """Mid price of `base` in `quote` at the first venue trading the pair (either way
        round), or the value of a venue's LP token."""
        pair = (base.upper(), quote.upper())
        for name, venue in self.venues.items():
            config = venue.config
            tokens = (config.base.upper(), config.quote.upper())
            if pair == tokens:
                return (await self.state(name)).mid
            if pair == tokens[::-1]:
                return ratio(Decimal(1), (await self.state(name)).mid)
            if base == config.lp_symbol and pair[1] == tokens[1]:
                return (await self.state(name)).lp_price
        raise MarketDataUnavailable(f"no venue trades {base}/{quote}")

    def route(self, order: Order) -> tuple[PoolVenue, bool]:
        """(venue, is a liquidity order) for `order`: the venue it names, else the only
        venue that trades its pair (several: the order must name one)."""
        named = self.venues.get(order.venue)
        candidates = [named] if named is not None else list(self.venues.values())
        found: list[tuple[PoolVenue, bool]] = []
        for venue in candidates:
            config = venue.config
            if order.quote.upper() != config.quote.upper():
                continue
            if order.base.upper() == config.base.upper():
                found.append((venue, False))
            elif order.base == config.lp_symbol:
                found.append((venue, True))
        where = f" at venue {order.venue!r}" if named is not None else ""
        if not found:
            raise LookupError(f"no venue trades {order.base}/{order.quote}{where}")
        if len(found) > 1:
            names = ", ".join(v.name for v, _ in found)
            raise LookupError(
                f"{len(found)} venues trade {order.base}/{order.quote} ({names}): "
                "the order must name one"
            )
        return found[0]

    async def close(self) -> None:
        """Close the node connection, if this market owns one."""
        if self.w3 is not None:
            await disconnect(self.w3)


# ---- fills -------------------------------------------------------------------------------


def swap_fill(
    order: Order,
    state: PoolState,
    amount_in: int,
    amount_out: int,
    *,
    at: datetime,
    tx_hash: str | None = None,
    gas_fee: Decimal = Decimal(0),
) -> Fill:
    """A FILLED swap as `Web3Broker` reports it: fee-exclusive price, pool fee in quote."""
    fee_share = Decimal(state.fee_bps) / FEE_DENOMINATOR
    if order.side is Side.BUY:
        quote_in, base = state.quote.from_units(amount_in), state.base.from_units(amount_out)
        fee = product(quote_in, fee_share)
        price = ratio(quote_in - fee, base)
    else:
        base, quote_out = state.base.from_units(amount_in), state.quote.from_units(amount_out)
        fee_base = product(base, fee_share)
        price = ratio(quote_out, base - fee_base)
        fee = product(fee_base, price)
    return Fill(
        order.order_id,
        OrderStatus.FILLED,
        quantity=base,
        price=price,
        fee=fee,
        tx_hash=tx_hash,
        at=at,
        gas_fee=gas_fee,
    )


def liquidity_fill(
    order: Order, receipt: LiquidityReceipt, *, at: datetime, gas_fee: Decimal = Decimal(0)
) -> Fill:
    """LP tokens booked at the value of the tokens that moved (module docstring)."""
    quantity = receipt.state.lp.from_units(receipt.liquidity)
    return Fill(
        order.order_id,
        OrderStatus.FILLED,
        quantity=quantity,
        price=ratio(receipt.value, quantity),
        tx_hash=receipt.tx_hash,
        at=at,
        gas_fee=gas_fee,
    )


def _tolerance(order: Order, expected: Decimal) -> Fraction:
    """The share of `expected` the order accepts: min_out / expected (at most 1)."""
    if order.min_out is None:
        return 1 - Fraction(DEFAULT_SLIPPAGE_PERCENT) / 100
    if expected <= 0:
        return Fraction(1)
    return min(Fraction(1), Fraction(order.min_out) / Fraction(expected))


def _precheck(order: Order, at: datetime) -> Fill | None:
    """A refusal for what no venue executes, else None."""
    reason = None
    if order.leverage != 1:
        reason = "spot orders cannot be leveraged"
    elif order.quantity <= 0 or order.price <= 0:
        reason = "quantity and price must be > 0"
    return (
        None if reason is None else Fill(order.order_id, OrderStatus.REJECTED, reason=reason, at=at)
    )


class PoolPaperBroker:
    """Paper fills at exactly what the venue's contracts would pay (module docstring)."""

    def __init__(self, market: PoolMarket, *, name: str = "paper", clock: Clock | None = None):
        self.name = name
        self.market = market
        self._clock = clock or SystemClock()
        self.executions = 0
        self.fills: list[Fill] = []

    def __repr__(self) -> str:
        return f"PoolPaperBroker({self.name!r}, {self.market!r})"

    async def execute(self, order: Order) -> Fill:
        self.executions += 1
        fill = await self._simulate(order)
        self.fills.append(fill)
        return fill

    def _outcome(self, order: Order, status: OrderStatus, reason: str) -> Fill:
        return Fill(order.order_id, status, reason=reason, at=self._clock.now())

    async def _simulate(self, order: Order) -> Fill:
        now = self._clock.now()
        try:
            venue, is_liquidity = self.market.route(order)
        except LookupError as error:
            return self._outcome(order, OrderStatus.REJECTED, str(error))
        refused = _precheck(order, now)
        if refused is not None:
            return refused
        try:
            state = await self.market.state(venue.name)
        except Exception as error:  # no snapshot: nothing executed
            log.warning("paper quote failed", extra={"order_id": order.order_id}, exc_info=True)
            return self._outcome(order, OrderStatus.DROPPED, f"quote unavailable: {error!r}")
        if is_liquidity:
            return self._liquidity(order, state)
        amount_in = state.amount_in(order.side, order.quantity, order.price)
        if amount_in == 0:
            return self._outcome(order, OrderStatus.REJECTED, "order rounds to 0 units")
        amount_out = state.swap_out(order.side, amount_in)
        out_token = state.base if order.side is Side.BUY else state.quote
        if order.min_out is not None and amount_out < out_token.to_units(order.min_out):
            return self._outcome(order, OrderStatus.REVERTED, "Router: output below amountOutMin")
        if amount_out == 0:
            return self._outcome(order, OrderStatus.REVERTED, "Pair: insufficient output amount")
        return swap_fill(order, state, amount_in, amount_out, at=self._clock.now())

    def _liquidity(self, order: Order, state: PoolState) -> Fill:
        liquidity = state.lp.to_units(order.quantity)
        if order.side is Side.BUY:
            try:
                base, quote, minted = state.mint(*state.add_amounts(liquidity))
            except MarketDataUnavailable as error:
                return self._outcome(order, OrderStatus.REVERTED, str(error))
            least = 0 if order.min_out is None else state.lp.to_units(order.min_out)
            if minted <= 0 or minted < least:
                return self._outcome(
                    order, OrderStatus.REVERTED, f"would mint {minted} LP units < min_out {least}"
                )
            receipt = LiquidityReceipt(
                order.order_id, state.venue, True, base, quote, minted, state
            )
        else:
            base, quote = state.burn(liquidity)
            if base <= 0 or quote <= 0:
                return self._outcome(
                    order, OrderStatus.REVERTED, "Pair: insufficient liquidity burned"
                )
            receipt = LiquidityReceipt(
                order.order_id, state.venue, False, base, quote, liquidity, state
            )
            if order.min_out is not None and receipt.value < order.min_out:
                return self._outcome(
                    order,
                    OrderStatus.REVERTED,
                    f"withdrawal worth {receipt.value} < min_out {order.min_out}",
                )
        self.market.receipts[order.order_id] = receipt
        return liquidity_fill(order, receipt, at=self._clock.now())


class ChainBroker:
    """Live: swaps through `Web3Broker` (one per venue), liquidity through the venue's
    Router; every transaction signed and nonced by the one `TxSender`."""

    def __init__(
        self,
        market: PoolMarket,
        sender: TxSender,
        *,
        name: str = "web3",
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.market = market
        self.sender = sender
        self._clock: Clock = clock or SystemClock()
        self._routers: dict[str, RouterClient] = {}
        self._swappers: dict[str, Web3Broker] = {}

    def __repr__(self) -> str:
        return f"ChainBroker({self.name!r}, {self.market!r}, sender={self.sender!r})"

    def router(self, venue: ChainPool) -> RouterClient:
        router = self._routers.get(venue.name)
        if router is None:
            assert venue.config.router is not None
            router = RouterClient(
                self.sender,
                venue.config.router,
                clock=self._clock,
                deadline_seconds=venue.config.deadline_seconds,
            )
            self._routers[venue.name] = router
        return router

    async def execute(self, order: Order) -> Fill:
        now = self._clock.now()
        try:
            venue, is_liquidity = self.market.route(order)
        except LookupError as error:
            return Fill(order.order_id, OrderStatus.REJECTED, reason=str(error), at=now)
        if not isinstance(venue, ChainPool) or venue.config.router is None:
            reason = f"venue {venue.name} has no router: live trading needs one"
            return Fill(order.order_id, OrderStatus.REJECTED, reason=reason, at=now)
        if not is_liquidity:
            swapper = self._swappers.get(venue.name)
            if swapper is None:
                try:
                    pool = await venue.client()
                except UNKNOWN_OUTCOME_ERRORS as error:
                    return Fill(
                        order.order_id, OrderStatus.DROPPED, reason=f"not sent: {error!r}", at=now
                    )
                swapper = Web3Broker(self.router(venue), [pool], name=venue.name, clock=self._clock)
                self._swappers[venue.name] = swapper
            return await swapper.execute(order)
        refused = _precheck(order, now)
        if refused is not None:
            return refused
        try:
            return await self._liquidity(order, venue)
        except UNKNOWN_OUTCOME_ERRORS as error:
            # TxSender reports everything after a send itself: this failed before sending.
            log.warning("liquidity order %s not sent: %r", order.order_id, error)
            return Fill(
                order.order_id,
                OrderStatus.DROPPED,
                reason=f"not sent: {error!r}",
                at=self._clock.now(),
            )

    async def _liquidity(self, order: Order, venue: ChainPool) -> Fill:
        router = self.router(venue)
        state = await self.market.state(venue.name)
        liquidity = state.lp.to_units(order.quantity)
        me = self.sender.address
        if order.side is Side.BUY:
            base_desired, quote_desired = state.add_amounts(liquidity)
            base_used, quote_used, minted = state.mint(base_desired, quote_desired)
            least = 0 if order.min_out is None else state.lp.to_units(order.min_out)
            if minted <= 0 or minted < least:
                reason = f"would mint {minted} LP units < min_out {least}"
                return Fill(
                    order.order_id, OrderStatus.REVERTED, reason=reason, at=self._clock.now()
                )
            tolerance = _tolerance(order, state.lp.from_units(minted))
            approvals = [(state.base, base_desired), (state.quote, quote_desired)]
            args: list[Any] = [
                state.base.address,
                state.quote.address,
                base_desired,
                quote_desired,
                math.floor(base_used * tolerance),
                math.floor(quote_used * tolerance),
                me,
                router.deadline(),
            ]
            function = "addLiquidity"
        else:
            base_expected, quote_expected = state.burn(liquidity)
            tolerance = _tolerance(order, state.value(base_expected, quote_expected))
            approvals = [(state.lp, liquidity)]
            args = [
                state.base.address,
                state.quote.address,
                liquidity,
                math.floor(base_expected * tolerance),
                math.floor(quote_expected * tolerance),
                me,
                router.deadline(),
            ]
            function = "removeLiquidity"
        gas_wei = 0
        for token, amount in approvals:
            approval = await router.ensure_allowance(token, amount)
            if approval is None:
                continue
            gas_wei += approval.fee_wei
            if approval.status != OrderStatus.FILLED:
                return self._failed(order, approval, gas_wei, f"approval failed: {approval.reason}")
        data = router.contract.encode_abi(function, args=args)
        outcome = await self.sender.send(router.address, data)
        gas_wei += outcome.fee_wei
        if outcome.status != OrderStatus.FILLED:
            return self._failed(order, outcome, gas_wei, outcome.reason)
        pair, mine = venue.config.pool, me.lower()
        assert pair is not None
        pair = pair.lower()

        def moved(token: Token, sender: str, receiver: str) -> int:
            return sum(
                v
                for s, r, v in transfers(outcome.logs, token.address)
                if (s, r) == (sender, receiver)
            )

        if order.side is Side.BUY:
            receipt = LiquidityReceipt(
                order.order_id,
                venue.name,
                True,
                moved(state.base, mine, pair),
                moved(state.quote, mine, pair),
                moved(state.lp, ZERO_ADDRESS, mine),
                state,
                outcome.tx_hash,
            )
        else:
            receipt = LiquidityReceipt(
                order.order_id,
                venue.name,
                False,
                moved(state.base, pair, mine),
                moved(state.quote, pair, mine),
                moved(state.lp, mine, pair),
                state,
                outcome.tx_hash,
            )
        self.market.receipts[order.order_id] = receipt
        log.info(
            "liquidity order %s %s in tx %s",
            order.order_id,
            "added" if receipt.added else "removed",
            outcome.tx_hash,
        )
        return liquidity_fill(order, receipt, at=self._clock.now(), gas_fee=_native(gas_wei))

    def _failed(self, order: Order, outcome: TxOutcome, gas_wei: int, reason: str | None) -> Fill:
        return Fill(
            order.order_id,
            outcome.status,
            tx_hash=outcome.tx_hash,
            reason=reason,
            at=self._clock.now(),
            gas_fee=_native(gas_wei),
        )


def _native(wei: int) -> Decimal:
    return from_units(wei, NATIVE_DECIMALS)


# ---- wiring (the runtime's build_market / build_host) ------------------------------------


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
