"""`Web3Broker`: the `Broker` that trades on an EVM DEX through the Router contract.

Swap semantics are those of `PaperBroker` (exact input), so paper and live agree:
- a buy spends `order.notional` quote (quantity x the price the strategy saw, rounded down
  to quote units) and receives whatever base that buys;
- a sell spends `order.quantity` base (rounded down to base units) and receives quote.
`order.min_out` (base for a buy, quote for a sell) becomes the router's `amountOutMin`
(rounded down); without it the broker quotes the pool and allows `default_slippage_percent`.

The Fill keeps PaperBroker's accounting identity, with the pool fee split out in quote units:
  buy:  quantity x price + fee = quote spent    (fee = quote_in x fee_bps / 10000)
  sell: quantity x price - fee = quote received (fee = the fee share of base_in, at price)
so `price` is the pool's fee-exclusive execution price. Gas is reported in `Fill.gas_fee`, in
native coin (ETH) - it is not a quote-unit amount, and a mined revert pays it too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from ..orders import Fill, Order, OrderStatus, Side
from .pool import FEE_DENOMINATOR, PoolClient
from .router import NowClock, RouterClient, SwapOutcome, WallClock
from .tx import UNKNOWN_OUTCOME_ERRORS
from .units import product, ratio

log = logging.getLogger(__name__)


class Web3Broker:
    """Executes orders as Router swaps, one pool per (base, quote) symbol pair."""

    def __init__(
        self,
        router: RouterClient,
        pools: Iterable[PoolClient],
        *,
        name: str = "web3",
        clock: NowClock | None = None,
    ) -> None:
        self.name = name
        self.router = router
        self.clock = clock or WallClock()
        self.pools: dict[tuple[str, str], PoolClient] = {}
        for pool in pools:
            self.pools[(pool.base.symbol.upper(), pool.quote.symbol.upper())] = pool

    def __repr__(self) -> str:
        return f"Web3Broker({self.name!r}, markets={sorted(self.pools)}, router={self.router!r})"

    def _refuse(self, order: Order, reason: str) -> Fill:
        return Fill(order.order_id, OrderStatus.REJECTED, reason=reason, at=self.clock.now())

    async def execute(self, order: Order) -> Fill:
        pool = self.pools.get((order.base.upper(), order.quote.upper()))
        if pool is None:
            return self._refuse(order, f"no pool for {order.base}/{order.quote} on {self.name}")
        if order.leverage != 1:
            return self._refuse(order, "spot swaps cannot be leveraged")
        if order.quantity <= 0 or order.price <= 0:
            return self._refuse(order, "quantity and price must be > 0")
        if order.side is Side.BUY:
            token_in, amount_in = (
                pool.quote,
                pool.quote.to_units(product(order.quantity, order.price)),
            )
            out_token = pool.base
        else:
            token_in, amount_in = pool.base, pool.base.to_units(order.quantity)
            out_token = pool.quote
        if amount_in == 0:
            return self._refuse(order, f"order rounds to 0 {token_in.symbol} units")
        min_out = None if order.min_out is None else out_token.to_units(order.min_out)
        try:
            outcome = await self.router.swap_exact_in(pool, token_in, amount_in, min_out=min_out)
        except UNKNOWN_OUTCOME_ERRORS as e:
            # TxSender handles every error after a send itself, so one that escapes means the
            # node failed us before anything was sent: nothing happened.
            log.warning("order %s not sent: %r", order.order_id, e)
            return Fill(
                order.order_id, OrderStatus.DROPPED, reason=f"not sent: {e!r}", at=self.clock.now()
            )
        log.info(
            "order %s %s: %s", order.order_id, outcome.status, outcome.reason or outcome.tx_hash
        )
        return self._fill(order, pool, outcome)

    def _fill(self, order: Order, pool: PoolClient, outcome: SwapOutcome) -> Fill:
        now = self.clock.now()
        if outcome.status != OrderStatus.FILLED:
            return Fill(
                order.order_id,
                outcome.status,
                tx_hash=outcome.tx_hash,
                reason=outcome.reason,
                at=now,
                gas_fee=outcome.fee_native,
            )
        return swap_fill(
            order,
            pool.fee_bps,
            outcome.amount_in_decimal,
            outcome.amount_out_decimal,
            at=now,
            tx_hash=outcome.tx_hash,
            gas_fee=outcome.fee_native,
        )


def swap_fill(
    order: Order,
    fee_bps: int,
    amount_in: Decimal,
    amount_out: Decimal,
    *,
    at: datetime,
    tx_hash: str | None = None,
    gas_fee: Decimal = Decimal(0),
) -> Fill:
    """A FILLED exact-input swap (module docstring): fee-exclusive price, pool fee in quote.
    Amounts in tokens: quote in and base out for a buy, base in and quote out for a sell."""
    fee_share = Decimal(fee_bps) / FEE_DENOMINATOR
    if order.side is Side.BUY:
        quote_in, base = amount_in, amount_out
        fee = product(quote_in, fee_share)
        price = ratio(quote_in - fee, base)
    else:
        base, quote_out = amount_in, amount_out
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
