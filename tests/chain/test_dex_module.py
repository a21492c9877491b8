"""`dex_trading` on a real pool: live round trips, slippage, risk limits and halts that
keep transactions off the chain, and a ledger that matches the wallet to the wei."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import generate_latest
from web3 import AsyncWeb3

from module_runtime.chain import PoolClient, apply_slippage, from_units, to_units
from module_runtime.chain.pool_brokers import ChainBroker, PoolPaperBroker
from module_runtime.chain.pool_market import PoolMarket
from module_runtime.modules.dex_trading import DexTradingModule
from module_runtime.orders import Order, OrderStatus, Side

from .anvil import AnvilNode
from .conftest import Dex, market_swap, rpc, units, wait_in_pool
from .modules_support import (
    approve_routers,
    build_host,
    ledger_of,
    ledger_token_flows,
    module_doc,
    move_to,
    signed_units,
    ticks,
    token_balances,
)

pytestmark = pytest.mark.anvil

D = Decimal
START = D(3000)
GWEI = 10**9


def dex_doc(anvil: AnvilNode, dex: Dex, *, mode: str = "live", **changes: Any) -> dict[str, Any]:
    strategy = {
        "base": "WETH",
        "quote": "USDC",
        "orderSize": "1000",
        "emaPeriod": 2,
        "bandPercent": 1,
        "tickSeconds": 1,
        "pool": dex.venue_a.pair,
        "router": dex.venue_a.router,
        "slippagePercent": 0.5,
        "deadlineSeconds": 60,
    }
    risk = changes.pop("risk", None)
    strategy.update(changes)
    return module_doc("dex_trading", strategy, rpc_url=anvil.rpc_url, mode=mode, risk=risk)


async def round_trip(w3: AsyncWeb3[Any], dex: Dex, host: Any) -> None:
    """Warm the EMA at 3000, dip 5 % (the module buys), recover to 3000 (it sells)."""
    await ticks(host, 2)
    await move_to(w3, dex, dex.venue_a, START * D("0.95"))
    await ticks(host)
    assert host.order_path.positions(), "expected a buy on the dip"
    await move_to(w3, dex, dex.venue_a, START)
    await ticks(host)
    assert not host.order_path.positions(), "expected the sell on the recovery"


async def test_live_round_trip_is_profitable(
    anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """(a) The price leaves the band (another account's swap) and comes back: the module buys
    and sells on chain, with a profit in the ledger and in the wallet."""
    host = build_host(dex_doc(anvil, dex), dex.trader.private_key)
    assert isinstance(host.module, DexTradingModule) and isinstance(host.broker, ChainBroker)
    weth0, usdc0 = await token_balances(w3, dex, dex.trader.address)
    nonce0 = await w3.eth.get_transaction_count(dex.trader.address)
    try:
        await round_trip(w3, dex, host)
    finally:
        await host.module.stop()

    (trade,) = await host.ledger.closed_trades()
    assert trade.pnl > 0 and trade.exit_price > trade.entry_price
    weth1, usdc1 = await token_balances(w3, dex, dex.trader.address)
    assert weth1 == weth0  # everything bought was sold
    assert usdc1 - usdc0 == signed_units(trade.pnl, 6) > 0
    fills = [ledger_of(host).outcome(o.order_id) for o in ledger_of(host).intents()]
    assert [f.status for f in fills if f] == [OrderStatus.FILLED] * 2
    assert all(f and f.tx_hash and f.gas_fee > 0 for f in fills)
    # approvals of USDC and WETH + two swaps, nothing else
    assert await w3.eth.get_transaction_count(dex.trader.address) == nonce0 + 4
    assert host.summary()["trades"] == 1 and host.health()["status"] == "ok"


async def test_ledger_matches_the_wallet_to_the_wei(
    anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """(e) Start balances + every filled order in the ledger == end balances, for both tokens:
    over two round trips, a third entry still open, and a sell the router refused."""
    host = build_host(dex_doc(anvil, dex), dex.trader.private_key)
    weth0, usdc0 = await token_balances(w3, dex, dex.trader.address)
    try:
        await round_trip(w3, dex, host)
        await round_trip(w3, dex, host)
        await move_to(w3, dex, dex.venue_a, START * D("0.95"))
        await ticks(host)
        (position,) = host.order_path.positions()
        greedy = Order(
            "web3", Side.SELL, "WETH", "USDC", position.quantity, START, min_out=D(10**6)
        )
        refused = await host.module.submit(greedy)
        assert (refused.status, refused.reason) == (
            OrderStatus.REVERTED,
            "Router: output below amountOutMin",
        )
    finally:
        await host.module.stop()

    weth1, usdc1 = await token_balances(w3, dex, dex.trader.address)
    weth_flow, usdc_flow = ledger_token_flows(ledger_of(host))
    assert weth0 + signed_units(weth_flow, 18) == weth1
    assert usdc0 + signed_units(usdc_flow, 6) == usdc1
    assert len(await host.ledger.closed_trades()) == 2


async def test_price_move_between_quote_and_execution(
    anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """(b) A swap lands ahead of ours in the same block. Within the slippage ours fills, short
    of the quote by no more than slippagePercent; beyond it, the router reverts on
    amountOutMin: the ledger records the revert, the tokens stay put, only gas is paid."""
    await approve_routers(w3, dex, dex.trader.address)
    results = []
    for front_run_usdc in (300, 3000):  # ~0.2 % and ~2 % up, against a 0.5 % slippage
        await move_to(w3, dex, dex.venue_a, START)
        host = build_host(dex_doc(anvil, dex), dex.trader.private_key)
        try:
            await ticks(host, 2)
            await move_to(w3, dex, dex.venue_a, START * D("0.95"))
            weth0, usdc0 = await token_balances(w3, dex, dex.trader.address)
            eth0 = await w3.eth.get_balance(dex.trader.address)
            quoted_at = await w3.eth.block_number
            await rpc(w3, "anvil_setAutomine", False)
            tick = asyncio.create_task(host.module.step())
            await wait_in_pool(w3, dex.trader.address, 1)
            await market_swap(
                w3, dex, dex.venue_a, dex.usdc, units(front_run_usdc, 6), wait=False,
                maxPriorityFeePerGas=50 * GWEI, maxFeePerGas=100 * GWEI,
            )  # fmt: skip
            await wait_in_pool(w3, dex.other.address, 1)
            await rpc(w3, "evm_mine")
            await tick
            await rpc(w3, "anvil_setAutomine", True)
            assert host.module.consecutive_errors == 0, host.module.last_error
        finally:
            await rpc(w3, "anvil_setAutomine", True)
            await host.module.stop()
        ledger = ledger_of(host)
        (order,) = ledger.intents()
        fill = ledger.outcome(order.order_id)
        assert fill is not None and order.min_out is not None
        pool = await PoolClient.load(w3, dex.venue_a.pair, base="WETH")
        spend = to_units(order.quantity * order.price, 6)
        quoted = (await pool.quote_exact_in("USDC", spend, quoted_at)).amount_out
        assert order.min_out == from_units(apply_slippage(quoted, D("0.5")), 18)
        weth1, usdc1 = await token_balances(w3, dex, dex.trader.address)
        eth1 = await w3.eth.get_balance(dex.trader.address)
        results.append(fill.status)
        if fill.status is OrderStatus.FILLED:
            received = weth1 - weth0
            assert received == to_units(fill.quantity, 18) < quoted
            assert (quoted - received) / D(quoted) <= D("0.005")
            assert usdc0 - usdc1 == spend
        else:
            assert fill.status is OrderStatus.REVERTED
            assert fill.reason == "Router: output below amountOutMin"
            assert fill.tx_hash is not None and fill.gas_fee > 0
            assert (weth1, usdc1) == (weth0, usdc0)  # no token moved
            assert eth0 - eth1 == to_units(fill.gas_fee, 18)  # gas, to the wei, is the loss
            assert not host.order_path.positions() and not host.order_path.problems()
    assert results == [OrderStatus.FILLED, OrderStatus.REVERTED]


async def test_order_over_max_position_size_never_reaches_the_chain(
    anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """(c) orderSize 3000 against maxPositionSize 2000: refused by the risk checks, no
    transaction from the trader (nonce unchanged), the refusal in the ledger and metrics."""
    host = build_host(dex_doc(anvil, dex, orderSize="3000"), dex.trader.private_key)
    nonce0 = await w3.eth.get_transaction_count(dex.trader.address)
    try:
        await ticks(host, 2)
        await move_to(w3, dex, dex.venue_a, START * D("0.95"))
        await ticks(host, 2)
    finally:
        await host.module.stop()
    assert await w3.eth.get_transaction_count(dex.trader.address) == nonce0
    ledger = ledger_of(host)
    assert ledger.intents() == []
    assert ledger.rejections() and all(
        r.reason.startswith("max_position_size:") for r in ledger.rejections()
    )
    metrics = generate_latest(host.registry).decode()
    assert "tradeplane_module_orders_rejected_total{" in metrics
    assert 'reason="max_position_size"' in metrics


async def test_risk_halt_stops_all_transactions(
    anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """(d) maxDailyLoss 12 with a 1 % stop: a dip is bought, the price keeps falling, the stop
    loss sells at a loss beyond 12 and the module halts. From then on the trader's nonce
    does not move, whatever the price does."""
    risk = {"maxDailyLoss": "12", "stopLossPercent": 1}
    host = build_host(dex_doc(anvil, dex, risk=risk), dex.trader.private_key)
    try:
        await ticks(host, 2)
        await move_to(w3, dex, dex.venue_a, START * D("0.95"))
        await ticks(host)
        assert host.order_path.positions()
        await move_to(w3, dex, dex.venue_a, START * D("0.92"))
        await ticks(host)  # the stop loss sells; the realized loss halts the module
        (trade,) = await host.ledger.closed_trades()
        assert trade.pnl < -12
        assert host.order_path.halted and host.health()["status"] == "halted"
        assert host.health()["halt"]["reason"] == "max_daily_loss"
        nonce = await w3.eth.get_transaction_count(dex.trader.address)
        for target in ("0.85", "0.95", "0.80", "1.0"):  # out of the band and back, twice
            await move_to(w3, dex, dex.venue_a, START * D(target))
            await ticks(host)
            assert await w3.eth.get_transaction_count(dex.trader.address) == nonce
        # and the order path itself refuses, should anything still try
        order = Order("web3", Side.BUY, "WETH", "USDC", D("0.1"), START)
        refused = await host.module.submit(order)
        assert refused.status is OrderStatus.REJECTED and (refused.reason or "").startswith(
            "halted"
        )
    finally:
        await host.module.stop()
    assert await w3.eth.get_transaction_count(dex.trader.address) == nonce
    assert not host.order_path.positions()


async def test_paper_fills_equal_live_fills(anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex) -> None:
    """The paper broker fills at what the chain then pays, to the unit, both ways."""
    host = build_host(dex_doc(anvil, dex), dex.trader.private_key)
    assert isinstance(host.broker, ChainBroker) and isinstance(host.module.market, PoolMarket)
    paper = PoolPaperBroker(host.module.market)
    try:
        for order in (
            Order("x", Side.BUY, "WETH", "USDC", D("0.4"), D("3001.123457")),
            Order("x", Side.SELL, "WETH", "USDC", D("0.123456789012345678"), START),
        ):
            simulated = await paper.execute(order)
            sent = await host.broker.execute(order)  # approval first: reserves unchanged
            assert sent.status is simulated.status is OrderStatus.FILLED
            assert (sent.quantity, sent.price, sent.fee) == (
                simulated.quantity,
                simulated.price,
                simulated.fee,
            )
            assert sent.tx_hash and simulated.tx_hash is None
    finally:
        await host.module.market.close()
