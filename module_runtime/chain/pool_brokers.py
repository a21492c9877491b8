"""The brokers that trade a `PoolMarket`'s venues: `PoolPaperBroker` (paper) and
`ChainBroker` (live).

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

"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ..clock import Clock, SystemClock
from ..market_data import MarketDataUnavailable
from ..orders import Fill, Order, OrderStatus, Side
from .pool import Token
from .pool_market import LiquidityReceipt, PoolMarket
from .pool_state import PoolState
from .router import NATIVE_DECIMALS, RouterClient, transfers
from .tx import UNKNOWN_OUTCOME_ERRORS, TxOutcome, TxSender
from .units import from_units, ratio
from .venues import ChainPool
from .web3_broker import Web3Broker, swap_fill

log = logging.getLogger(__name__)

ZERO_ADDRESS = "0x" + "0" * 40
DEFAULT_SLIPPAGE_PERCENT = Decimal("0.5")


# ---- fills -------------------------------------------------------------------------------


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
        in_token, out_token = (
            (state.quote, state.base) if order.side is Side.BUY else (state.base, state.quote)
        )
        if order.min_out is not None and amount_out < out_token.to_units(order.min_out):
            return self._outcome(order, OrderStatus.REVERTED, "Router: output below amountOutMin")
        if amount_out == 0:
            return self._outcome(order, OrderStatus.REVERTED, "Pair: insufficient output amount")
        return swap_fill(
            order,
            state.fee_bps,
            in_token.from_units(amount_in),
            out_token.from_units(amount_out),
            at=self._clock.now(),
        )

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

    async def swapper(self, venue: ChainPool) -> Web3Broker:
        """The `Web3Broker` that swaps on `venue` (made on first use: reads the pool's
        tokens). Raises what the node raised when it cannot be read."""
        swapper = self._swappers.get(venue.name)
        if swapper is None:
            pool = await venue.client()
            swapper = Web3Broker(self.router(venue), [pool], name=venue.name, clock=self._clock)
            self._swappers[venue.name] = swapper
        return swapper

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
            try:
                swapper = await self.swapper(venue)
            except UNKNOWN_OUTCOME_ERRORS as error:
                return Fill(
                    order.order_id, OrderStatus.DROPPED, reason=f"not sent: {error!r}", at=now
                )
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

        # add: base and quote go to the pair, LP tokens are minted to us; remove: the reverse
        added = order.side is Side.BUY
        tokens = (mine, pair) if added else (pair, mine)
        lp = (ZERO_ADDRESS, mine) if added else (mine, pair)
        receipt = LiquidityReceipt(
            order.order_id,
            venue.name,
            added,
            moved(state.base, *tokens),
            moved(state.quote, *tokens),
            moved(state.lp, *lp),
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
