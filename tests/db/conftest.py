"""Fixtures for the persistence tests (PostgreSQL from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from module_runtime.db.ledger import ModuleRef, PgLedger
from module_runtime.db.migrate import migrate

MODULE = ModuleRef("ns", "m1", "custom")


@pytest.fixture
async def db_url(pg_url: str) -> str:
    """A fresh database with the schema applied."""
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return pg_url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the migrated test database, for assertions."""
    conn = await asyncpg.connect(db_url)
    try:
        yield conn
    finally:
        await conn.close()


LedgerFactory = Callable[..., Any]


@pytest.fixture
async def make_pg_ledger(db_url: str) -> AsyncIterator[LedgerFactory]:
    """Connected PgLedgers on the test database; all closed after the test."""
    made: list[PgLedger] = []

    async def make(module: ModuleRef = MODULE, **options: Any) -> PgLedger:
        ledger = PgLedger(db_url, module, **options)
        await ledger.connect()
        made.append(ledger)
        return ledger

    try:
        yield make
    finally:
        for ledger in made:
            await ledger.close()
