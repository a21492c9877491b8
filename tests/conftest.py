"""Fixtures shared by every test folder. Keep this file small: logic lives in helpers.

- `pg_server` (session): a real PostgreSQL server (tests/pg.py), stopped at the end.
- `pg_url` (function): the URL of a fresh, empty database on it, dropped after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from .pg import PgServer, fresh_database


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer.launch()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
async def pg_url(pg_server: PgServer) -> AsyncIterator[str]:
    async with fresh_database(pg_server) as url:
        yield url
