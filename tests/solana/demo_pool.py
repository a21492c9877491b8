"""For `make demo`: a SOL/USDC pool on the LiteSVM stand-in, and a paper
`solana_strategies` module trading it (a TradingModule manifest on stdout).

    python -m tests.solana.demo_pool program-id     the pool program's address
    python -m tests.solana.demo_pool URL            make the pool, print the manifest

Demo only: it mints test tokens with real SPL Token transactions through the stand-in.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import yaml
from solders.keypair import Keypair

from module_runtime.solana.client import TxClient
from module_runtime.solana.rpc import SolanaRpc

from .pools import PROGRAM_ID, airdrop, create_mint, create_pool

SOL = 10**9
USDC = 10**6


async def make(url: str) -> str:
    rpc = SolanaRpc(url)
    try:
        admin = TxClient(rpc, Keypair(), poll_seconds=0.05)
        await airdrop(rpc, admin.wallet, 100 * SOL)
        sol = await create_mint(admin, 9)
        usdc = await create_mint(admin, 6)
        pool = await create_pool(admin, sol, usdc, 1_000 * SOL, 150_000 * USDC, fee_bps=30)
    finally:
        await rpc.close()
    doc = pool_module(
        "solana-pool",
        rpc_url=url,
        program_id=str(PROGRAM_ID),
        pool=str(pool.address),
        base_mint=str(sol),
        quote_mint=str(usdc),
    )
    return yaml.safe_dump(doc, sort_keys=False)


def pool_module(
    name: str,
    *,
    rpc_url: str,
    program_id: str,
    pool: str,
    base_mint: str,
    quote_mint: str,
    **spec: Any,
) -> dict[str, Any]:
    """A paper solana_strategies module trading SOL/USDC on `pool`."""
    return {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingModule",
        "metadata": {"name": name},
        "spec": {
            "type": "solana_strategies",
            "mode": "paper",
            "capital": {"allocation": "5000"},
            "risk": {"maxPositionSize": "1000", "maxDailyLoss": "250"},
            "strategy": {
                "base": "SOL",
                "quote": "USDC",
                "orderSize": "500",
                "rpcUrl": rpc_url,
                "programId": program_id,
                "pool": pool,
                "baseMint": base_mint,
                "quoteMint": quote_mint,
            },
            **spec,
        },
    }


def main(argv: list[str]) -> int:
    if argv[1:] == ["program-id"]:
        print(PROGRAM_ID)
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(asyncio.run(make(argv[1])), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
