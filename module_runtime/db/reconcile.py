"""Settling open intents against the venue: what became of orders nobody saw finish.

An intent is *open* when the ledger has no final outcome for it: the runtime died between
the intent and the outcome, or the broker raised (outcome unknown). Before a restarted
runtime sends anything new, `reconcile_open_intents` asks an `IntentResolver` for the
venue's answer to each and records it, so the risk checks never run on a guess.

A resolver answers per order:
- a final `Fill` (FILLED, REVERTED, DROPPED, ...): recorded as the outcome;
- a non-final `Fill` (SENT with a tx hash) or `None`: the venue does not know yet; the
  intent stays open (its notional stays reserved) and is asked about again later.

Resolvers:
- `PaperResolver`: a paper fill only ever existed inside the process that made it, so an
  open paper intent is DROPPED: nothing executed anywhere.
- `Web3IntentResolver`: asks the chain. With a tx hash recorded (an outcome SENT), by the
  hash: receipt -> FILLED/REVERTED with the amounts of the receipt's Transfer logs; gone
  from the node -> DROPPED. Without one (the runtime died after broadcasting but before
  anything was recorded), by scanning the blocks since the intent for an unclaimed
  Router swap from our account with the order's exact amountIn, path (and amountOutMin
  when the order had one); not found while every transaction of ours the node knows is
  in the scanned blocks -> DROPPED (never broadcast; the nonce is reused by the next
  order, so it can never be mined later).
- `ChainIntentResolver`: the live pool modules' `ChainBroker` (dex_trading, arbitrage,
  liquidity_provision on `marketData.source: evm`). A swap is resolved as above by the
  `Web3IntentResolver` of its venue's `Web3Broker` (that venue's Router and pool). A
  liquidity order (add/remove on a venue's LP token) is not matched: it stays open,
  reported (logged once), its notional reserved, until a person settles it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from module_runtime.ledger import FINAL_STATUSES, Ledger
from module_runtime.orders import Fill, Order, OrderStatus, Side

if TYPE_CHECKING:
    from module_runtime.chain.market import ChainBroker
    from module_runtime.chain.pool import PoolClient
    from module_runtime.chain.web3_broker import Web3Broker

log = logging.getLogger(__name__)


class IntentResolver(Protocol):
    async def resolve(self, order: Order, last: Fill | None) -> Fill | None:
        """The venue's outcome for `order` (whose latest recorded non-final outcome is
        `last`), or None while the venue cannot tell yet."""
        ...


class InspectableLedger(Ledger, Protocol):
    def outcome(self, order_id: str) -> Fill | None: ...


@dataclass
class ReconcileReport:
    resolved: list[Fill] = field(default_factory=list)
    unresolved: list[Order] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def reconcile_open_intents(
    ledger: InspectableLedger,
    resolver: IntentResolver,
    *,
    orders: list[Order] | None = None,
) -> ReconcileReport:
    """Resolve and record every open intent (or just `orders`), oldest first."""
    report = ReconcileReport()
    for order in await ledger.open_intents() if orders is None else orders:
        last = ledger.outcome(order.order_id)
        try:
            fill = await resolver.resolve(order, last)
        except Exception as error:
            log.warning(
                "could not reconcile an open intent",
                exc_info=error,
                extra={"order_id": order.order_id},
            )
            report.errors.append(f"{order.order_id}: {error!r}")
            report.unresolved.append(order)
            continue
        if fill is None or fill.status not in FINAL_STATUSES:
            if fill is not None and (last is None or fill.tx_hash != last.tx_hash):
                await ledger.record_outcome(fill)  # what is known so far (e.g. the tx hash)
            report.unresolved.append(order)
            continue
        await ledger.record_outcome(fill)
        log.info(
            "open intent reconciled",
            extra={"order_id": order.order_id, "status": fill.status.value},
        )
        report.resolved.append(fill)
    return report


class PaperResolver:
    """Paper fills die with the process that simulated them: nothing executed."""

    async def resolve(self, order: Order, last: Fill | None) -> Fill | None:
        return Fill(
            order.order_id,
            OrderStatus.DROPPED,
            reason="paper venue: the runtime stopped before the simulated fill was recorded; "
            "nothing executed",
        )


class Web3IntentResolver:
    """Resolves open intents of a `Web3Broker` against the chain (see module docstring).

    `claimed()` returns the tx hashes (lower case) already recorded for other orders, so a
    scan never assigns one swap to two orders; `PgLedger.known_tx_hashes` fits.
    """

    def __init__(
        self,
        broker: Web3Broker,
        *,
        claimed: Callable[[], frozenset[str]] = frozenset,
        slack: timedelta = timedelta(minutes=2),
        max_blocks: int = 10_000,
    ) -> None:
        self.broker = broker
        self.w3 = broker.router.w3
        self.address = broker.router.sender.address.lower()
        self.router = broker.router.address.lower()
        self.claimed = claimed
        self.slack = slack
        self.max_blocks = max_blocks

    async def resolve(self, order: Order, last: Fill | None) -> Fill | None:
        pool = self.broker.pools.get((order.base.upper(), order.quote.upper()))
        if pool is None:
            return Fill(
                order.order_id,
                OrderStatus.REJECTED,
                reason=f"no pool for {order.base}/{order.quote} on {self.broker.name}",
            )
        if last is not None and last.tx_hash:
            return await self._by_hash(order, pool, last.tx_hash)
        return await self._by_scan(order, pool)

    async def _by_hash(self, order: Order, pool: PoolClient, tx_hash: str) -> Fill | None:
        from web3.exceptions import TransactionNotFound

        try:
            receipt = await self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            receipt = None
        if receipt is not None:
            return self._from_receipt(order, pool, receipt)
        try:
            await self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return Fill(
                order.order_id,
                OrderStatus.DROPPED,
                tx_hash=tx_hash,
                reason="transaction gone from the node without being mined",
            )
        return None  # still pending

    def _amounts(self, order: Order, pool: PoolClient) -> tuple[Any, Any, int, int | None]:
        from module_runtime.chain.units import product

        if order.side is Side.BUY:
            tin, tout = pool.quote, pool.base
            amount_in = tin.to_units(product(order.quantity, order.price))
        else:
            tin, tout = pool.base, pool.quote
            amount_in = tin.to_units(order.quantity)
        min_out = None if order.min_out is None else tout.to_units(order.min_out)
        return tin, tout, amount_in, min_out

    async def _by_scan(self, order: Order, pool: PoolClient) -> Fill | None:
        tin, tout, amount_in, min_out = self._amounts(order, pool)
        path = [str(tin.address).lower(), str(tout.address).lower()]
        claimed = self.claimed()
        latest = int(await self.w3.eth.block_number)
        first = await self._first_block_since(order.created_at - self.slack, latest)
        for number in range(first, latest + 1):
            block = await self.w3.eth.get_block(number, full_transactions=True)
            for tx in block["transactions"]:
                if isinstance(tx, bytes | str):  # a bare hash: not asked for
                    continue
                if str(tx["from"]).lower() != self.address:
                    continue
                if str(tx.get("to") or "").lower() != self.router:
                    continue
                tx_hash = _hex_hash(tx["hash"])
                if tx_hash in claimed:
                    continue
                try:
                    fn, args = self.broker.router.contract.decode_function_input(tx["input"])
                except ValueError:
                    continue
                if fn.fn_name != "swapExactTokensForTokens":
                    continue
                if int(args["amountIn"]) != amount_in:
                    continue
                if [str(a).lower() for a in args["path"]] != path:
                    continue
                if min_out is not None and int(args["amountOutMin"]) != min_out:
                    continue
                receipt = await self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
                return self._from_receipt(order, pool, receipt)
        # Every transaction of ours the node knows (mined or in its pool) must be in the
        # blocks just scanned, else one may be this order's: the count at the last scanned
        # block, not at "latest", which may have moved on while we scanned (a swap mined
        # meanwhile would be taken for "never broadcast" and its trade lost).
        account = self.w3.to_checksum_address(self.address)
        pending = int(await self.w3.eth.get_transaction_count(account, "pending"))
        scanned = int(await self.w3.eth.get_transaction_count(account, latest))
        if pending > scanned:
            return None  # something of ours is in the pool or newer: ask again later
        return Fill(
            order.order_id,
            OrderStatus.DROPPED,
            reason="no transaction for this order on chain or in the pool: never broadcast",
        )

    async def _first_block_since(self, moment: datetime, latest: int) -> int:
        """The first block with a timestamp at or after `moment` (within `max_blocks`)."""
        low, high = max(0, latest - self.max_blocks), latest
        target = int(moment.timestamp())
        while low < high:
            mid = (low + high) // 2
            block = await self.w3.eth.get_block(mid)
            if int(block["timestamp"]) < target:
                low = mid + 1
            else:
                high = mid
        return low

    def _from_receipt(self, order: Order, pool: PoolClient, receipt: Any) -> Fill:
        from module_runtime.chain.router import SwapOutcome, transfers

        tin, tout, _, min_out = self._amounts(order, pool)
        tx_hash = _hex_hash(receipt["transactionHash"])
        fee_wei = int(receipt["gasUsed"]) * int(receipt.get("effectiveGasPrice", 0))
        status = OrderStatus.FILLED if receipt["status"] == 1 else OrderStatus.REVERTED
        paid = received = 0
        if status is OrderStatus.FILLED:
            logs = tuple(dict(entry) for entry in receipt["logs"])
            me, pair = self.address, str(pool.address).lower()
            paid = sum(v for s, r, v in transfers(logs, tin.address) if (s, r) == (me, pair))
            received = sum(v for s, r, v in transfers(logs, tout.address) if (s, r) == (pair, me))
        outcome = SwapOutcome(
            status,
            tin,
            tout,
            min_out or 0,
            amount_in=paid,
            amount_out=received,
            tx_hash=tx_hash,
            reason=None if status is OrderStatus.FILLED else "reverted on chain (reconciled)",
            gas_used=int(receipt["gasUsed"]),
            fee_wei=fee_wei,
            block_number=int(receipt["blockNumber"]),
        )
        # the broker's own accounting, so a reconciled fill books exactly like a live one
        return self.broker._fill(order, pool, outcome)


class ChainIntentResolver:
    """Resolves open intents of a `ChainBroker` (see the module docstring): swaps by the
    `Web3IntentResolver` of the order's venue; liquidity orders stay open (reported)."""

    def __init__(
        self,
        broker: ChainBroker,
        *,
        claimed: Callable[[], frozenset[str]] = frozenset,
        **options: Any,
    ) -> None:
        self.broker = broker
        self.claimed = claimed
        self.options = options  # for each venue's Web3IntentResolver (slack, max_blocks)
        self._venues: dict[str, Web3IntentResolver] = {}
        self._reported: set[str] = set()

    async def resolve(self, order: Order, last: Fill | None) -> Fill | None:
        from module_runtime.chain.market import ChainPool

        venue, is_liquidity = self.broker.market.route(order)  # LookupError: left open
        if not isinstance(venue, ChainPool) or venue.config.router is None:
            raise LookupError(f"venue {venue.name} has no router: cannot look the order up")
        if is_liquidity:
            if order.order_id not in self._reported:
                self._reported.add(order.order_id)
                log.warning(
                    "an open liquidity order cannot be reconciled from the chain: left open",
                    extra={"order_id": order.order_id, "venue": venue.name},
                )
            return None
        resolver = self._venues.get(venue.name)
        if resolver is None:
            from module_runtime.chain.web3_broker import Web3Broker

            pool = await venue.client()  # the node's errors: logged, asked again next time
            # the venue's swaps as the broker sends them (its Router, sender and pool); used
            # to read the chain and to book a found swap exactly like a live one, never to send
            swaps = Web3Broker(self.broker.router(venue), [pool], name=venue.name)
            resolver = Web3IntentResolver(swaps, claimed=self.claimed, **self.options)
            self._venues[venue.name] = resolver
        return await resolver.resolve(order, last)


