"""The live runtime the Solana kill test SIGKILLs: `python -m tests.solana.kill_child`.

The order path as the runtime wires it in live mode (PgLedger, risk checks, SolanaBroker
signing with the wallet from TRADEPLANE_WALLET_KEY) submits the one order in
KILL_ORDER (JSON) on the pool in KILL_POOL (JSON), then prints its fill. The test kills it
while the transaction is sent but not yet confirmed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime
from decimal import Decimal

from solders.pubkey import Pubkey

from module_runtime.clock import SystemClock
from module_runtime.db.ledger import ModuleRef, PgLedger
from module_runtime.order_path import OrderPath
from module_runtime.orders import Order, Side
from module_runtime.solana.brokers import SolanaBroker
from module_runtime.solana.client import TxClient
from module_runtime.solana.pool import PoolConfig, SolanaPool
from module_runtime.solana.rpc import SolanaRpc
from module_runtime.solana.wallet import keypair_from_secret

from .test_swaps import limits

MODULE = ModuleRef("ns", "solana-kill", "solana_strategies")


def pool_config(raw: dict[str, str]) -> PoolConfig:
    keys = {
        k: Pubkey.from_string(raw[k]) for k in ("program_id", "pool", "base_mint", "quote_mint")
    }
    return PoolConfig(raw["base"], raw["quote"], **keys)


def order_of(raw: dict[str, str]) -> Order:
    return Order(
        venue="solana",
        side=Side(raw["side"]),
        base=raw["base"],
        quote=raw["quote"],
        quantity=Decimal(raw["quantity"]),
        price=Decimal(raw["price"]),
        min_out=Decimal(raw["min_out"]),
        order_id=raw["order_id"],
        created_at=datetime.fromisoformat(raw["created_at"]),
    )


async def main() -> int:
    rpc = SolanaRpc(os.environ["KILL_RPC_URL"])
    pool = SolanaPool(rpc, pool_config(json.loads(os.environ["KILL_POOL"])))
    keypair = keypair_from_secret(os.environ["TRADEPLANE_WALLET_KEY"])
    broker = SolanaBroker(pool, TxClient(rpc, keypair, poll_seconds=0.02))
    ledger = PgLedger(os.environ["TRADEPLANE_DATABASE_URL"], MODULE)
    await ledger.connect()
    path = OrderPath(broker=broker, ledger=ledger, limits=limits(), clock=SystemClock())
    await path.restore()
    fill = await path.submit(order_of(json.loads(os.environ["KILL_ORDER"])))
    print(json.dumps({"status": fill.status.value}), flush=True)
    await ledger.close()
    await rpc.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
