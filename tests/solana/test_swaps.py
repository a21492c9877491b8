"""Swaps on the real Solana runtime (LiteSVM behind the JSON-RPC stand-in): the pool program
in contracts/solana/cpamm.c, CPI into the real SPL Token program, orders through the one
order path (risk -> ledger intent -> broker -> ledger outcome)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from solders.keypair import Keypair

from module_runtime.chain.units import from_units, product, to_units
from module_runtime.clock import SystemClock
from module_runtime.ledger import InMemoryLedger
from module_runtime.order_path import OrderPath
from module_runtime.orders import Order, OrderStatus, Side
from module_runtime.risk import RiskLimits
from module_runtime.solana import amm, spl
from module_runtime.solana.brokers import SolanaBroker, SolanaIntentResolver, SolanaPaperBroker
from module_runtime.solana.client import TxClient, order_memo
from module_runtime.solana.pool import SolanaPool

from .conftest import SOL, USDC, Market
from .pools import token_balance

D = Decimal


def limits(max_position: str = "10000") -> RiskLimits:
    return RiskLimits(
        allocation=D(50_000),
        max_position_size=D(max_position),
        max_daily_loss=D(5_000),
        max_drawdown_percent=D(50),
        stop_loss_percent=D(0),
        max_open_positions=5,
        max_leverage=D(1),
    )


def live(
    market: Market, max_position: str = "10000"
) -> tuple[OrderPath, SolanaBroker, InMemoryLedger]:
    pool = market.solana_pool()
    broker = SolanaBroker(pool, TxClient(pool.rpc, market.trader, poll_seconds=0.02))
    ledger = InMemoryLedger()
    path = OrderPath(broker=broker, ledger=ledger, limits=limits(max_position), clock=SystemClock())
    return path, broker, ledger


async def buy_order(pool: SolanaPool, usdc: str, slippage: str = "0.5") -> Order:
    """A buy of `usdc` worth of SOL at the pool's mid price, min_out from its exact quote."""
    state = await pool.state()
    price = state.mid_price()
    quantity = (D(usdc) / price).quantize(D("1E-9"))
    min_out = state.min_out(Side.BUY, quantity, price, D(slippage))
    return Order(
        venue="solana", side=Side.BUY, base="SOL", quote="USDC", quantity=quantity,
        price=price, min_out=min_out, created_at=datetime.now(UTC),
    )  # fmt: skip


async def balances(market: Market, owner: Keypair) -> tuple[int, int, int]:
    """(SOL-token units, USDC units, lamports) of `owner`."""
    c = market.config
    base = await token_balance(market.rpc, spl.associated_address(owner.pubkey(), c.base_mint))
    quote = await token_balance(market.rpc, spl.associated_address(owner.pubkey(), c.quote_mint))
    return base, quote, await market.rpc.balance(owner.pubkey())


async def test_live_swap_moves_balances_exactly_as_the_ledger(market: Market) -> None:
    path, broker, ledger = live(market)
    before = await balances(market, market.trader)
    order = await buy_order(broker.pool, "1500")
    fill = await path.submit(order)
    assert fill.status is OrderStatus.FILLED, fill
    after = await balances(market, market.trader)
    recorded = ledger.outcome(order.order_id)
    assert recorded == fill
    assert fill.tx_hash is not None
    # base received, quote paid (price x quantity + pool fee) and the network fee, to the unit
    assert after[0] - before[0] == to_units(fill.quantity, 9)
    paid = before[1] - after[1]
    assert paid == to_units(D(1500), 6)  # all of the order's quote went in
    assert abs(product(fill.quantity, fill.price) + fill.fee - from_units(paid, 6)) < D("1E-20")
    assert before[2] - after[2] == to_units(fill.gas_fee, 9) == 5000  # one signature
    # and the program paid exactly its formula at the pre-trade state
    record = await market.rpc.transaction(fill.tx_hash)
    assert record is not None and record["meta"]["err"] is None
    vault_base = await token_balance(market.rpc, market.pool.vault_a)
    assert vault_base == 1_000 * SOL - to_units(fill.quantity, 9)
    assert to_units(fill.quantity, 9) == amm.swap_out(paid, 150_000 * USDC, 1_000 * SOL, 30)


