"""`arbitrage` live between the two venues: a spread made by a swap is captured for exactly
the ledger's realized PnL, and a failed second leg stays on the books until unwound."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from web3 import AsyncWeb3

from module_runtime import cli
from module_runtime.chain import to_units
from module_runtime.chain.market import pool_broker
from module_runtime.chain.pool_market import PoolMarket
from module_runtime.clock import SystemClock
from module_runtime.host import ModuleHost
from module_runtime.modules.arbitrage import ArbitrageModule
from module_runtime.orders import Broker, Fill, Order, OrderStatus, Side

from .anvil import AnvilNode
from .conftest import Dex, market_swap, units
from .modules_support import (
    build_host,
    ledger_of,
    mid,
    module_doc,
    move_to,
    runtime_config,
    signed_units,
    ticks,
    token_balances,
)

pytestmark = pytest.mark.anvil

D = Decimal


def arb_doc(anvil: AnvilNode, dex: Dex) -> dict[str, Any]:
    strategy = {
        "base": "WETH",
        "quote": "USDC",
        "orderSize": "2000",
        "minSpreadBps": 10,
        "tickSeconds": 1,
        "poolA": dex.venue_a.pair,
        "routerA": dex.venue_a.router,
        "poolB": dex.venue_b.pair,
        "routerB": dex.venue_b.router,
        "slippagePercent": 0.5,
    }
    return module_doc(
        "arbitrage",
        strategy,
        rpc_url=anvil.rpc_url,
        risk={"maxPositionSize": "5000"},
        allocation="20000",
    )


async def open_spread(w3: AsyncWeb3[Any], dex: Dex) -> None:
    """Pool B starts at 3100: bring it to A's 3000 first, then a swap makes A cheap."""
    await move_to(w3, dex, dex.venue_b, D(3000))
    await market_swap(w3, dex, dex.venue_a, dex.weth, units(2, 18))  # A to about 2883


async def test_spread_from_a_swap_is_captured(
    anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """(f) No trade while the pools agree; after another account's swap in pool A the module
    buys there and sells in B, and the wallet's USDC gain is the ledger's realized PnL."""
    await move_to(w3, dex, dex.venue_b, D(3000))
    host = build_host(arb_doc(anvil, dex), dex.trader.private_key)
    assert isinstance(host.module, ArbitrageModule)
    nonce0 = await w3.eth.get_transaction_count(dex.trader.address)
    try:
        await ticks(host)
        assert host.module.last_spread_bps is not None and host.module.last_spread_bps < 1
        assert await w3.eth.get_transaction_count(dex.trader.address) == nonce0  # nothing sent
        await market_swap(w3, dex, dex.venue_a, dex.weth, units(2, 18))
        spread_before = await mid(w3, dex.venue_b) / await mid(w3, dex.venue_a) - 1
        weth0, usdc0 = await token_balances(w3, dex, dex.trader.address)
        await ticks(host)
        spread_after = await mid(w3, dex.venue_b) / await mid(w3, dex.venue_a) - 1
        await ticks(host)  # the pools moved: another opportunity only if it still pays
    finally:
        await host.module.stop()

    weth1, usdc1 = await token_balances(w3, dex, dex.trader.address)
    trades = await host.ledger.closed_trades()
    assert host.module.arbitrages == len(trades) >= 1 and host.module.leg_failures == 0
    realized = sum((t.pnl for t in trades), D(0))
    assert realized > 0 and weth1 == weth0
    assert usdc1 - usdc0 == signed_units(realized, 6)
    first_leg = ledger_of(host).intents()[0]
    assert first_leg.venue == "a" and first_leg.side is Side.BUY
    assert first_leg.notional <= D(2000)  # orderSize caps the spend
    assert realized / first_leg.notional >= D(10) / 10_000  # minSpreadBps on what was spent
    assert D(0) <= spread_after < spread_before  # the trade closed (part of) the spread
    assert host.summary()["trades"] == len(trades)


class MoveAfterFirstLeg:
    """The real broker, plus a real swap by another account right after our first leg
    fills: pool B falls before the second leg is sent (as a competing trader would do)."""

    def __init__(self, inner: Broker, move: Callable[[], Awaitable[None]]) -> None:
        self.inner = inner
        self.name = inner.name
        self._move = move
        self.moved = False

    async def execute(self, order: Order) -> Fill:
        fill = await self.inner.execute(order)
        if order.side is Side.BUY and fill.status is OrderStatus.FILLED and not self.moved:
            self.moved = True
            await self._move()
        return fill


async def test_failed_second_leg_stays_open_and_is_unwound(
    anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """(f) Leg 2's pool moves past the slippage between the legs: leg 2 reverts (at gas
    estimation: no gas, no nonce), the WETH bought stays an open position in the ledger -
    equal to what the wallet holds - and the next tick sells it on the better pool. The
    realized PnL (a loss here) is again exactly the wallet's USDC change."""
    await open_spread(w3, dex)
    doc = arb_doc(anvil, dex)
    cfg = runtime_config(doc, dex.trader.private_key)
    clock = SystemClock()
    market = cli.build_market(cfg, clock)
    assert isinstance(market, PoolMarket)
    broker = MoveAfterFirstLeg(
        pool_broker(market, live=True, wallet_key=cfg.wallet_key, clock=clock),
        lambda: market_swap(w3, dex, dex.venue_b, dex.weth, units(6, 18)),
    )
    host = ModuleHost(
        cfg.module.spec, name="arb", namespace="test", market=market, clock=clock, broker=broker
    )
    assert isinstance(host.module, ArbitrageModule)
    weth0, usdc0 = await token_balances(w3, dex, dex.trader.address)
    try:
        await ticks(host)
        assert broker.moved and host.module.leg_failures == 1
        ledger = ledger_of(host)
        _, leg2 = ledger.intents()
        second = ledger.outcome(leg2.order_id)
        assert second is not None and second.status is OrderStatus.REVERTED
        assert second.reason == "Router: output below amountOutMin" and second.tx_hash is None
        (position,) = host.order_path.positions()
        weth_mid, usdc_mid = await token_balances(w3, dex, dex.trader.address)
        assert weth_mid - weth0 == to_units(position.quantity, 18) > 0
        assert usdc0 - usdc_mid == signed_units(position.cost, 6)
        assert await host.ledger.closed_trades() == []

        await ticks(host)  # unwinds
        assert host.module.unwinds == 1 and not host.order_path.positions()
        unwind = ledger.intents()[-1]
        assert unwind.side is Side.SELL and unwind.venue == "a"  # A pays more now
    finally:
        await host.module.stop()
    weth1, usdc1 = await token_balances(w3, dex, dex.trader.address)
    (trade,) = await host.ledger.closed_trades()
    assert weth1 == weth0
    assert usdc1 - usdc0 == signed_units(trade.pnl, 6)
    assert trade.pnl < 0  # the move against leg 2 is a loss, recorded as one
