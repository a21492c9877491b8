"""A live Solana runtime SIGKILLed between send and confirmation: the restart settles its
open intent from the chain (the transaction found by its order memo), once, and the
ledger then equals the wallet's token balances to the smallest unit."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from module_runtime.chain.units import to_units
from module_runtime.db.ledger import PgLedger
from module_runtime.db.reconcile import reconcile_open_intents, resolver_for
from module_runtime.orders import OrderStatus
from module_runtime.solana.brokers import SolanaBroker, SolanaIntentResolver
from module_runtime.solana.client import TxClient

from .conftest import Market
from .kill_child import MODULE
from .test_swaps import balances, buy_order

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


async def test_sigkill_between_send_and_confirm_is_settled_once(
    market: Market, db_url: str
) -> None:
    pool = market.solana_pool()
    order = await buy_order(pool, "900")
    c = market.config
    env = {
        **os.environ,
        "TRADEPLANE_DATABASE_URL": db_url,
        "TRADEPLANE_WALLET_KEY": str(market.trader),  # base58 secret, as a Secret would hold it
        "KILL_RPC_URL": market.rpc.url,
        "KILL_POOL": json.dumps(
            {
                "base": c.base,
                "quote": c.quote,
                "program_id": str(c.program_id),
                "pool": str(c.pool),
                "base_mint": str(c.base_mint),
                "quote_mint": str(c.quote_mint),
            }
        ),
        "KILL_ORDER": json.dumps(
            {
                "side": order.side.value,
                "base": order.base,
                "quote": order.quote,
                "quantity": str(order.quantity),
                "price": str(order.price),
                "min_out": str(order.min_out),
                "order_id": order.order_id,
                "created_at": order.created_at.isoformat(),
            }
        ),
    }
    before = await balances(market, market.trader)
    await market.rpc.call("standinHold", True)  # sent transactions wait in the queue
    child = subprocess.Popen(  # noqa: ASYNC220 (started once; the kill is the point)
        [sys.executable, "-m", "tests.solana.kill_child"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):  # the child sends within seconds
            if await market.rpc.call("standinPendingSignatures") or child.poll() is not None:
                break
            await asyncio.sleep(0.05)
        pending = await market.rpc.call("standinPendingSignatures")
        assert len(pending) == 1, (child.poll(), child.stderr.read() if child.stderr else "")
        child.send_signal(signal.SIGKILL)  # sent, not confirmed: the outcome never recorded
        child.wait(timeout=10)
    finally:
        await market.rpc.call("standinHold", False)
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL

    ledger = PgLedger(db_url, MODULE)
    await ledger.connect()
    try:
        assert [o.order_id for o in await ledger.open_intents()] == [order.order_id]
        assert ledger.outcome(order.order_id) is None
        # the restarted runtime's resolver for its broker (db.reconcile.resolver_for)
        broker = SolanaBroker(pool, TxClient(pool.rpc, market.trader, poll_seconds=0.02))
        resolver = resolver_for(broker, ledger.known_tx_hashes)
        assert isinstance(resolver, SolanaIntentResolver)
        report = await reconcile_open_intents(ledger, resolver)
        while report.unresolved:  # the transaction lands at the end of the slot
            await asyncio.sleep(0.05)
            report = await reconcile_open_intents(ledger, resolver)
        (fill,) = report.resolved
        assert fill.status is OrderStatus.FILLED
        assert fill.tx_hash == pending[0]
        # once: nothing open any more, a second pass settles nothing
        assert await ledger.open_intents() == []
        again = await reconcile_open_intents(ledger, resolver)
        assert again.resolved == [] and again.unresolved == []
        assert ledger.outcome(order.order_id) == fill
        # the ledger equals the chain to the smallest unit
        after = await balances(market, market.trader)
        assert after[0] - before[0] == to_units(fill.quantity, 9)
        assert before[1] - after[1] == to_units(order.quantity * order.price, 6)
        assert before[2] - after[2] == to_units(fill.gas_fee, 9) == 5000
    finally:
        await ledger.close()
