"""PoolClient against the real contracts: a quote is what the pool pays, to the wei."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from web3 import AsyncWeb3

from module_runtime.chain import PoolClient, get_amount_in
from module_runtime.orders import OrderStatus

from .conftest import Dex, balance, router_contract, trading, units

pytestmark = pytest.mark.anvil


async def test_pool_reads_tokens_decimals_and_price(w3: AsyncWeb3[Any], dex: Dex) -> None:
    pool = await PoolClient.load(w3, dex.venue_a.pair, base="WETH")
    assert (pool.base.symbol, pool.base.decimals) == ("WETH", 18)
    assert (pool.quote.symbol, pool.quote.decimals) == ("USDC", 6)
    assert pool.fee_bps == 30
    assert {pool.token0.address, pool.token1.address} == {dex.weth, dex.usdc}
    assert await pool.mid_price() == Decimal(3000)
    # Orientation is ours, not the pair's token order.
    inverted = await PoolClient.load(w3, dex.venue_a.pair, base=dex.usdc)
    assert inverted.base.symbol == "USDC"
    assert (await inverted.mid_price()).quantize(Decimal("1E-12")) == Decimal("0.000333333333")


@pytest.mark.parametrize(
    ("token_in", "amount"),
    [("WETH", "1"), ("WETH", "0.000001"), ("USDC", "3000"), ("USDC", "123456.789012")],
)
async def test_quote_equals_what_the_swap_pays(
    w3: AsyncWeb3[Any], dex: Dex, token_in: str, amount: str
) -> None:
    t = await trading(w3, dex.trader, dex.venue_a)
    tin = t.pool.token(token_in)
    amount_in = tin.to_units(Decimal(amount))
    quote = await t.pool.quote_exact_in(tin, amount_in)
    onchain = (
        await router_contract(w3, dex.venue_a.router)
        .functions.quoteExactIn(amount_in, tin.address, t.pool.other(tin).address)
        .call()
    )
    assert quote.amount_out == onchain
    before = await balance(w3, quote.token_out.address, dex.trader.address)

    # min_out == the quote: one wei less from the pool and the router would revert.
    outcome = await t.router.swap_exact_in(t.pool, tin, amount_in, min_out=quote.amount_out)

    assert outcome.status == OrderStatus.FILLED, outcome.reason
    assert outcome.amount_in == amount_in
    assert outcome.amount_out == quote.amount_out
    after = await balance(w3, quote.token_out.address, dex.trader.address)
    assert after - before == quote.amount_out
    assert quote.block_number is not None
    reserve_in, reserve_out = t.pool.oriented(await t.pool.reserves(quote.block_number), tin)
    assert t.pool.oriented(await t.pool.reserves(), tin) == (
        reserve_in + amount_in,
        reserve_out - quote.amount_out,
    )


async def test_arbitrage_between_venues_realizes_the_quoted_profit(
    w3: AsyncWeb3[Any], dex: Dex
) -> None:
    """WETH is cheaper on venue A (3000) than on B (3100): buy there, sell here."""
    a = await trading(w3, dex.trader, dex.venue_a)
    b = await trading(w3, dex.trader, dex.venue_b, nonces=a.sender.nonces)
    spend = units(1000, 6)
    leg1 = await a.pool.quote_exact_in("USDC", spend)
    leg2 = b.pool.quote_from(await b.pool.reserves(), "WETH", leg1.amount_out)
    assert leg2.amount_out > spend  # profitable after both fees
    usdc_before = await balance(w3, dex.usdc, dex.trader.address)

    buy = await a.router.swap_exact_in(a.pool, "USDC", spend, min_out=leg1.amount_out)
    sell = await b.router.swap_exact_in(b.pool, "WETH", buy.amount_out, min_out=leg2.amount_out)

    assert (buy.status, sell.status) == (OrderStatus.FILLED, OrderStatus.FILLED)
    profit = await balance(w3, dex.usdc, dex.trader.address) - usdc_before
    assert profit == leg2.amount_out - spend
    # The inverse question, "how much USDC buys exactly leg1.amount_out WETH", agrees.
    assert leg1.block_number is not None
    reserves = a.pool.oriented(await a.pool.reserves(leg1.block_number), a.pool.quote)
    assert get_amount_in(leg1.amount_out, *reserves, a.pool.fee_bps) <= spend
