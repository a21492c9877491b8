"""The runtime's side of persistence: `attach(host, ledger)` around `host.run(stop)`.

    async with attach(host, ledger, resolver):   # connect, reconcile, sync
        await host.run(stop)                      # trade

Start: connect (retrying with backoff while the database is unreachable; a too-old
schema is fatal), settle every open intent through the resolver *before* the module
runs, load the order path's risk state from the ledger.

While running, a supervisor task every `probe_seconds`:
- probes the database; when it is gone (probe or any ledger call failing), it makes the
  order path re-read the ledger, which fails: the path reports `ledger: ...` in
  `problems()`, so /healthz says "degraded" (the seam: `OrderPath.restore()` marks the
  ledger failing or healthy). No order leaves meanwhile: the ledger refuses intents.
- reconnects with exponential backoff (`backoff_initial` doubling up to `backoff_max`).
  Back online, the ledger writes what the outage left unwritten, the order path re-syncs
  from it (health back to "ok"), and only then does the ledger accept intents again.
- settles open intents that are not in flight (left by a broker error) via the resolver;
- records halts and resumes as `risk_events`;
- writes a `module_metrics` snapshot every `snapshot_seconds`
  (`TRADEPLANE_METRICS_SNAPSHOT_SECONDS`, default 60) and a last one at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from module_runtime.backoff import Backoff
from module_runtime.orders import Fill
from module_runtime.risk import HaltInfo
from module_runtime.trade_stats import TradeStats

from .ledger import LedgerUnavailable, ModuleRef, PgLedger
from .migrate import SchemaError
from .reconcile import IntentResolver, ReconcileReport, reconcile_open_intents, resolver_for

if TYPE_CHECKING:
    from module_runtime.config import RuntimeConfig
    from module_runtime.host import ModuleHost

log = logging.getLogger(__name__)

ENV_SNAPSHOT_SECONDS = "TRADEPLANE_METRICS_SNAPSHOT_SECONDS"
DEFAULT_SNAPSHOT_SECONDS = 60.0


def snapshot_seconds(env: Mapping[str, str] | None = None) -> float:
    env = os.environ if env is None else env
    raw = env.get(ENV_SNAPSHOT_SECONDS)
    if not raw:
        return DEFAULT_SNAPSHOT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"{ENV_SNAPSHOT_SECONDS} must be a number of seconds, got {raw!r}"
        ) from None
    if value <= 0:
        raise ValueError(f"{ENV_SNAPSHOT_SECONDS} must be > 0, got {raw!r}")
    return value


def metrics_row(stats: TradeStats, *, halted: bool, open_orders: int) -> dict[str, Any]:
    """One `module_metrics` row from the order path's statistics (Decimals as they are)."""
    return {
        "trades": stats.trades,
        "wins": stats.wins,
        "losses": stats.losses,
        "realized_pnl": stats.realized_pnl,
        "unrealized_pnl": stats.unrealized_pnl,
        "capital_in_use": stats.capital_in_use,
        "max_drawdown": stats.max_drawdown,
        "win_rate": stats.win_rate,
        "profit_factor": stats.profit_factor,
        "halted": halted,
        "open_orders": open_orders,
        "stats": stats.as_json(),
    }


def module_ref(cfg: RuntimeConfig) -> ModuleRef:
    metadata = cfg.module.metadata or {}
    generation = metadata.get("generation")
    return ModuleRef(
        namespace=cfg.namespace,
        name=cfg.name,
        type=cfg.module.spec.type.value,
        uid=metadata.get("uid"),
        version=None if generation is None else str(generation),
        config=cfg.module.spec.model_dump(mode="json", by_alias=True),
    )


def ledger_for(cfg: RuntimeConfig) -> PgLedger | None:
    """The runtime's PgLedger when a database is configured (else None: in memory)."""
    if not cfg.database_url:
        return None
    return PgLedger(cfg.database_url, module_ref(cfg))


