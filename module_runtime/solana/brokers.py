"""Brokers for a Solana pool: `SolanaPaperBroker` (paper) and `SolanaBroker` (live).

Both size an order the same way (`PoolSnapshot.amount_in`) and book a fill with the
EVM pool brokers' identity (`chain.web3_broker.swap_fill`: fee-exclusive price, pool fee in
quote units), so a paper fill equals the live fill at the same pool state, to the unit.

Live: one transaction per order: create the wallet's associated token account for the
output mint if missing (idempotent), the program's Swap with `min_out` = the order's
min_out in units, and a Memo naming the order. Its outcome comes from the chain: FILLED
with the wallet's token account deltas (what was really paid and received), REVERTED
when the program refused (e.g. min_out: the price moved between quote and send; the fee
in lamports is still paid and booked), DROPPED when it never landed, SENT when not known
yet (the order path keeps it open; reconciliation settles it).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from solders.pubkey import Pubkey

from ..chain.units import from_units, to_units
from ..chain.web3_broker import swap_fill
from ..clock import Clock, SystemClock
from ..orders import Fill, Order, OrderStatus, Side
from . import amm, spl
from .client import LAMPORTS_PER_SOL, TxClient, TxOutcome, order_memo
from .pool import PoolSnapshot, SolanaPool

log = logging.getLogger(__name__)
SOL_DECIMALS = 9


def lamports_as_sol(lamports: int) -> Decimal:
    return from_units(lamports, SOL_DECIMALS)


def _refusal(order: Order, pool: SolanaPool) -> str | None:
    c = pool.config
    if (order.base.upper(), order.quote.upper()) != (c.base.upper(), c.quote.upper()):
        return f"no pool for {order.base}/{order.quote}"
    if order.leverage != 1:
        return "spot orders cannot be leveraged"
    if order.quantity <= 0 or order.price <= 0:
        return "quantity and price must be > 0"
    return None


def _min_out_units(order: Order, state: PoolSnapshot) -> int:
    if order.min_out is None:
        return 1  # never accept nothing
    return max(1, to_units(order.min_out, state.decimals(order.side)[1]))


class SolanaPaperBroker:
    """Paper: quotes from the real pool's state, never sends."""

    def __init__(self, pool: SolanaPool, *, name: str = "paper", clock: Clock | None = None):
        self.name = name
        self.pool = pool
        self._clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"SolanaPaperBroker({self.pool!r})"

    def _fail(self, order: Order, status: OrderStatus, reason: str) -> Fill:
        return Fill(order.order_id, status, reason=reason, at=self._clock.now())

    def intent_resolver(self, claimed: Any = None) -> Any:
        """For db.reconcile.resolver_for: paper sent nothing, an open intent is DROPPED."""
        from ..db.reconcile import PaperResolver

        return PaperResolver()

    async def execute(self, order: Order) -> Fill:
        refused = _refusal(order, self.pool)
        if refused:
            return self._fail(order, OrderStatus.REJECTED, refused)
        try:
            state = await self.pool.state()
        except Exception as error:
            return self._fail(order, OrderStatus.DROPPED, f"quote unavailable: {error!r}")
        amount_in = state.amount_in(order.side, order.quantity, order.price)
        if amount_in == 0:
            return self._fail(order, OrderStatus.REJECTED, "order rounds to 0 units")
        out = state.swap_out(order.side, amount_in)
        if out < _min_out_units(order, state):
            return self._fail(order, OrderStatus.REVERTED, amm.ERRORS[amm.ERR_SLIPPAGE])
        dec_in, dec_out = state.decimals(order.side)
        return swap_fill(
            order,
            state.fee_bps,
            from_units(amount_in, dec_in),
            from_units(out, dec_out),
            at=self._clock.now(),
        )


