"""The `Ledger` protocol, scenario by scenario, against both implementations.

Every test here runs on `InMemoryLedger` and on `PgLedger` (a real PostgreSQL), so the
database ledger is held to exactly the in-memory semantics: average cost, idempotent
outcomes, conflicts, open intents, rejections.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest

from module_runtime.db.ledger import PgLedger
from module_runtime.ledger import InMemoryLedger, Ledger, LedgerConflict, UnknownOrder
from module_runtime.orders import Fill, Order, OrderStatus
from module_runtime.positions import PositionError

from ..both_ledgers import both_ledgers  # noqa: F401  (the `ledger` fixture)
from ..runtime.conftest import T0, buy, sell

D = Decimal


def filled(order: Order, quantity: str, price: str, fee: str = "0") -> Fill:
    return Fill(order.order_id, OrderStatus.FILLED, D(quantity), D(price), D(fee), at=T0)


async def book(ledger: Ledger, order: Order, fill: Fill) -> None:
    await ledger.record_intent(order)
    await ledger.record_outcome(fill)


async def test_average_cost_and_realized_pnl(ledger: Ledger) -> None:
    b = buy("2", "100")
    await book(ledger, b, filled(b, "2", "100", fee="1"))  # cost 201, avg 100.5
    [pos] = await ledger.positions()
    assert (pos.quantity, pos.cost, pos.avg_cost) == (D(2), D(201), D("100.5"))
    s1 = sell("1", "110")
    await book(ledger, s1, filled(s1, "1", "110", fee="0.5"))
    s2 = sell("1", "90")
    await book(ledger, s2, filled(s2, "1", "90", fee="0.5"))
    t1, t2 = await ledger.closed_trades()
    assert (t1.pnl, t1.capital, t1.entry_price) == (D("9.0"), D("100.5"), D("100.5"))
    assert (t2.pnl, t2.capital) == (D("-11.0"), D("100.5"))
    assert (t1.order_id, t2.order_id) == (s1.order_id, s2.order_id)
    assert await ledger.positions() == []


async def test_average_cost_over_two_buys(ledger: Ledger) -> None:
    for price in ("100", "200"):
        order = buy("1", price)
        await book(ledger, order, filled(order, "1", price))
    [pos] = await ledger.positions()
    assert pos.avg_cost == D(150)


async def test_eighteen_decimals_survive_exactly(ledger: Ledger) -> None:
    b = buy("1.992007992007992007", "100.1")
    await book(ledger, b, filled(b, "1.992007992007992007", "100.1", fee="0.6"))
    s = sell("1.992007992007992007", "99.9")
    await book(ledger, s, filled(s, "1.992007992007992007", "99.9", fee="0.5994"))
    [trade] = await ledger.closed_trades()
    assert trade.pnl == D("1.992007992007992007") * D("99.9") - D("0.5994") - (
        D("1.992007992007992007") * D("100.1") + D("0.6")
    )


async def test_the_same_outcome_twice_counts_once(ledger: Ledger) -> None:
    b = buy("1", "100")
    await book(ledger, b, filled(b, "1", "100"))
    s = sell("1", "120")
    fill = filled(s, "1", "120")
    await book(ledger, s, fill)
    await ledger.record_outcome(fill)
    await ledger.record_outcome(dataclasses.replace(fill, at=T0 + timedelta(minutes=1)))
    assert len(await ledger.closed_trades()) == 1
    assert await ledger.positions() == []
    with pytest.raises(LedgerConflict):
        await ledger.record_outcome(Fill(s.order_id, OrderStatus.REVERTED, reason="late"))


async def test_outcome_needs_an_intent(ledger: Ledger) -> None:
    with pytest.raises(UnknownOrder):
        await ledger.record_outcome(Fill("nope", OrderStatus.FILLED))


async def test_open_intents(ledger: Ledger) -> None:
    order = buy("1", "100")
    await ledger.record_intent(order)
    await ledger.record_intent(order)  # idempotent
    assert await ledger.open_intents() == [order]
    await ledger.record_outcome(Fill(order.order_id, OrderStatus.SENT, tx_hash="0xab"))
    assert await ledger.open_intents() == [order]
    await ledger.record_outcome(filled(order, "1", "100"))
    assert await ledger.open_intents() == []


async def test_open_intents_oldest_first(ledger: Ledger) -> None:
    orders = [buy("1", str(100 + i)) for i in range(5)]
    for order in orders:
        await ledger.record_intent(order)
    await ledger.record_outcome(Fill(orders[2].order_id, OrderStatus.DROPPED, reason="x"))
    assert await ledger.open_intents() == [o for i, o in enumerate(orders) if i != 2]


async def test_a_different_intent_under_the_same_id_is_a_conflict(ledger: Ledger) -> None:
    order = buy("1", "100")
    await ledger.record_intent(order)
    with pytest.raises(LedgerConflict):
        await ledger.record_intent(dataclasses.replace(order, quantity=D(2)))


async def test_a_sell_beyond_the_position_is_refused_and_changes_nothing(ledger: Ledger) -> None:
    b = buy("1", "100")
    await book(ledger, b, filled(b, "1", "100"))
    s = sell("2", "100")
    await ledger.record_intent(s)
    with pytest.raises(PositionError):
        await ledger.record_outcome(filled(s, "2", "100"))
    [pos] = await ledger.positions()
    assert pos.quantity == 1 and await ledger.closed_trades() == []
    assert await ledger.open_intents() == [s]


async def test_rejections(ledger: Ledger) -> None:
    order = buy("1", "100")
    await ledger.record_rejection(order, "paused: no")
    await ledger.record_rejection(order, "paused: no")
    if isinstance(ledger, InMemoryLedger):
        rejections = ledger.rejections()
    else:
        assert isinstance(ledger, PgLedger)
        rejections = await ledger.rejections()
    assert [(r.order, r.reason) for r in rejections] == [(order, "paused: no")]
    with pytest.raises(LedgerConflict):
        await ledger.record_intent(order)
    sent = buy("1", "100")
    await ledger.record_intent(sent)
    with pytest.raises(LedgerConflict):
        await ledger.record_rejection(sent, "halted: x")


async def test_flush_returns_when_nothing_is_pending(ledger: Ledger) -> None:
    b = buy("1", "100")
    await book(ledger, b, filled(b, "1", "100"))
    await ledger.flush()
