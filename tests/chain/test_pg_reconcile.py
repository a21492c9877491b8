"""Open web3 intents settled from the chain (module_runtime.db.reconcile) into a
PostgreSQL ledger: what a restarted live runtime does before sending anything new."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from web3 import AsyncWeb3

from module_runtime.chain import Web3Broker
from module_runtime.db.ledger import ModuleRef, PgLedger
from module_runtime.db.migrate import migrate
from module_runtime.db.reconcile import Web3IntentResolver, reconcile_open_intents
from module_runtime.orders import Fill, Order, OrderStatus, Side

from ..pg import PgServer, fresh_database
from .conftest import Dex, balance, trading

pytestmark = [pytest.mark.anvil, pytest.mark.postgres]
D = Decimal


@pytest.fixture
async def ledger(pg_server: PgServer) -> AsyncIterator[PgLedger]:
    async with fresh_database(pg_server) as url:
        conn = await asyncpg.connect(url)
        await migrate(conn)
        await conn.close()
        pg = PgLedger(url, ModuleRef("ns", "live-dex", "dex_trading"), chain_id=31337)
        await pg.connect()
        try:
            yield pg
        finally:
            await pg.close()


def order(side: Side, quantity: str, **kw: Any) -> Order:
    return Order("web3", side, "WETH", "USDC", D(quantity), D("3000"), **kw)


def same(a: Fill, b: Fill) -> bool:
    fields = ("status", "quantity", "price", "fee", "tx_hash", "gas_fee")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


async def test_open_intents_are_settled_from_the_chain(
    w3: AsyncWeb3[Any], dex: Dex, ledger: PgLedger
) -> None:
    t = await trading(w3, dex.trader, dex.venue_a)
    broker = Web3Broker(t.router, [t.pool])
    weth0 = await balance(w3, dex.weth, dex.trader.address)
    usdc0 = await balance(w3, dex.usdc, dex.trader.address)

    # booked normally; they also pay the one-time router approvals of both tokens, which a
    # reconciled fill could not know about (its gas is the swap's receipt alone)
    warm, warm_sell = order(Side.BUY, "0.5"), order(Side.SELL, "0.1")
    for booked in (warm, warm_sell):
        await ledger.record_intent(booked)
        await ledger.record_outcome(await broker.execute(booked))

    # A: broadcast and mined, then the runtime died: nothing recorded but the intent
    lost = order(Side.BUY, "0.25", min_out=D("0.2"))
    await ledger.record_intent(lost)
    lost_fill = await broker.execute(lost)
    # B: the outcome was still SENT (hash known) when the runtime died; it mined since
    sent = order(Side.SELL, "0.3")
    await ledger.record_intent(sent)
    sent_fill = await broker.execute(sent)
    await ledger.record_outcome(Fill(sent.order_id, OrderStatus.SENT, tx_hash=sent_fill.tx_hash))
    # C: the intent was recorded, the runtime died before broadcasting
    never = order(Side.BUY, "0.25", min_out=D("0.2"))  # the same swap as A: must not match it
    await ledger.record_intent(never)
    # D: a hash the node does not know (dropped from its pool)
    gone = order(Side.BUY, "0.1")
    await ledger.record_intent(gone)
    await ledger.record_outcome(Fill(gone.order_id, OrderStatus.SENT, tx_hash="0x" + "ab" * 32))
    assert lost_fill.status is sent_fill.status is OrderStatus.FILLED

    resolver = Web3IntentResolver(broker, claimed=ledger.known_tx_hashes)
    report = await reconcile_open_intents(ledger, resolver)
    assert report.unresolved == [] and await ledger.open_intents() == []
    outcome = {o.order_id: ledger.outcome(o.order_id) for o in (lost, sent, never, gone)}
    # the reconciled fills are the broker's own, to the last digit and wei of gas
    assert same(outcome[lost.order_id], lost_fill)  # type: ignore[arg-type]
    assert same(outcome[sent.order_id], sent_fill)  # type: ignore[arg-type]
    assert outcome[never.order_id].status is OrderStatus.DROPPED  # type: ignore[union-attr]
    assert outcome[gone.order_id].status is OrderStatus.DROPPED  # type: ignore[union-attr]

    # the ledger's base position is the chain's WETH balance change, to the wei
    [position] = await ledger.positions()
    weth_delta = await balance(w3, dex.weth, dex.trader.address) - weth0
    assert t.pool.base.to_units(position.quantity) == weth_delta
    usdc_delta = await balance(w3, dex.usdc, dex.trader.address) - usdc0
    buys = [ledger.outcome(o.order_id) for o in (warm, lost)]
    sells = [ledger.outcome(o.order_id) for o in (warm_sell, sent)]
    spent = sum((f.quantity * f.price + f.fee for f in buys if f), D(0)) - sum(
        (f.quantity * f.price - f.fee for f in sells if f), D(0)
    )
    assert abs(t.pool.quote.to_units(spent) + usdc_delta) <= 1  # price is a 36-digit ratio

    # settled once: asking again changes nothing
    again = await reconcile_open_intents(ledger, resolver)
    assert again.resolved == [] and dataclasses.asdict(again)["unresolved"] == []