class SolanaBroker:
    """Live: signs and sends the program's Swap with the wallet keypair (`TxClient`)."""

    def __init__(
        self,
        pool: SolanaPool,
        client: TxClient,
        *,
        name: str = "solana",
        clock: Clock | None = None,
    ):
        self.name = name
        self.pool = pool
        self.client = client
        self._clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"SolanaBroker({self.pool!r}, {self.client!r})"

    def token_accounts(self, side: Side) -> tuple[Pubkey, Pubkey]:
        """The wallet's (source, destination) associated token accounts for `side`."""
        c = self.pool.config
        mint_in, mint_out = (
            (c.quote_mint, c.base_mint) if side is Side.BUY else (c.base_mint, c.quote_mint)
        )
        wallet = self.client.wallet
        return spl.associated_address(wallet, mint_in), spl.associated_address(wallet, mint_out)

    def _fail(self, order: Order, status: OrderStatus, reason: str, **extra: Any) -> Fill:
        return Fill(order.order_id, status, reason=reason, at=self._clock.now(), **extra)

    async def execute(self, order: Order) -> Fill:
        refused = _refusal(order, self.pool)
        if refused:
            return self._fail(order, OrderStatus.REJECTED, refused)
        try:
            state = await self.pool.state()
        except Exception as error:  # nothing was sent
            return self._fail(order, OrderStatus.DROPPED, f"not sent: {error!r}")
        amount_in = state.amount_in(order.side, order.quantity, order.price)
        if amount_in == 0:
            return self._fail(order, OrderStatus.REJECTED, "order rounds to 0 units")
        _, mint_out, a_to_b = state.swap_accounts(order.side)
        source, dest = self.token_accounts(order.side)
        wallet = self.client.wallet
        swap = amm.swap_ix(
            self.pool.config.program_id,
            state.account,
            user=wallet,
            source=source,
            dest=dest,
            a_to_b=a_to_b,
            amount_in=amount_in,
            min_out=_min_out_units(order, state),
        )
        create = spl.create_associated_account(wallet, wallet, mint_out)
        outcome = await self.client.submit([create, swap], memo=order_memo(order.order_id))
        log.info(
            "swap %s: %s",
            order.order_id,
            outcome.status.value,
            extra={"signature": outcome.signature, "fee_lamports": outcome.fee_lamports},
        )
        return self.fill(order, outcome, at=self._clock.now())

    def fill(self, order: Order, outcome: TxOutcome, *, at: datetime) -> Fill:
        """The order's Fill from a transaction outcome (live, or found by reconciliation)."""
        gas = lamports_as_sol(outcome.fee_lamports)
        if outcome.status is not OrderStatus.FILLED:
            reason = outcome.reason
            code = _custom_error(outcome.error)
            if code is not None:
                reason = f"program refused: {amm.ERRORS.get(code, f'error {code}')}"
            return Fill(
                order.order_id,
                outcome.status,
                tx_hash=outcome.signature,
                reason=reason,
                at=at,
                gas_fee=gas,
            )
        source, dest = self.token_accounts(order.side)
        paid = -outcome.token_deltas.get(str(source), 0)
        received = outcome.token_deltas.get(str(dest), 0)
        state = self.pool.last
        assert state is not None, "the pool state is read before a fill is booked"
        dec_in, dec_out = state.decimals(order.side)
        return swap_fill(
            order,
            state.fee_bps,
            from_units(paid, dec_in),
            from_units(received, dec_out),
            at=at,
            tx_hash=outcome.signature,
            gas_fee=gas,
        )

    def intent_resolver(self, claimed: Any = None) -> SolanaIntentResolver:
        """For db.reconcile.resolver_for: settles this broker's open intents from the chain."""
        return SolanaIntentResolver(self)


def _custom_error(error: Any) -> int | None:
    """The program's code in {"InstructionError": [i, {"Custom": n}]}, else None."""
    if isinstance(error, dict) and "InstructionError" in error:
        detail = error["InstructionError"][1]
        if isinstance(detail, dict) and "Custom" in detail:
            return int(detail["Custom"])
    return None


class SolanaIntentResolver:
    """Settles an open intent of a `SolanaBroker` from the chain, once.

    The transaction of an order carries the memo `tradeplane:<order id>`, so it is found
    among the wallet's transactions (`TxClient.find_by_memo`) whether or not its signature
    was recorded: found -> its outcome (FILLED with the chain's token deltas, or REVERTED).
    Not found: the runtime died before the send, or the transaction is still in flight. A
    transaction signed before this restart used a blockhash no newer than the latest one
    now, so once the chain's block height passes that blockhash's last valid height none
    can land any more: then (looked up once more) it is DROPPED. Until then the intent
    stays open (None), its notional reserved, and the supervisor asks again.
    """

    def __init__(self, broker: SolanaBroker) -> None:
        self.broker = broker
        self.horizons: dict[str, int] = {}

    async def resolve(self, order: Order, last: Fill | None) -> Fill | None:
        client = self.broker.client
        await self.broker.pool.state()  # decimals and fee for booking a found fill
        memo = order_memo(order.order_id)
        found = await client.find_by_memo(memo)
        if found is not None:
            return self.broker.fill(order, found, at=self.broker._clock.now())
        horizon = self.horizons.get(order.order_id)
        if horizon is None:
            _, horizon = await client.rpc.latest_blockhash()
            self.horizons[order.order_id] = horizon
            return None
        if await client.rpc.block_height() <= horizon:
            return None
        found = await client.find_by_memo(memo)
        if found is not None:
            return self.broker.fill(order, found, at=self.broker._clock.now())
        return Fill(
            order.order_id,
            OrderStatus.DROPPED,
            tx_hash=None if last is None else last.tx_hash,
            reason="no transaction for this order on chain, and none can land any more",
        )


__all__ = ["LAMPORTS_PER_SOL", "SolanaBroker", "SolanaIntentResolver", "SolanaPaperBroker"]
