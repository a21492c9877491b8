"""Perpetuals through the one order path in paper mode: round trips long and short,
funding, liquidation (the loss is the margin) and the halt it triggers, and the
pre-trade checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from module_runtime.clock import ManualClock
from module_runtime.futures.events import EventKind
from module_runtime.futures.margin import Direction, liquidation_price
from module_runtime.futures.paper import FundingSeries, PaperFuturesBroker, funding_times
from module_runtime.futures.tiers import default_tables
from module_runtime.ledger import InMemoryLedger
from module_runtime.order_path import OrderPath
from module_runtime.orders import Market, Order, OrderStatus, Side
from module_runtime.positions import ACCOUNTING_CONTEXT, PositionSide
from module_runtime.risk import RejectReason

from ..runtime.conftest import MutablePrice, make_limits

D = Decimal
T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # between funding times (00:00, 08:00, 16:00)
TIERS = default_tables()


class Feed:
    def __init__(self, price: str) -> None:
        self.feed = MutablePrice(price)

    async def price(self, base: str, quote: str) -> Decimal:
        return await self.feed(base, quote)

    def set(self, price: str | Decimal) -> None:
        self.feed.value = D(price)


def rig(
    price: str = "50000", *, fee_bps: str = "5", rates: tuple[str, ...] = ("0.0001",), **limits: Any
) -> tuple[OrderPath, Feed, ManualClock, InMemoryLedger]:
    clock = ManualClock(T0)
    feed = Feed(price)
    broker = PaperFuturesBroker(
        feed,
        TIERS,
        FundingSeries([D(r) for r in rates], timedelta(hours=8)),
        clock=clock,
        taker_fee_bps=D(fee_bps),
    )
    values: dict[str, Any] = {
        "allocation": D(10_000),
        "max_position_size": D(20_000),
        "max_daily_loss": D(5_000),
        "max_drawdown_percent": D(90),
        "stop_loss_percent": D(0),
        "max_open_positions": 2,
        "max_leverage": D(20),
    }
    values.update(limits)
    ledger = InMemoryLedger()
    path = OrderPath(broker=broker, ledger=ledger, limits=make_limits(**values), clock=clock)
    path.use_tiers(TIERS)
    return path, feed, clock, ledger


def perp(side: Side, quantity: str, price: str, leverage: str = "10", **kw: Any) -> Order:
    return Order(
        "futures-paper",
        side,
        "BTC",
        "USDT",
        D(quantity),
        D(price),
        leverage=D(leverage),
        market=Market.PERP,
        **kw,
    )


async def test_long_round_trip() -> None:
    path, feed, _clock, _ = rig(fee_bps="5")
    opened = await path.submit(perp(Side.BUY, "0.1", "50000"))
    assert opened.status is OrderStatus.FILLED and opened.fee == D("2.5")  # 5000 x 5 bps
    (position,) = path.positions()
    assert (position.side, position.quantity, position.margin) == (
        PositionSide.LONG,
        D("0.1"),
        D(500),
    )
    assert path.state.capital_in_use == D(500)  # the margin, not the notional
    feed.set("52000")
    path.mark("BTC", "USDT", D(52000))
    assert path.state.unrealized_pnl == D("197.5")  # 0.1 x 2000 - entry fee 2.5
    closed = await path.submit(perp(Side.SELL, "0.1", "52000", reduces_position=True))
    assert closed.status is OrderStatus.FILLED and closed.fee == D("2.6")
    assert path.positions() == []
    (trade,) = await path.ledger.closed_trades()
    # (52000 - 50000) x 0.1 - 2.5 - 2.6
    assert trade.pnl == D("194.9") and trade.side is PositionSide.LONG and trade.capital == D(500)
    assert path.stats().realized_pnl == D("194.9")


async def test_short_round_trip_with_a_partial_close() -> None:
    path, feed, _, ledger = rig(fee_bps="4")
    await path.submit(perp(Side.SELL, "0.2", "50000", leverage="5"))
    (position,) = path.positions()
    assert position.side is PositionSide.SHORT and position.margin == D(2000)
    feed.set("48000")
    await path.submit(perp(Side.BUY, "0.05", "48000", reduces_position=True))
    (rest,) = path.positions()
    assert rest.quantity == D("0.15") and rest.margin == D(1500)
    feed.set("49000")
    await path.submit(perp(Side.BUY, "0.15", "49000", reduces_position=True))
    first, second = await ledger.closed_trades()
    # entry fee 10000 x 4 bps = 4, a quarter of it closed first; exit fees 0.96 and 2.94
    assert first.pnl == D("0.05") * 2000 - 1 - D("0.96")
    assert second.pnl == D("0.15") * 1000 - 3 - D("2.94")
    assert path.stats().realized_pnl == first.pnl + second.pnl


async def test_no_flip_in_one_order_and_claims_are_verified() -> None:
    path, _, _, _ = rig()
    await path.submit(perp(Side.BUY, "0.1", "50000"))
    flip = await path.submit(perp(Side.SELL, "0.3", "50000"))
    assert flip.status is OrderStatus.REJECTED and "close it before" in (flip.reason or "")
    claim = await path.submit(perp(Side.BUY, "0.1", "50000", reduces_position=True))
    assert claim.status is OrderStatus.REJECTED and (claim.reason or "").startswith("not_reducing")


async def test_funding_is_booked_once_per_funding_time() -> None:
    path, feed, clock, ledger = rig(rates=("0.0001", "-0.0003"))
    await path.submit(perp(Side.BUY, "0.1", "50000"))
    await path.submit(
        Order(
            "futures-paper",
            Side.SELL,
            "ETH",
            "USDT",
            D(2),
            D(2500),
            leverage=D(5),
            market=Market.PERP,
        )
    )
    clock.advance(timedelta(hours=7))  # 08:00 passes
    feed.set("50000")
    events = await path.settle()
    assert [e.kind for e in events] == [EventKind.FUNDING, EventKind.FUNDING]
    rate = FundingSeries([D("0.0001"), D("-0.0003")], timedelta(hours=8)).rate(events[0].at)
    by_pair = {e.base: e for e in events}
    # the feed serves one price for every pair: 50000
    assert by_pair["BTC"].amount == -D("0.1") * 50000 * rate
    assert by_pair["ETH"].amount == D(2) * 50000 * rate
    assert await path.settle() == []  # nothing new: no second booking
    clock.advance(timedelta(hours=16))  # 16:00 and 00:00
    assert len(await path.settle()) == 4
    funding = sum(e.amount for e in await ledger.events())
    assert path.stats().funding == funding and path.stats().realized_pnl == funding


def test_funding_times_are_the_interval_grid() -> None:
    start = datetime(2026, 1, 5, 7, 59, tzinfo=UTC)
    found = funding_times(start, start + timedelta(hours=9), timedelta(hours=8))
    assert found == [datetime(2026, 1, 5, 8, tzinfo=UTC), datetime(2026, 1, 5, 16, tzinfo=UTC)]


async def test_liquidation_loses_the_margin_and_halts_on_the_daily_loss() -> None:
    # the loss at the 5 % stop (250) fits the budget; a gap through the stop liquidates
    path, feed, _, ledger = rig(max_daily_loss=D(400), fee_bps="0", stop_loss_percent=D(5))
    await path.submit(perp(Side.BUY, "0.1", "50000", leverage="10"))
    (_position,) = path.positions()
    lp = liquidation_price(Direction.LONG, D("0.1"), D(50000), D(500), TIERS[("BTC", "USDT")])
    with localcontext(ACCOUNTING_CONTEXT):
        assert lp == D(4500) / D("0.0996")  # (500 - 5000) / (0.1 x 0.004 - 0.1)
    feed.set(lp + D("0.01"))
    assert await path.settle() == [] and not path.halted
    feed.set(lp)
    (event,) = await path.settle()
    assert event.kind is EventKind.LIQUIDATION and event.price == lp
    assert path.positions() == []
    (trade,) = await ledger.closed_trades()
    assert trade.pnl == -D(500) and trade.capital == D(500)
    assert path.stats().liquidations == 1
    assert path.halted and path.halt_info is not None
    assert path.halt_info.reason == "max_daily_loss"
    refused = await path.submit(perp(Side.BUY, "0.01", str(lp)))
    assert refused.status is OrderStatus.REJECTED and (refused.reason or "").startswith("halted")


async def test_pre_trade_checks() -> None:
    path, _, _, _ = rig(stop_loss_percent=D(5), max_leverage=D(50))
    # 10x: liquidation about 9.6 % away, beyond the 5 % stop
    eth = Order("p", Side.BUY, "ETH", "USDT", D(1), D(3000), leverage=D(10), market=Market.PERP)
    assert (await path.submit(eth)).status is OrderStatus.FILLED
    cases = [
        (perp(Side.SELL, "0.01", "50000", "25"), RejectReason.LIQUIDATION_INSIDE_STOP),
        (perp(Side.SELL, "0.01", "50000", "60"), RejectReason.MAX_LEVERAGE),
        (perp(Side.SELL, "1", "50000", "5"), RejectReason.MAX_POSITION_SIZE),
        (
            Order("p", Side.BUY, "DOGE", "USDT", D(1), D(1), leverage=D(2), market=Market.PERP),
            RejectReason.UNKNOWN_SYMBOL,
        ),
    ]
    for order, reason in cases:
        fill = await path.submit(order)
        assert fill.status is OrderStatus.REJECTED, order
        assert (fill.reason or "").startswith(reason.value), fill.reason
    margin_path, _, _, _ = rig(allocation=D(1000), max_position_size=D(10_000), max_leverage=D(5))
    fill = await margin_path.submit(perp(Side.BUY, "0.08", "50000", "5"))  # margin 800
    assert fill.status is OrderStatus.FILLED
    fill = await margin_path.submit(perp(Side.BUY, "0.021", "50000", "5"))  # 210 > 200 left
    assert fill.status is OrderStatus.REJECTED
    assert (fill.reason or "").startswith(RejectReason.INSUFFICIENT_CAPITAL.value)


# ---- property: liquidated exactly when the mark crosses, never more than the margin ----


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    side=st.sampled_from([Side.BUY, Side.SELL]),
    leverage=st.integers(min_value=2, max_value=50),
    quantity=st.decimals(min_value=D("0.001"), max_value=D("0.3"), places=3),
    moves=st.lists(st.decimals(min_value=D(-8), max_value=D(8), places=2), min_size=1, max_size=30),
)
async def test_liquidated_exactly_when_the_mark_crosses(
    side: Side, leverage: int, quantity: Decimal, moves: list[Decimal]
) -> None:
    path, feed, clock, ledger = rig(max_daily_loss=D(10_000), max_leverage=D(125))
    opened = await path.submit(perp(side, str(quantity), "50000", str(leverage)))
    assert opened.status is OrderStatus.FILLED
    (position,) = path.positions()
    lp = liquidation_price(
        Direction.LONG if side is Side.BUY else Direction.SHORT,
        position.quantity,
        position.avg_cost,
        position.margin,
        TIERS[("BTC", "USDT")],
    )
    mark = D(50000)
    for move in moves:
        mark = max(D(1), (mark * (100 + move) / 100).quantize(D("0.01")))
        feed.set(mark)
        clock.advance(timedelta(minutes=1))  # within one funding interval
        events = await path.settle()
        crossed = mark <= lp if side is Side.BUY else mark >= lp
        assert bool(events) == crossed, (mark, lp)
        if crossed:
            (_event,) = events
            (trade,) = await ledger.closed_trades()
            # the loss on price is the margin, exactly; fees come on top
            assert trade.pnl + trade.fee == -position.margin
            assert trade.pnl + trade.fee >= -position.margin
            assert path.positions() == []
            return
        assert len(path.positions()) == 1


async def test_a_funding_payment_the_ledger_refused_is_booked_at_the_next_settle() -> None:
    path, _, clock, ledger = rig()
    await path.submit(perp(Side.BUY, "0.1", "50000"))
    clock.advance(timedelta(hours=7))  # 08:00 passes
    original = ledger.record_event
    calls = 0

    async def failing_once(event: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database unreachable")
        await original(event)

    ledger.record_event = failing_once  # type: ignore[method-assign]
    assert await path.settle() == [] and path.errors == 1
    (booked,) = await path.settle()
    assert booked.kind is EventKind.FUNDING and booked.at == datetime(2026, 1, 5, 8, tzinfo=UTC)
    assert len(await ledger.events()) == 1