def _hex_hash(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = str(value).lower()
    return text if text.startswith("0x") else "0x" + text


def resolver_for(broker: object, claimed: Callable[[], frozenset[str]]) -> IntentResolver | None:
    """The resolver for a runtime's broker: paper, web3, chain (pools), or None (left
    open, reported)."""
    from module_runtime.paper_broker import PaperBroker

    if isinstance(broker, PaperBroker):
        return PaperResolver()
    own = getattr(broker, "intent_resolver", None)  # a broker that knows its venue (solana)
    if own is not None:
        return own(claimed)  # type: ignore[no-any-return]
    import sys

    pools = sys.modules.get("module_runtime.chain.pool_brokers")  # imported iff in use
    if pools is not None and isinstance(broker, pools.PoolPaperBroker):
        return PaperResolver()  # paper on a real pool: nothing was ever sent
    if pools is not None and isinstance(broker, pools.ChainBroker):
        return ChainIntentResolver(broker, claimed=claimed)  # live on pools: per venue
    exchange = sys.modules.get("module_runtime.futures.exchange")
    if exchange is not None and isinstance(broker, exchange.ExchangeFuturesBroker):
        resolver: IntentResolver = exchange.ExchangeIntentResolver(broker)  # by client id
        return resolver
    paper = sys.modules.get("module_runtime.futures.paper")
    if paper is not None and isinstance(broker, paper.PaperFuturesBroker):
        return PaperResolver()
    chain = sys.modules.get("module_runtime.chain.web3_broker")
    if chain is not None and isinstance(broker, chain.Web3Broker):
        return Web3IntentResolver(broker, claimed=claimed)
    return None