async def test_paper_fill_equals_the_live_fill_on_the_same_state(market: Market) -> None:
    path, broker, _ = live(market)
    paper = SolanaPaperBroker(market.solana_pool())
    order = await buy_order(broker.pool, "700")
    simulated = await paper.execute(order)
    signatures = await market.rpc.signatures_for(market.trader.pubkey())
    assert (
        await market.rpc.signatures_for(market.trader.pubkey()) == signatures
    )  # paper sent nothing
    real = await path.submit(order)
    assert real.status is simulated.status is OrderStatus.FILLED
    assert (real.quantity, real.price, real.fee) == (
        simulated.quantity,
        simulated.price,
        simulated.fee,
    )


async def test_price_move_between_quote_and_send_is_refused_by_min_out(market: Market) -> None:
    path, broker, ledger = live(market)
    order = await buy_order(broker.pool, "1500", slippage="0.5")
    # someone else buys first: the price rises more than the order's 0.5 % tolerance
    other_pool = market.solana_pool()
    move = await buy_order(other_pool, "20000", slippage="50")
    moved = await SolanaBroker(other_pool, market.other).execute(move)
    assert moved.status is OrderStatus.FILLED
    before = await balances(market, market.trader)
    fill = await path.submit(order)
    after = await balances(market, market.trader)
    assert fill.status is OrderStatus.REVERTED, fill
    assert fill.reason is not None and "min_out" in fill.reason
    assert ledger.outcome(order.order_id) == fill
    # it landed and failed in the program: the chain has it with the program's error
    assert fill.tx_hash is not None
    record = await market.rpc.transaction(fill.tx_hash)
    assert record is not None
    assert record["meta"]["err"] == {"InstructionError": [1, {"Custom": amm.ERR_SLIPPAGE}]}
    assert after[:2] == before[:2]  # no token moved
    assert before[2] - after[2] == to_units(fill.gas_fee, 9) == 5000  # the fee was paid
    assert path.state.positions == {}


async def test_risk_rejection_never_reaches_the_chain(market: Market) -> None:
    path, broker, ledger = live(market, max_position="1000")
    before = await market.rpc.signatures_for(market.trader.pubkey())
    order = await buy_order(broker.pool, "1500")  # over maxPositionSize 1000
    fill = await path.submit(order)
    assert fill.status is OrderStatus.REJECTED
    assert [r.order.order_id for r in ledger.rejections()] == [order.order_id]
    assert ledger.intents() == []  # no intent: nothing went to the broker
    assert await market.rpc.call("standinPendingSignatures") == []
    assert await market.rpc.signatures_for(market.trader.pubkey()) == before
    assert await broker.client.find_by_memo(order_memo(order.order_id)) is None


async def test_an_intent_never_sent_is_dropped_once_no_blockhash_can_land(market: Market) -> None:
    _, broker, _ = live(market)
    order = await buy_order(broker.pool, "100")
    resolver = SolanaIntentResolver(broker)
    assert await resolver.resolve(order, None) is None  # it might still land
    _, horizon = await market.rpc.latest_blockhash()
    while await market.rpc.block_height() <= horizon:  # noqa: ASYNC110 (polls the chain)
        await asyncio.sleep(0.1)
    settled = await resolver.resolve(order, None)
    assert settled is not None and settled.status is OrderStatus.DROPPED


async def test_a_transaction_that_never_landed_is_dropped_at_blockhash_expiry(
    market: Market,
) -> None:
    client = TxClient(market.rpc, Keypair(), poll_seconds=0.02)
    height = await market.rpc.block_height()
    outcome = await client.confirm(str(Keypair().sign_message(b"never sent")), height)
    assert outcome.status is OrderStatus.DROPPED
    assert outcome.reason == "blockhash expired: never landed"


async def test_an_expired_blockhash_is_refused_by_the_node(market: Market) -> None:
    from solders.message import Message
    from solders.transaction import Transaction

    from module_runtime.solana.client import memo_ix
    from module_runtime.solana.rpc import SolanaRpcError

    blockhash, last_valid = await market.rpc.latest_blockhash()
    while await market.rpc.block_height() <= last_valid:  # noqa: ASYNC110 (polls the chain)
        await asyncio.sleep(0.1)
    tx = Transaction([market.trader], Message([memo_ix("late")], market.trader.pubkey()), blockhash)
    with pytest.raises(SolanaRpcError) as refused:
        await market.rpc.send(tx, preflight=False)
    assert refused.value.blockhash_not_found
