"""`liquidity_provision` live: add in the band, earn other traders' fees, remove outside it;
the fees and impermanent loss it reports agree with what moved on chain."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from web3 import AsyncWeb3

from module_runtime.chain import PoolClient, to_units
from module_runtime.chain.pool_brokers import ChainBroker
from module_runtime.chain.pool_market import PoolMarket
from module_runtime.modules.liquidity import FEES_METRIC, IL_METRIC, LiquidityModule
from module_runtime.orders import OrderStatus, Side
from module_runtime.positions import ACCOUNTING_CONTEXT

from .anvil import AnvilNode
from .conftest import Dex, market_swap, units
from .modules_support import build_host, ledger_of, module_doc, ticks, token_balances

pytestmark = pytest.mark.anvil

D = Decimal
FEE = D("0.003")


def lp_doc(anvil: AnvilNode, dex: Dex) -> dict[str, Any]:
    strategy = {
        "base": "WETH",
        "quote": "USDC",
        "depositValue": "20000",
        "bandPercent": 3,
        "tickSeconds": 1,
        "pool": dex.venue_a.pair,
        "router": dex.venue_a.router,
        "slippagePercent": 0.5,
    }
    risk = {"maxPositionSize": "25000", "maxDailyLoss": "1500"}
    return module_doc(
        "liquidity_provision", strategy, rpc_url=anvil.rpc_url, risk=risk, allocation="50000"
    )


async def test_fees_and_impermanent_loss_match_the_chain(
    anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """(g) Add 20000 USDC of liquidity at 3000; another account trades back and forth (fees)
    and finally pushes the price out of the 3 % band; the module removes everything.

    - fees - IL == (withdrawn - held) at the exit price, with the token amounts taken from
      the wallet's balance changes (exact);
    - IL == held x (1 - 2 sqrt(r) / (1 + r)), r = exit / entry price (the textbook formula);
    - fees == our pool share x the fees the other account's swaps paid, valued at the exit
      price (to within the second-order effect of fees being re-traded);
    - the metrics show the same numbers; the ledger's realized PnL is value out - value in.
    """
    host = build_host(lp_doc(anvil, dex), dex.trader.private_key)
    assert isinstance(host.module, LiquidityModule) and isinstance(host.broker, ChainBroker)
    assert isinstance(host.module.market, PoolMarket)
    pool = await PoolClient.load(w3, dex.venue_a.pair, base="WETH")
    pair = pool.contract.functions
    supply0 = await pair.totalSupply().call()
    p0 = await pool.mid_price()
    weth0, usdc0 = await token_balances(w3, dex, dex.trader.address)
    try:
        await ticks(host)  # 3000 is in the band: add
        weth1, usdc1 = await token_balances(w3, dex, dex.trader.address)
        lp = await pair.balanceOf(dex.trader.address).call()
        (position,) = host.order_path.positions()
        assert to_units(position.quantity, 18) == lp > 0
        assert await pair.totalSupply().call() == supply0 + lp

        fees_weth = fees_usdc = 0  # what the other account's swaps pay the pool
        for _ in range(4):  # back and forth inside the band
            await market_swap(w3, dex, dex.venue_a, dex.weth, units("0.5", 18))
            await market_swap(w3, dex, dex.venue_a, dex.usdc, units(1500, 6))
            fees_weth += units("0.5", 18) * 30 // 10_000
            fees_usdc += units(1500, 6) * 30 // 10_000
            await ticks(host)
            assert host.order_path.positions(), "removed while in the band"
        await market_swap(w3, dex, dex.venue_a, dex.weth, units(4, 18))  # out of the band
        fees_weth += units(4, 18) * 30 // 10_000
        p1 = await pool.mid_price()
        assert p1 < p0 * D("0.97")
        await ticks(host)  # remove
        weth2, usdc2 = await token_balances(w3, dex, dex.trader.address)
        metrics = generate_latest(host.registry).decode()
    finally:
        await host.module.stop()

    assert await pair.balanceOf(dex.trader.address).call() == 0
    assert await pair.totalSupply().call() == supply0
    assert not host.order_path.positions()
    account = host.module.account
    fees, loss = account.fees_earned, account.impermanent_loss
    with localcontext(ACCOUNTING_CONTEXT):
        b0, q0 = pool.base.from_units(weth0 - weth1), pool.quote.from_units(usdc0 - usdc1)
        b1, q1 = pool.base.from_units(weth2 - weth1), pool.quote.from_units(usdc2 - usdc1)
        held, withdrawn = b0 * p1 + q0, b1 * p1 + q1
        assert abs((fees - loss) - (withdrawn - held)) < D("1E-20")

        r = p1 / p0
        assert abs(loss - held * (1 - 2 * r.sqrt() / (1 + r))) < D("1E-6")
        assert loss > 0

        share = D(lp) / D(supply0 + lp)
        paid = share * (pool.base.from_units(fees_weth) * p1 + pool.quote.from_units(fees_usdc))
        assert fees > 0
        assert abs(fees - paid) / paid < D("0.01"), (fees, paid)

        ledger = ledger_of(host)
        add, remove = ledger.intents()
        assert (add.side, remove.side) == (Side.BUY, Side.SELL)
        assert add.base == remove.base == "WETH-USDC-LP"
        (trade,) = await host.ledger.closed_trades()
        deposited = b0 * p0 + q0  # nothing traded between our read of p0 and the add
        assert abs(trade.pnl - (withdrawn - deposited)) < D("1E-20")
        assert all(
            (f := ledger.outcome(o.order_id)) is not None and f.status is OrderStatus.FILLED
            for o in (add, remove)
        )

    gauges = {
        f.name: f.samples[0].value
        for f in text_string_to_metric_families(metrics)
        if f.name in (FEES_METRIC, IL_METRIC)
    }
    assert gauges[FEES_METRIC] == pytest.approx(float(fees), rel=1e-12)
    assert gauges[IL_METRIC] == pytest.approx(float(loss), rel=1e-12)
