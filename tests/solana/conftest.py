"""Fixtures for the Solana tests: one LiteSVM JSON-RPC stand-in per session (the real SVM
and SPL programs, our pool program loaded), and a SOL/USDC pool per test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from module_runtime.solana.client import TxClient
from module_runtime.solana.pool import PoolConfig, SolanaPool
from module_runtime.solana.rpc import SolanaRpc

from .pools import PROGRAM_ID, PROGRAM_SO, STANDIN, Pool, airdrop, create_mint, create_pool, fund

SLOT_MS = 50  # a blockhash then expires after 150 slots = 7.5 s
SOL = 10**9  # lamports, and units of the 9-decimal base token
USDC = 10**6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def solana_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("solana") / "standin.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(STANDIN),
                "--port",
                str(port),
                "--slot-ms",
                str(SLOT_MS),
                "--program",
                f"{PROGRAM_ID}={PROGRAM_SO}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stand-in did not start: {Path(log).read_text()}") from None
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Market:
    """A SOL/USDC pool (9 and 6 decimals), its admin, a funded trader and another trader."""

    rpc: SolanaRpc
    admin: TxClient
    pool: Pool
    config: PoolConfig
    trader: Keypair
    other: TxClient

    def solana_pool(self) -> SolanaPool:
        """A fresh view of the pool (nothing cached), on the fixture's connection."""
        return SolanaPool(self.rpc, self.config)


@pytest.fixture
async def market(solana_url: str) -> AsyncIterator[Market]:
    rpc = SolanaRpc(solana_url)
    admin = TxClient(rpc, Keypair(), poll_seconds=0.02)
    await airdrop(rpc, admin.wallet, 100 * SOL)
    sol_mint = await create_mint(admin, 9)
    usdc_mint = await create_mint(admin, 6)
    # 1 000 SOL against 150 000 USDC: 150 USDC per SOL
    pool = await create_pool(admin, sol_mint, usdc_mint, 1_000 * SOL, 150_000 * USDC, fee_bps=30)
    config = PoolConfig("SOL", "USDC", PROGRAM_ID, pool.address, sol_mint, usdc_mint)
    trader = Keypair()
    await airdrop(rpc, trader.pubkey(), 10 * SOL)
    await fund(admin, trader.pubkey(), usdc_mint, 20_000 * USDC)
    await fund(admin, trader.pubkey(), sol_mint, 0)
    other = TxClient(rpc, Keypair(), poll_seconds=0.02)
    await airdrop(rpc, other.wallet, 10 * SOL)
    await fund(admin, other.wallet, usdc_mint, 100_000 * USDC)
    await fund(admin, other.wallet, sol_mint, 0)
    try:
        yield Market(rpc, admin, pool, config, trader, other)
    finally:
        await rpc.close()


def pubkey(value: str) -> Pubkey:
    return Pubkey.from_string(value)


@pytest.fixture
async def db_url(pg_url: str) -> str:
    """A fresh database with the runtime's schema (tests/conftest.py's PostgreSQL)."""
    import asyncpg

    from module_runtime.db.migrate import migrate

    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return pg_url