class Persistence:
    def __init__(
        self,
        host: ModuleHost,
        ledger: PgLedger,
        resolver: IntentResolver | None = None,
        *,
        snapshot_seconds: float = DEFAULT_SNAPSHOT_SECONDS,
        probe_seconds: float = 1.0,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
    ) -> None:
        self.host = host
        self.ledger = ledger
        self.resolver = resolver
        self.snapshot_seconds = snapshot_seconds
        self.probe_seconds = probe_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.outages = 0
        self.snapshots = 0
        self.reconciled: list[Fill] = []
        self._halt: HaltInfo | None = None
        self._task: asyncio.Task[None] | None = None
        self._next_snapshot = 0.0

    # ---- start / stop ----------------------------------------------------------------

    async def start(self, stop: asyncio.Event | None = None) -> None:
        """Connect (retrying while unreachable), reconcile, sync. Raises `SchemaError`."""
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        while True:
            try:
                await self.ledger.connect()
                break
            except SchemaError:
                raise
            except LedgerUnavailable as error:
                delay = backoff.next()
                log.warning(
                    "database not reachable at start; retrying",
                    extra={"error": str(error), "retry_in": delay},
                )
                await self.host.order_path.restore()  # fails: health shows the problem
                if stop is not None and stop.is_set():
                    return
                await self._sleep(delay, stop)
        await self.reconcile(all_open=True)
        await self.host.order_path.restore()
        self._halt = self.host.order_path.halt_info
        if self._halt is not None:
            await self._risk_event("halt", self._halt)
        self._next_snapshot = time.monotonic() + self.snapshot_seconds
        self._task = asyncio.create_task(self._supervise(), name="tradeplane-db-supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.ledger.connected:
            with contextlib.suppress(LedgerUnavailable):
                await self._record_halts()
                await self.snapshot()
        try:
            await self.ledger.flush()
        except LedgerUnavailable as error:
            log.error("ledger records lost at stop", extra={"error": str(error)})
        await self.ledger.close()

    # ---- the supervisor --------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(self.probe_seconds)
            try:
                if not self.ledger.connected:
                    await self._recover()
                    continue
                await self.ledger.probe()
                await self._record_halts()
                await self.reconcile()
                if time.monotonic() >= self._next_snapshot:
                    await self.snapshot()
            except LedgerUnavailable:
                continue  # next round reconnects
            except Exception:
                log.exception("database supervisor round failed")

    async def _recover(self) -> None:
        """The database is gone: say so, then reconnect with backoff."""
        self.outages += 1
        log.error(
            "database unreachable: no orders until it is back", extra={"error": self.ledger.problem}
        )
        await self.host.order_path.restore()  # fails -> the order path reports it
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        while True:
            try:
                await self.ledger.reconnect(writable=False)
                break
            except LedgerUnavailable as error:
                delay = backoff.next()
                log.info(
                    "database still unreachable", extra={"error": str(error), "retry_in": delay}
                )
                await asyncio.sleep(delay)
        await self.host.order_path.restore()  # re-sync the risk state from the ledger
        self.ledger.allow_writes()
        log.warning("database back: trading resumes", extra={"outages": self.outages})

    async def reconcile(self, *, all_open: bool = False) -> ReconcileReport | None:
        """Settle open intents that are not in flight. At start (`all_open`) every one."""
        if self.resolver is None:
            return None
        if not all_open:
            if not self.host.order_path.state.pending:
                return None
            await self.host.order_path.drain()
        # no await between drain() returning and this read: nothing can be in flight
        open_now = await self.ledger.open_intents()
        if not open_now:
            return None
        report = await reconcile_open_intents(self.ledger, self.resolver, orders=open_now)
        self.reconciled.extend(report.resolved)
        if report.resolved and not all_open:
            await self.host.order_path.restore()
        return report

    async def snapshot(self) -> None:
        path = self.host.order_path
        row = metrics_row(path.stats(), halted=path.halted, open_orders=len(path.state.pending))
        await self.ledger.record_metrics(row, at=self.host.clock.now())
        self.snapshots += 1
        self._next_snapshot = time.monotonic() + self.snapshot_seconds

    async def _record_halts(self) -> None:
        halt = self.host.order_path.halt_info
        if halt == self._halt:
            return
        if halt is not None:
            await self._risk_event("halt", halt)
        else:
            assert self._halt is not None
            await self.ledger.record_risk_event(
                "resume", self._halt.reason, "halt cleared", self.host.clock.now()
            )
        self._halt = halt

    async def _risk_event(self, kind: str, halt: HaltInfo) -> None:
        await self.ledger.record_risk_event(kind, halt.reason, halt.message, halt.since)

    async def _sleep(self, delay: float, stop: asyncio.Event | None) -> None:
        if stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


@contextlib.asynccontextmanager
async def attach(
    host: ModuleHost,
    ledger: PgLedger,
    resolver: IntentResolver | None = None,
    *,
    stop: asyncio.Event | None = None,
    **options: Any,
) -> AsyncIterator[Persistence]:
    """Persistence around a module run (see the module docstring)."""
    persistence = Persistence(host, ledger, resolver, **options)
    await persistence.start(stop)
    try:
        yield persistence
    finally:
        await persistence.stop()


@contextlib.asynccontextmanager
async def persistence_for(
    host: ModuleHost, stop: asyncio.Event | None = None, env: Mapping[str, str] | None = None
) -> AsyncIterator[Persistence | None]:
    """`attach` when the host's ledger is a PgLedger (a database is configured), with the
    resolver for its broker; otherwise nothing (the in-memory ledger needs none)."""
    ledger = host.ledger
    if not isinstance(ledger, PgLedger):
        yield None
        return
    resolver = resolver_for(host.broker, ledger.known_tx_hashes)
    async with attach(
        host, ledger, resolver, stop=stop, snapshot_seconds=snapshot_seconds(env)
    ) as persistence:
        yield persistence
