"""Schema migrations: versioned SQL files applied in order, once, under an advisory lock.

`module_runtime/migrations/NNNN_name.sql` brings the schema to version NNNN. `migrate()`
takes a session advisory lock first, so concurrent runs (two init containers, two
replicas) queue up: the first applies what is missing, the others find nothing to do.
Each file runs in its own transaction together with its `schema_version` row, so a
failed migration leaves the previous version intact.

`check_schema()` is what the runtime calls at start: it refuses a database older than
`LATEST` (or one whose applied migrations do not match the files) with a message that
says what to run. A *newer* schema is accepted: migrations only add, and during a rolling
upgrade the old runtime may still run against the new schema for a while.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from module_runtime.config import ConfigError

log = logging.getLogger(__name__)

# pg_advisory_lock(int, int) keys: the first says "tradeplane", the second what is locked.
LOCK_CLASS = 0x7A4D
MIGRATION_LOCK = 0

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


class SchemaError(ConfigError):
    """The database schema does not fit this runtime; the message says what to do. A
    `ConfigError`: the runtime refuses to start with it (exit 2), it is not retried."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The migration files shipped with this runtime, by version."""
    found = []
    for entry in resources.files("module_runtime.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise SchemaError(f"migration files must be numbered 1..n without gaps, got {versions}")
    return found


LATEST = len(migrations())


async def applied(conn: Any) -> dict[int, str]:
    """version -> checksum of the migrations applied to this database ({} if none)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_version ORDER BY version")
    return {int(r["version"]): str(r["checksum"]) for r in rows}


async def migrate(conn: Any, *, target: int | None = None) -> list[int]:
    """Apply the missing migrations up to `target` (default: all); returns the versions
    this call applied. Safe to run concurrently from several sessions."""
    wanted = [m for m in migrations() if target is None or m.version <= target]
    await conn.execute("SELECT pg_advisory_lock($1, $2)", LOCK_CLASS, MIGRATION_LOCK)
    try:
        await conn.execute(SCHEMA_VERSION_TABLE)
        done = await applied(conn)
        _verify(done, wanted)
        new = []
        for migration in wanted:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_version (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("migration applied", extra={"version": migration.version})
            new.append(migration.version)
        return new
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_CLASS, MIGRATION_LOCK)


async def check_schema(conn: Any, *, required: int | None = None) -> int:
    """The database's schema version; raises `SchemaError` if it is older than `required`
    (default: `LATEST`) or its migrations differ from this runtime's files."""
    required = LATEST if required is None else required
    done = await applied(conn)
    version = max(done, default=0)
    if version < required:
        raise SchemaError(
            f"database schema is at version {version}, this runtime needs version {required}: "
            "run `tradeplane-runtime migrate` (the runtime pod's init container) first"
        )
    _verify(done, migrations())
    if version > LATEST:
        log.warning(
            "database schema is newer than this runtime",
            extra={"schema_version": version, "runtime_schema_version": LATEST},
        )
    return version


def _verify(done: dict[int, str], files: list[Migration]) -> None:
    for migration in files:
        checksum = done.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise SchemaError(
                f"migration {migration.version} ({migration.name}) applied to this database "
                "differs from the runtime's file: released migrations must never change"
            )
