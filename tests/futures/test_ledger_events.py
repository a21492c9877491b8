"""Perpetual fills, funding and liquidations in both ledgers: the same entries, the same
positions and PnL, idempotent per event id; PostgreSQL replays them at connect in the one
booking order (a liquidation between two fills closes exactly the first position)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from module_runtime.db.ledger import PgLedger
from module_runtime.futures.events import EventKind, PositionEvent, funding_id
from module_runtime.ledger import LedgerConflict
from module_runtime.orders import Fill, Market, Order, OrderStatus, Side
from module_runtime.positions import PositionError, PositionSide

from ..both_ledgers import both_ledgers  # noqa: F401  (the `ledger` fixture)
from ..db.conftest import MODULE
from ..runtime.conftest import T0

D = Decimal


def perp(side: Side, quantity: str, leverage: str = "10", **kw: Any) -> Order:
    return Order(
        "futures-paper",
        side,
        "BTC",
        "USDT",
        D(quantity),
        D(50000),
        leverage=D(leverage),
        market=Market.PERP,
        created_at=T0,
        **kw,
    )


async def fill(ledger: Any, order: Order, price: str, fee: str, minutes: int) -> None:
    await ledger.record_intent(order)
    at = T0 + timedelta(minutes=minutes)
    await ledger.record_outcome(
        Fill(order.order_id, OrderStatus.FILLED, order.quantity, D(price), D(fee), at=at)
    )


def funding(amount: str, minutes: int) -> PositionEvent:
    at = T0 + timedelta(minutes=minutes)
    return PositionEvent(
        funding_id("BTC", "USDT", at),
        EventKind.FUNDING,
        "BTC",
        "USDT",
        price=D(50000),
        amount=D(amount),
        rate=D("0.0001"),
        quantity=D("0.1"),
        at=at,
    )


def liquidation(minutes: int, price: str = "45180") -> PositionEvent:
    return PositionEvent(
        f"liquidation:test:{minutes}",
        EventKind.LIQUIDATION,
        "BTC",
        "USDT",
        price=D(price),
        quantity=D("0.1"),
        at=T0 + timedelta(minutes=minutes),
    )


async def test_fills_funding_and_liquidation(ledger: Any) -> None:
    await fill(ledger, perp(Side.BUY, "0.1"), "50000", "2.5", 1)  # long, margin 500
    await ledger.record_event(funding("-0.5", 2))
    await ledger.record_event(funding("-0.5", 2))  # the same event again: booked once
    with pytest.raises(LedgerConflict):
        await ledger.record_event(funding("-0.7", 2))
    await ledger.record_event(liquidation(3))
    assert await ledger.positions() == []
    await fill(ledger, perp(Side.SELL, "0.2", "5"), "46000", "4.6", 4)  # a new short
    (short,) = await ledger.positions()
    assert (short.side, short.margin, short.fees) == (PositionSide.SHORT, D(1840), D("4.6"))
    (lost,) = await ledger.closed_trades()
    assert lost.pnl == -D(500) - D("2.5") and lost.capital == D(500)
    kinds = [(e.kind, e.amount) for e in await ledger.events()]
    assert kinds == [(EventKind.FUNDING, D("-0.5")), (EventKind.LIQUIDATION, -D("502.5"))]
    await ledger.record_event(liquidation(9, "50100"))  # the short this time
    assert await ledger.positions() == []
    with pytest.raises(PositionError):
        await ledger.record_event(liquidation(10))  # no position left to liquidate
    assert len(await ledger.closed_trades()) == 2
    if isinstance(ledger, PgLedger):  # a new process reads the same ledger
        again = PgLedger(ledger._dsn, MODULE)
        await ledger.close()
        await again.connect()
        try:
            assert await again.positions() == []
            assert await again.closed_trades() == await InMemoryReplay.trades(ledger)
            assert [e.event_id for e in await again.events()] == [
                e.event_id for e in ledger._state.events.values()
            ]
        finally:
            await again.close()


class InMemoryReplay:
    @staticmethod
    async def trades(ledger: PgLedger) -> list[Any]:
        return list(ledger._state.trades)
