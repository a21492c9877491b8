"""Migrations on a real PostgreSQL: once, concurrently, and the runtime's version check."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from module_runtime.db.ledger import PgLedger
from module_runtime.db.migrate import LATEST, SchemaError, check_schema, migrate, migrations

from .conftest import MODULE

pytestmark = pytest.mark.postgres


async def versions(conn: asyncpg.Connection) -> list[int]:
    return [r["version"] for r in await conn.fetch("SELECT version FROM schema_version")]


async def test_migrate_applies_every_file_once(pg_url: str) -> None:
    assert [m.version for m in migrations()] == list(range(1, LATEST + 1)) and LATEST >= 2
    conn = await asyncpg.connect(pg_url)
    try:
        assert await migrate(conn) == list(range(1, LATEST + 1))
        assert await migrate(conn) == []
        assert await versions(conn) == list(range(1, LATEST + 1))
        assert await check_schema(conn) == LATEST
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert {"modules", "orders", "module_metrics", "risk_events"} <= tables
        money = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'orders' AND column_name IN "
            "('quantity', 'price', 'fee', 'gas_fee', 'realized_pnl', 'fill_price')"
        )
        assert {r["data_type"] for r in money} == {"numeric"} and len(money) == 6
    finally:
        await conn.close()


async def test_concurrent_migrations_make_one_schema(pg_url: str) -> None:
    conns = [await asyncpg.connect(pg_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = sorted(v for result in results for v in result)
        assert applied == list(range(1, LATEST + 1))  # each version applied exactly once
        assert sum(1 for result in results if result) == 1  # by whoever got the lock first
        assert await versions(conns[0]) == list(range(1, LATEST + 1))
    finally:
        for conn in conns:
            await conn.close()


async def test_the_runtime_refuses_an_older_schema(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        with pytest.raises(SchemaError, match="version 0"):
            await check_schema(conn)
        await migrate(conn, target=LATEST - 1)
        with pytest.raises(SchemaError, match=rf"version {LATEST - 1}.*tradeplane-runtime migrate"):
            await check_schema(conn)
        ledger = PgLedger(pg_url, MODULE)
        with pytest.raises(SchemaError, match="run `tradeplane-runtime migrate`"):
            await ledger.connect()
        assert not ledger.connected
        await migrate(conn)
        await ledger.connect()
        await ledger.close()
        # a released migration that was edited afterwards is refused, not silently accepted
        await conn.execute("UPDATE schema_version SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(SchemaError, match="must never change"):
            await check_schema(conn)
    finally:
        await conn.close()
