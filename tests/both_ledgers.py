"""The `ledger` fixture of the tests that hold both ledgers to one behaviour: each test
runs on `InMemoryLedger` and on `PgLedger` against a real PostgreSQL (a fresh, migrated
database). Import it into a test module:
`from tests.both_ledgers import both_ledgers`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from module_runtime.db.ledger import PgLedger
from module_runtime.db.migrate import migrate
from module_runtime.ledger import InMemoryLedger

from .db.conftest import MODULE
from .pg import PgServer, fresh_database


@pytest.fixture(
    name="ledger", params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def both_ledgers(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield InMemoryLedger()
        return
    server: PgServer = request.getfixturevalue("pg_server")  # only the PostgreSQL variant
    async with fresh_database(server) as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pg = PgLedger(url, MODULE)
        await pg.connect()
        try:
            yield pg
        finally:
            await pg.close()
