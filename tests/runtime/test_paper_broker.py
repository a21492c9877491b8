"""PaperBroker: fill math with fee and slippage, min_out, quote failures, x*y=k quotes."""

from __future__ import annotations

from decimal import Decimal

from module_runtime.clock import ManualClock
from module_runtime.orders import OrderStatus, Side
from module_runtime.paper_broker import ConstantProductQuotes, PaperBroker, PriceQuotes

from .conftest import T0, MutablePrice, buy, sell

D = Decimal


def broker(price: MutablePrice, clock: ManualClock) -> PaperBroker:
    return PaperBroker(PriceQuotes(price), fee_bps=D(30), slippage_bps=D(10), clock=clock)


async def test_buy_spends_the_notional(clock: ManualClock) -> None:
    paper = broker(MutablePrice("100"), clock)
    fill = await paper.execute(buy("2", "100"))
    # spend 200, fee 0.3 % = 0.6, price 100 + 0.1 % = 100.1, base = 199.4 / 100.1
    assert fill.status is OrderStatus.FILLED
    assert (fill.price, fill.fee) == (D("100.1"), D("0.6"))
    assert fill.quantity == D("1.992007992007992007")  # rounded down to 18 decimals
    assert fill.at == T0 and paper.executions == 1


async def test_sell_receives_quote_less_fee(clock: ManualClock) -> None:
    fill = await broker(MutablePrice("100"), clock).execute(sell("2", "100"))
    # price 100 - 0.1 % = 99.9, gross 199.8, fee 0.5994
    assert (fill.quantity, fill.price, fill.fee) == (D(2), D("99.9"), D("0.5994"))


async def test_min_out(clock: ManualClock) -> None:
    paper = broker(MutablePrice("100"), clock)
    assert (await paper.execute(buy("2", "100", min_out=D("1.99")))).status is OrderStatus.FILLED
    refused = await paper.execute(buy("2", "100", min_out=D("1.995")))
    assert refused.status is OrderStatus.REVERTED and "min_out" in (refused.reason or "")
    assert refused.quantity == 0
    # sell: receives 199.2006
    assert (await paper.execute(sell("2", "100", min_out=D(199)))).status is OrderStatus.FILLED
    assert (await paper.execute(sell("2", "100", min_out=D(200)))).status is OrderStatus.REVERTED


async def test_quote_failure_drops_the_order(clock: ManualClock) -> None:
    async def broken(base: str, quote: str) -> Decimal:
        raise ConnectionError("feed down")

    fill = await PaperBroker(PriceQuotes(broken), clock=clock).execute(buy("1", "100"))
    assert fill.status is OrderStatus.DROPPED and "feed down" in (fill.reason or "")


async def test_constant_product_quotes() -> None:
    async def reserves(base: str, quote: str) -> tuple[Decimal, Decimal]:
        return D(100), D(200_000)

    pool = ConstantProductQuotes(reserves)
    # buying 1 of 100: 200000 * 1 / 99 quote; selling 1: 200000 * 1 / 101
    cent = D("0.01")
    assert (await pool.quote(Side.BUY, "WETH", "USDC", D(1))).quantize(cent) == D("2020.20")
    assert (await pool.quote(Side.SELL, "WETH", "USDC", D(1))).quantize(cent) == D("1980.20")
    paper = PaperBroker(pool, fee_bps=D(0))
    fill = await paper.execute(buy("100", "2000"))  # would drain the pool
    assert fill.status is OrderStatus.DROPPED
