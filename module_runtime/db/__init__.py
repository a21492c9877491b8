"""Persistence in PostgreSQL: migrations, the `PgLedger`, reconciliation of open intents
at start, the runtime's database supervisor (outages, metrics history) and the
`migrate`/`report` commands. See docs/persistence.md.
"""

from .ledger import LedgerUnavailable, ModuleLocked, ModuleRef, PgLedger
from .migrate import LATEST, SchemaError, check_schema, migrate

__all__ = [
    "LATEST",
    "LedgerUnavailable",
    "ModuleLocked",
    "ModuleRef",
    "PgLedger",
    "SchemaError",
    "check_schema",
    "migrate",
]
