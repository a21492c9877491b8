"""The ccxt live path (module_runtime.futures.exchange) against the exchange stand-in
(tests/exchange_standin): signed requests, fills with the exchange's commission,
insufficient margin, rate limits, reconciliation by client order id, cancel on stop."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from module_runtime.clock import SystemClock
from module_runtime.config import ConfigError
from module_runtime.futures.exchange import (
    ExchangeFuturesBroker,
    ExchangeIntentResolver,
    ExchangeMarket,
    make_exchange,
)
from module_runtime.orders import Market, Order, OrderStatus, Side
from tests.exchange_standin import ExchangeStandin

D = Decimal
HOST = "127.0.0.1"
KEY, SECRET = "standin-key", "standin-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def standin() -> AsyncIterator[tuple[ExchangeStandin, str]]:
    exchange = ExchangeStandin(KEY, SECRET, marks={"BTCUSDT": D(50000)})
    port = free_port()
    runner = await exchange.start(HOST, port)
    try:
        yield exchange, f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()


def perp(side: Side, quantity: str, **kw: object) -> Order:
    return Order(
        "binanceusdm",
        side,
        "BTC",
        "USDT",
        D(quantity),
        D(50000),
        leverage=D(5),
        market=Market.PERP,
        **kw,  # type: ignore[arg-type]
    )


async def test_orders_fills_and_refusals(standin: tuple[ExchangeStandin, str]) -> None:
    venue, url = standin
    broker = ExchangeFuturesBroker(make_exchange(KEY, SECRET, url), clock=SystemClock())
    try:
        await broker.start("BTC", "USDT", D(5))
        assert venue.leverage == {"BTCUSDT": 5} and venue.margin_type == {"BTCUSDT": "ISOLATED"}
        assert await ExchangeMarket(broker.exchange).price("BTC", "USDT") == D(50000)
        order = perp(Side.BUY, "0.1")
        fill = await broker.execute(order)
        assert (fill.status, fill.quantity, fill.price) == (OrderStatus.FILLED, D("0.1"), D(50000))
        assert fill.fee == D("2.5000")  # 5000 x 0.05 %, the exchange's commission string
        (recorded,) = venue.fills
        assert recorded.client_order_id == order.order_id
        # insufficient margin: 10 BTC at 5x is 100000 of margin
        refused = await broker.execute(perp(Side.BUY, "10"))
        assert refused.status is OrderStatus.REVERTED and "Margin is insufficient" in (
            refused.reason or ""
        )
        venue.rate_limited = 1
        limited = await broker.execute(perp(Side.BUY, "0.01"))
        assert limited.status is OrderStatus.REVERTED
        assert "RateLimitExceeded" in (limited.reason or "") or "DDoS" in (limited.reason or "")
        exit_fill = await broker.execute(perp(Side.SELL, "0.1", reduces_position=True))
        assert exit_fill.status is OrderStatus.FILLED and venue.positions["BTCUSDT"].amount == 0
        # reconciliation by client order id: known -> its fill, unknown -> dropped
        resolver = ExchangeIntentResolver(broker)
        again = await resolver.resolve(order, None)
        assert again is not None and (again.status, again.quantity, again.fee) == (
            OrderStatus.FILLED,
            D("0.1"),
            D("2.5000"),
        )
        never = await resolver.resolve(perp(Side.BUY, "0.1"), None)
        assert never is not None and never.status is OrderStatus.DROPPED
    finally:
        await broker.close()


async def test_bad_signature_and_unknown_symbol(standin: tuple[ExchangeStandin, str]) -> None:
    venue, url = standin
    wrong = ExchangeFuturesBroker(make_exchange(KEY, "not-the-secret", url), clock=SystemClock())
    try:
        fill = await wrong.execute(perp(Side.BUY, "0.1"))
        assert fill.status is OrderStatus.REVERTED and "Signature" in (fill.reason or "")
        assert venue.fills == []
        with pytest.raises(ConfigError, match=r"strategy\.base"):
            await wrong.start("DOGE", "USDT", D(2))
    finally:
        await wrong.close()


async def test_stop_cancels_open_orders(standin: tuple[ExchangeStandin, str]) -> None:
    venue, url = standin
    broker = ExchangeFuturesBroker(make_exchange(KEY, SECRET, url), clock=SystemClock())
    await broker.start("BTC", "USDT", D(3))
    await broker.exchange.create_order("BTC/USDT:USDT", "limit", "buy", "0.01", "40000")
    assert len(venue.resting()) == 1
    await broker.close()
    assert venue.resting() == [] and venue.orders
    assert datetime.now(UTC)  # the session is closed: nothing left running


async def test_funding_and_liquidation_from_the_exchange(
    standin: tuple[ExchangeStandin, str],
) -> None:
    """The exchange pays funding and liquidates by itself: the order path books both."""
    from module_runtime.futures.events import EventKind
    from module_runtime.futures.tiers import default_tables
    from module_runtime.ledger import InMemoryLedger
    from module_runtime.order_path import OrderPath
    from tests.runtime.conftest import make_limits

    venue, url = standin
    clock = SystemClock()
    broker = ExchangeFuturesBroker(make_exchange(KEY, SECRET, url), clock=clock)
    ledger = InMemoryLedger()
    limits = make_limits(max_leverage=D(5), max_position_size=D(6000), max_daily_loss=D(5000))
    path = OrderPath(broker=broker, ledger=ledger, limits=limits, clock=clock)
    path.use_tiers(default_tables())
    try:
        await broker.start("BTC", "USDT", D(5))
        assert (await path.submit(perp(Side.BUY, "0.1"))).status is OrderStatus.FILLED
        assert await path.settle() == []  # nothing happened yet (funding polled: none)
        paid = venue.pay_funding("BTCUSDT", D("0.0001"))
        assert paid == D("-0.5")  # 0.1 x 50000 x 0.01 %
        broker._next_poll = None  # the next poll is due
        (funding,) = await path.settle()
        assert (funding.kind, funding.amount) == (EventKind.FUNDING, D("-0.5"))
        broker._next_poll = None
        assert await path.settle() == []  # the same payment is not booked twice
        venue.liquidate("BTCUSDT", D(40200))
        (liquidation,) = await path.settle()
        assert liquidation.kind is EventKind.LIQUIDATION and liquidation.price == D(40200)
        assert path.positions() == []
        (trade,) = await ledger.closed_trades()
        assert trade.pnl == -D(1000) - D("2.5000")  # the margin (5000 / 5) and the entry fee
        assert path.stats().realized_pnl == trade.pnl - D("0.5")
        assert path.stats().liquidations == 1
    finally:
        await broker.close()
