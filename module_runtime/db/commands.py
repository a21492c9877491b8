"""`tradeplane-runtime migrate` and `tradeplane-runtime report MODULE`.

Both read only `TRADEPLANE_DATABASE_URL` (no module config is needed, so `migrate` runs
as the runtime pod's init container). The URL holds a password: it is never printed.

- `migrate`: apply the missing migrations (concurrent runs are safe), print the schema
  version, exit 0. Waits up to `TRADEPLANE_MIGRATE_WAIT_SECONDS` (default 60) for the
  database to accept connections; exit 1 if it never does, 2 without a URL.
- `report MODULE [--namespace NS]`: the module's trades and PnL from the database (exit 1
  when the module has no ledger there).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import asyncpg

from module_runtime.config import ENV_DATABASE_URL

from .ledger import CONNECTION_ERRORS
from .migrate import LATEST, migrate
from .report import format_report, module_report

ENV_MIGRATE_WAIT = "TRADEPLANE_MIGRATE_WAIT_SECONDS"


def _error(message: str, code: int) -> int:
    sys.stderr.write(json.dumps({"level": "ERROR", "msg": message, "exit": code}) + "\n")
    return code


async def _connect(url: str, wait_seconds: float) -> Any:
    deadline = time.monotonic() + wait_seconds
    delay = 0.2
    while True:
        try:
            return await asyncpg.connect(url, timeout=5)
        except CONNECTION_ERRORS as error:
            if time.monotonic() + delay > deadline:
                raise ConnectionError(f"database unreachable: {type(error).__name__}") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _migrate(url: str, wait_seconds: float) -> list[int]:
    conn = await _connect(url, wait_seconds)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def migrate_command(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    url = env.get(ENV_DATABASE_URL)
    if not url:
        return _error(f"{ENV_DATABASE_URL} is not set: nothing to migrate", 2)
    try:
        wait = float(env.get(ENV_MIGRATE_WAIT, "60"))
        applied = asyncio.run(_migrate(url, wait))
    except ConnectionError as error:
        return _error(str(error), 1)
    except ValueError:
        return _error(f"{ENV_MIGRATE_WAIT} must be a number of seconds", 2)
    done = ", ".join(map(str, applied)) or "none"
    print(f"schema at version {LATEST} (applied now: {done})")
    return 0


async def _report(url: str, namespace: str, name: str) -> dict[str, Any] | None:
    conn = await _connect(url, 5)
    try:
        return await module_report(conn, namespace, name)
    finally:
        await conn.close()


def report_command(module: str | None, namespace: str, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    url = env.get(ENV_DATABASE_URL)
    if not url:
        return _error(f"{ENV_DATABASE_URL} is not set", 2)
    if not module:
        return _error("report needs the module's name: tradeplane-runtime report MODULE", 2)
    try:
        report = asyncio.run(_report(url, namespace, module))
    except ConnectionError as error:
        return _error(str(error), 1)
    if report is None:
        return _error(f"no module {namespace}/{module} in the database", 1)
    print(format_report(report))
    return 0
