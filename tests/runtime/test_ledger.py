"""InMemoryLedger: average-cost accounting, idempotent outcomes, open intents."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest

from module_runtime.ledger import InMemoryLedger, LedgerConflict, UnknownOrder
from module_runtime.orders import Fill, Order, OrderStatus
from module_runtime.positions import PositionError

from .conftest import T0, buy, sell

D = Decimal


def filled(order: Order, quantity: str, price: str, fee: str = "0") -> Fill:
    return Fill(order.order_id, OrderStatus.FILLED, D(quantity), D(price), D(fee), at=T0)


async def book(ledger: InMemoryLedger, order: Order, fill: Fill) -> None:
    await ledger.record_intent(order)
    await ledger.record_outcome(fill)


async def test_average_cost_and_realized_pnl() -> None:
    ledger = InMemoryLedger()
    b = buy("2", "100")
    await book(ledger, b, filled(b, "2", "100", fee="1"))  # cost 201, avg 100.5
    [pos] = await ledger.positions()
    assert (pos.quantity, pos.cost, pos.avg_cost) == (D(2), D(201), D("100.5"))

    s1 = sell("1", "110")
    await book(ledger, s1, filled(s1, "1", "110", fee="0.5"))
    s2 = sell("1", "90")
    await book(ledger, s2, filled(s2, "1", "90", fee="0.5"))
    t1, t2 = await ledger.closed_trades()
    assert (t1.pnl, t1.capital, t1.entry_price) == (
        D("9.0"),
        D("100.5"),
        D("100.5"),
    )  # 110-.5-100.5
    assert (t2.pnl, t2.capital) == (D("-11.0"), D("100.5"))  # 90 - .5 - 100.5
    assert await ledger.positions() == []


async def test_average_cost_over_two_buys() -> None:
    ledger = InMemoryLedger()
    for price in ("100", "200"):
        order = buy("1", price)
        await book(ledger, order, filled(order, "1", price))
    [pos] = await ledger.positions()
    assert pos.avg_cost == D(150)


async def test_the_same_outcome_twice_counts_once() -> None:
    ledger = InMemoryLedger()
    b = buy("1", "100")
    await book(ledger, b, filled(b, "1", "100"))
    s = sell("1", "120")
    fill = filled(s, "1", "120")
    await book(ledger, s, fill)
    await ledger.record_outcome(fill)
    # the same outcome observed again later (another `at`) is still the same outcome
    await ledger.record_outcome(dataclasses.replace(fill, at=T0 + timedelta(minutes=1)))
    assert len(await ledger.closed_trades()) == 1
    assert await ledger.positions() == []
    with pytest.raises(LedgerConflict):  # a different final outcome for a settled order
        await ledger.record_outcome(Fill(s.order_id, OrderStatus.REVERTED, reason="late"))


async def test_outcome_needs_an_intent() -> None:
    with pytest.raises(UnknownOrder):
        await InMemoryLedger().record_outcome(Fill("nope", OrderStatus.FILLED))


async def test_open_intents() -> None:
    ledger = InMemoryLedger()
    order = buy("1", "100")
    await ledger.record_intent(order)
    await ledger.record_intent(order)  # idempotent
    assert await ledger.open_intents() == [order]
    await ledger.record_outcome(Fill(order.order_id, OrderStatus.SENT))  # not final
    assert await ledger.open_intents() == [order]
    await ledger.record_outcome(filled(order, "1", "100"))
    assert await ledger.open_intents() == []


async def test_a_sell_beyond_the_position_is_refused_and_changes_nothing() -> None:
    ledger = InMemoryLedger()
    b = buy("1", "100")
    await book(ledger, b, filled(b, "1", "100"))
    s = sell("2", "100")
    await ledger.record_intent(s)
    with pytest.raises(PositionError):
        await ledger.record_outcome(filled(s, "2", "100"))
    [pos] = await ledger.positions()
    assert pos.quantity == 1 and await ledger.closed_trades() == []
    assert await ledger.open_intents() == [s]


async def test_rejections() -> None:
    ledger = InMemoryLedger()
    order = buy("1", "100")
    await ledger.record_rejection(order, "paused: no")
    await ledger.record_rejection(order, "paused: no")
    assert [r.reason for r in ledger.rejections()] == ["paused: no"]
    with pytest.raises(LedgerConflict):
        await ledger.record_intent(order)
