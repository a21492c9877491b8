"""Swaps that go wrong say why; the broker maps orders to swaps and swaps to Fills."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from web3 import AsyncWeb3

from module_runtime.chain import Web3Broker
from module_runtime.orders import Order, OrderStatus, Side

from .conftest import Dex, balance, market_swap, rpc, trading, units, wait_in_pool

pytestmark = pytest.mark.anvil

BELOW_MIN = "Router: output below amountOutMin"


async def test_price_moved_before_sending_reverts_at_estimation(
    w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """Quote, then another account's swap moves the price: the estimate already reverts,
    so nothing is sent, no gas is paid and no nonce is used."""
    t = await trading(w3, dex.trader, dex.venue_a)
    amount_in = units(10, 18)
    stale = await t.pool.quote_exact_in("WETH", amount_in)
    await market_swap(w3, dex, dex.venue_a, dex.weth, units(5, 18))  # WETH gets cheaper
    nonce_before = await w3.eth.get_transaction_count(dex.trader.address)

    outcome = await t.router.swap_exact_in(t.pool, "WETH", amount_in, min_out=stale.amount_out)

    assert outcome.status == OrderStatus.REVERTED
    assert outcome.reason == BELOW_MIN
    assert outcome.tx_hash is None and outcome.fee_wei == 0
    assert outcome.approval_fee_wei > 0  # the approval before it did go through
    assert await w3.eth.get_transaction_count(dex.trader.address) == nonce_before + 1
    assert not t.sender.nonces.held and not t.sender.nonces.gaps


async def test_front_run_swap_reverts_on_chain_with_its_reason(
    w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """Our swap passes estimation, but a swap with a higher tip lands first in the same
    block: ours is mined reverted, pays gas, and the outcome carries the router's message."""
    t = await trading(w3, dex.trader, dex.venue_a, priority_fee_wei=10**9)
    await t.router.ensure_allowance(t.pool.base, 2**255)
    amount_in = units(10, 18)
    quote = await t.pool.quote_exact_in("WETH", amount_in)
    await rpc(w3, "anvil_setAutomine", False)

    ours = asyncio.create_task(
        t.router.swap_exact_in(t.pool, "WETH", amount_in, slippage_percent=Decimal("0.1"))
    )
    await wait_in_pool(w3, dex.trader.address, 1)
    await market_swap(
        w3, dex, dex.venue_a, dex.weth, units(5, 18), wait=False,
        maxPriorityFeePerGas=50 * 10**9, maxFeePerGas=100 * 10**9,
    )  # fmt: skip
    await wait_in_pool(w3, dex.other.address, 1)
    await rpc(w3, "evm_mine")
    outcome = await ours

    assert outcome.status == OrderStatus.REVERTED
    assert outcome.reason == BELOW_MIN
    assert outcome.quoted_out == quote.amount_out
    assert outcome.min_out == quote.amount_out * 999 // 1000
    assert outcome.tx_hash is not None and outcome.block_number is not None
    assert outcome.gas_used > 0 and outcome.fee_wei > 0
    assert (outcome.amount_in, outcome.amount_out) == (0, 0)
    receipt = await w3.eth.get_transaction_receipt(outcome.tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 0


async def test_expired_deadline_reverts(w3: AsyncWeb3[Any], dex: Dex) -> None:
    class StoppedClock:
        def now(self) -> datetime:
            return datetime.now(UTC) - timedelta(hours=1)

    t = await trading(w3, dex.trader, dex.venue_a, clock=StoppedClock())
    outcome = await t.router.swap_exact_in(t.pool, "USDC", units(100, 6))
    assert (outcome.status, outcome.reason) == (OrderStatus.REVERTED, "Router: expired")


async def test_swap_too_small_for_one_unit_out_reverts(w3: AsyncWeb3[Any], dex: Dex) -> None:
    t = await trading(w3, dex.trader, dex.venue_a)
    outcome = await t.router.swap_exact_in(t.pool, "WETH", 1000)  # 1000 wei -> 0 USDC units
    assert (outcome.status, outcome.reason) == (
        OrderStatus.REVERTED,
        "Pair: insufficient output amount",
    )


async def broker_for(w3: AsyncWeb3[Any], dex: Dex) -> Web3Broker:
    a = await trading(w3, dex.trader, dex.venue_a)
    return Web3Broker(a.router, [a.pool], name="dex-a")


async def test_broker_buy_spends_the_notional_and_reports_the_fill(
    w3: AsyncWeb3[Any], dex: Dex
) -> None:
    broker = await broker_for(w3, dex)
    usdc_before = await balance(w3, dex.usdc, dex.trader.address)
    weth_before = await balance(w3, dex.weth, dex.trader.address)
    order = Order("dex-a", Side.BUY, "WETH", "USDC", Decimal(2), Decimal(3000))

    fill = await broker.execute(order)

    assert fill.status == OrderStatus.FILLED, fill.reason
    spent = usdc_before - await balance(w3, dex.usdc, dex.trader.address)
    received = await balance(w3, dex.weth, dex.trader.address) - weth_before
    assert spent == units(6000, 6)
    assert fill.quantity == Decimal(received).scaleb(-18)
    assert fill.fee == Decimal(18)  # 0.3% of 6000 USDC
    assert abs(fill.quantity * fill.price + fill.fee - Decimal(6000)) < Decimal("1E-24")
    assert Decimal(3000) < fill.price < Decimal(3100)  # fee-exclusive, with price impact
    assert fill.tx_hash is not None and fill.gas_fee > 0  # approval + swap, in ETH


async def test_broker_sell_and_min_out(w3: AsyncWeb3[Any], dex: Dex) -> None:
    broker = await broker_for(w3, dex)
    pool = broker.pools[("WETH", "USDC")]
    quote = await pool.quote_exact_in("WETH", Decimal(1))

    too_greedy = Order(
        "dex-a", Side.SELL, "WETH", "USDC", Decimal(1), Decimal(3000),
        min_out=quote.amount_out_decimal + Decimal("0.000001"),
    )  # fmt: skip
    refused = await broker.execute(too_greedy)
    assert (refused.status, refused.reason) == (OrderStatus.REVERTED, BELOW_MIN)
    assert refused.quantity == 0

    order = Order(
        "dex-a", Side.SELL, "WETH", "USDC", Decimal(1), Decimal(3000),
        min_out=quote.amount_out_decimal,
    )  # fmt: skip
    fill = await broker.execute(order)
    assert fill.status == OrderStatus.FILLED, fill.reason
    assert fill.quantity == Decimal(1)
    assert fill.quantity * fill.price - fill.fee == quote.amount_out_decimal
    assert fill.price > Decimal("2961")  # fee-exclusive: above the 2961.47 received


async def test_broker_rejects_what_it_cannot_route(w3: AsyncWeb3[Any], dex: Dex) -> None:
    broker = await broker_for(w3, dex)
    unknown = await broker.execute(Order("dex-a", Side.BUY, "WBTC", "USDC", Decimal(1), Decimal(1)))
    assert unknown.status == OrderStatus.REJECTED and "no pool" in (unknown.reason or "")
    levered = Order("dex-a", Side.BUY, "WETH", "USDC", Decimal(1), Decimal(1), leverage=Decimal(2))
    assert (await broker.execute(levered)).status == OrderStatus.REJECTED
    dust = Order("dex-a", Side.SELL, "WETH", "USDC", Decimal("1E-19"), Decimal(3000))
    assert "rounds to 0" in ((await broker.execute(dust)).reason or "")


async def test_broker_reports_an_unreachable_node_as_dropped(w3: AsyncWeb3[Any], dex: Dex) -> None:
    """Nothing listens on the port: the order is not sent, and the broker says so."""
    from module_runtime.chain import RouterClient, Signer, TxSender, connect, disconnect

    from .anvil import free_port

    live = await trading(w3, dex.trader, dex.venue_a)
    dead = connect(f"http://127.0.0.1:{free_port()}", request_timeout=1)
    try:
        router = RouterClient(TxSender(dead, Signer(dex.trader.private_key)), dex.venue_a.router)
        broker = Web3Broker(router, [live.pool])
        order = Order("x", Side.SELL, "WETH", "USDC", Decimal(1), Decimal(3000), min_out=Decimal(1))
        fill = await broker.execute(order)
    finally:
        await disconnect(dead)
    assert fill.status == OrderStatus.DROPPED
    assert (fill.reason or "").startswith("not sent:")
