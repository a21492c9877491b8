"""A live Solana runtime SIGKILLed between send and confirmation: the restarted runtime
(`tradeplane-runtime run`) settles its open intent from the chain at start (the
transaction found by its order memo), once, and the ledger then equals the wallet's
token balances to the smallest unit."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from module_runtime.chain.units import to_units
from module_runtime.db.ledger import PgLedger
from module_runtime.db.reconcile import reconcile_open_intents, resolver_for
from module_runtime.orders import OrderStatus
from module_runtime.solana.brokers import SolanaBroker, SolanaIntentResolver
from module_runtime.solana.client import TxClient, order_memo

from .conftest import Market
from .kill_child import MODULE
from .test_swaps import balances, buy_order

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


async def test_sigkill_between_send_and_confirm_is_settled_once(
    market: Market, db_url: str, tmp_path: Path
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
        assert len(pending) == 1, f"child exited {child.poll()} before sending"
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
        assert ledger.outcome(order.order_id) is None  # the kill came before the outcome
    finally:
        await ledger.close()

    # the restart: the real runtime (`tradeplane-runtime run`, live, same module and
    # database) reconciles the open intent at start, from the chain
    runtime = start_runtime(tmp_path, market, db_url)
    try:
        assert await settled(db_url, order.order_id) == "filled"
    finally:
        runtime.send_signal(signal.SIGTERM)
        out, err = runtime.communicate(timeout=30)
    assert runtime.returncode == 0, err[-2000:]
    assert "open intent reconciled" in err
    assert str(market.trader) not in out + err  # the key is in no log line
    ledger = PgLedger(db_url, MODULE)
    await ledger.connect()
    try:
        assert await ledger.open_intents() == []
        fill = ledger.outcome(order.order_id)
        assert fill is not None and fill.status is OrderStatus.FILLED, fill
        assert fill.tx_hash == pending[0]  # the signature, exactly as the chain has it
        # once: a second pass over the ledger settles nothing
        broker = SolanaBroker(pool, TxClient(pool.rpc, market.trader, poll_seconds=0.02))
        resolver = resolver_for(broker, ledger.known_tx_hashes)
        assert isinstance(resolver, SolanaIntentResolver)
        again = await reconcile_open_intents(ledger, resolver)
        assert again.resolved == [] and again.unresolved == []
        # and the ledger equals the chain to the smallest unit
        after = await balances(market, market.trader)
        assert after[0] - before[0] == to_units(fill.quantity, 9)
        assert before[1] - after[1] == to_units(order.quantity * order.price, 6)
        assert before[2] - after[2] == to_units(fill.gas_fee, 9) == 5000
        memo = await broker.client.find_by_memo(order_memo(order.order_id))
        assert memo is not None and memo.signature == fill.tx_hash  # one transaction
    finally:
        await ledger.close()


def start_runtime(tmp_path: Path, market: Market, db_url: str) -> subprocess.Popen[str]:
    c = market.config
    module = {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingModule",
        "metadata": {"name": MODULE.name, "namespace": MODULE.namespace},
        "spec": {
            "type": "solana_strategies",
            "mode": "live",
            "walletSecretRef": {"name": "wallet", "key": "keypair"},
            "capital": {"allocation": "50000"},
            "risk": {"maxPositionSize": "10000", "maxDailyLoss": "5000"},
            "strategy": {
                "base": "SOL",
                "quote": "USDC",
                "orderSize": "100",
                "tickSeconds": 3600,  # no new order while we look
                "rpcUrl": market.rpc.url,
                "programId": str(c.program_id),
                "pool": str(c.pool),
                "baseMint": str(c.base_mint),
                "quoteMint": str(c.quote_mint),
            },
        },
    }
    path = tmp_path / "module.json"
    path.write_text(json.dumps(module))
    env = {
        **os.environ,
        "TRADEPLANE_CONFIG_FILE": str(path),
        "TRADEPLANE_DATABASE_URL": db_url,
        "TRADEPLANE_WALLET_KEY": str(market.trader),
        "TRADEPLANE_LISTEN_ADDRESS": "127.0.0.1",
        "TRADEPLANE_PORT": str(free_port()),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "module_runtime.cli", "run"],
        cwd="/",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def settled(db_url: str, order_id: str) -> str:
    """The order's status once the restarted runtime made it final (read with plain SQL:
    the runtime holds the module's ledger lock)."""
    conn = await asyncpg.connect(db_url)
    try:
        for _ in range(300):
            status = await conn.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id)
            if status not in ("pending", "sent"):
                return str(status)
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError("the restarted runtime did not settle the open intent")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
