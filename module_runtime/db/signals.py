"""Signals between modules: named, small JSON messages over PostgreSQL LISTEN/NOTIFY.

    bus = SignalBus(dsn, module=ModuleRef("ns", "scanner"))
    await bus.start()                       # or `async with bus:`
    await bus.publish("opportunity.arb", {"edge": Decimal("0.0031"), "base": "WETH"})

    inbox = bus.subscribe("opportunity.*")  # an exact name, a "prefix.*" or "*"
    for signal in inbox.drain(): ...        # in a tick: what arrived since the last one
    async for signal in inbox: ...          # or wait for each one

In a module, `self.signals` is the runtime's bus (None without a database): subscribe in
`on_start()`, drain in `tick()`. Signals are advisory: an order a module places because of
one still goes through its own `OrderPath` (risk checks, ledger) like any other.

Semantics (LISTEN/NOTIFY's own): at-most-once, best effort. A signal reaches the buses
listening when the publisher's NOTIFY commits; nothing is queued for a disconnected one.
Signals of one publisher arrive in the order it published them. Each namespace has one
channel (`channel_for`), so other namespaces never see its signals; a bus never receives
its own signals. Every signal carries its publisher's sequence number: after a reconnect
the next signal each subscription gets has `gap=True`, and a jump in a publisher's
sequence is counted in `missed` (on the signal and in `tradeplane_module_signals_missed`).

Payloads are JSON objects; Decimals travel as strings (`Signal.decimal(key)` reads them
back exactly); floats are refused. The NOTIFY payload (envelope included, pure ASCII) must
be shorter than 8000 bytes: larger signals raise `SignalTooLarge` (send an id and keep the
data in a table instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import secrets
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter

from module_runtime.backoff import Backoff
from module_runtime.prom import LABELS

from .ledger import CONNECTION_ERRORS, ModuleRef
from .runtime import module_ref

if TYPE_CHECKING:
    from module_runtime.config import RuntimeConfig

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "tradeplane_signals_"
MAX_NOTIFY_BYTES = 7999  # PostgreSQL: "the payload must be shorter than 8000 bytes"
WIRE_VERSION = 1
APPLICATION_NAME = "tradeplane-signals"
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/@+=-]{0,127}$")
KNOWN_PUBLISHERS = 4096  # sequence numbers remembered (oldest publisher forgotten first)


class SignalError(Exception):
    """Base of the signal bus errors."""


class SignalsUnavailable(SignalError):
    """The bus has no database connection: the signal was not published (or, if the
    connection broke during the NOTIFY, it may have been: at-most-once)."""


class SignalTooLarge(SignalError, ValueError):
    """The encoded signal does not fit in one NOTIFY payload."""


def channel_for(namespace: str) -> str:
    """The namespace's channel: a lower-case identifier of 39 bytes (limit 63)."""
    digest = hashlib.sha256(namespace.encode()).hexdigest()[:20]
    return CHANNEL_PREFIX + digest


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(
            f"invalid signal name {name!r}: 1-128 characters of letters, digits and _.:/@+=- "
            "(not starting with a punctuation mark), e.g. 'price.WETH-USDC'"
        )
    return name


def encode_payload(value: Any, where: str = "payload") -> Any:
    """`value` as JSON-ready data: Decimals as strings, datetimes in ISO 8601; floats and
    anything else JSON cannot carry exactly are refused (TypeError naming the path)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        raise TypeError(f"{where} is a float ({value!r}): signal payloads take Decimal")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        encoded = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a non-string key {key!r}")
            encoded[key] = encode_payload(item, f"{where}.{key}")
        return encoded
    if isinstance(value, list | tuple):
        return [encode_payload(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{where} is a {type(value).__name__}: not allowed in a signal payload")


@dataclass(frozen=True, slots=True)
class Signal:
    """One signal as received (or as published, from `publish`)."""

    name: str
    payload: Mapping[str, Any]
    sender: str  # the publishing module's name (same namespace)
    seq: int  # the publisher's sequence number, 1, 2, ... per publisher process
    sent_at: datetime
    # True: signals may have been lost just before this one (a reconnect of this bus, a
    # jump in the publisher's sequence, or this subscription's queue overflowing)
    gap: bool = False
    # how many signals are known to be lost just before it: the jump in its publisher's
    # sequence, plus those this subscription dropped from its full queue
    missed: int = 0
    instance: str = field(default="", repr=False)  # the publisher process's random id

    def decimal(self, key: str) -> Decimal:
        """`payload[key]`, published as a Decimal, back as that exact Decimal."""
        value = self.payload[key]
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise TypeError(f"signal {self.name} payload {key!r} is not a decimal: {value!r}")
        return Decimal(value)


class SignalMetrics:
    """`tradeplane_module_signals_{published,received,missed}_total` on a module's registry."""

    def __init__(self, registry: CollectorRegistry, labels: tuple[str, str, str]) -> None:
        def counter(name: str, doc: str) -> Any:
            return Counter(name, doc, list(LABELS), registry=registry).labels(*labels)

        self.published = counter("tradeplane_module_signals_published", "Signals published.")
        self.received = counter(
            "tradeplane_module_signals_received", "Signals from other modules received."
        )
        self.missed = counter(
            "tradeplane_module_signals_missed",
            "Signals known to be lost: publisher sequence jumps, full subscriber queues.",
        )


class Subscription:
    """The signals matching one pattern, queued (up to `maxsize`, oldest dropped)."""

    def __init__(self, bus: SignalBus, pattern: str, maxsize: int) -> None:
        self.pattern = pattern
        self._bus = bus
        self._prefix = pattern[:-1] if pattern.endswith("*") else None
        self._queue: deque[Signal] = deque()
        self._maxsize = max(1, maxsize)
        self._ready = asyncio.Event()
        self._gap = False
        self.dropped = 0
        self.closed = False

    def matches(self, name: str) -> bool:
        if self._prefix is None:
            return name == self.pattern
        return name.startswith(self._prefix)

    def mark_gap(self) -> None:
        self._gap = True

    def _put(self, signal: Signal) -> None:
        if self._gap:
            signal = dataclasses.replace(signal, gap=True)
            self._gap = False
        self._queue.append(signal)
        if len(self._queue) > self._maxsize:  # a consumer this slow loses the oldest
            lost = self._queue.popleft()
            self.dropped += 1
            self._bus._count_missed(1)
            head = self._queue[0]
            missed = head.missed + lost.missed + 1
            self._queue[0] = dataclasses.replace(head, gap=True, missed=missed)
        self._ready.set()

    def drain(self) -> list[Signal]:
        """Every queued signal, oldest first, without waiting."""
        found = list(self._queue)
        self._queue.clear()
        self._ready.clear()
        return found

    async def get(self) -> Signal:
        """The next signal (wait under `asyncio.timeout` to bound it); raises
        `SignalError` once the subscription (or its bus) is closed."""
        while not self._queue:
            if self.closed:
                raise SignalError(f"subscription {self.pattern!r} is closed")
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[Signal]:
        return self

    async def __anext__(self) -> Signal:
        try:
            return await self.get()
        except SignalError:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self.closed = True
        self._bus._forget(self)
        self._ready.set()


class SignalBus:
    """One module's access to its namespace's signals, on its own database connection.

    `start()` connects and LISTENs (an unreachable database is retried in the background
    with backoff, like the ledger's supervisor); a lost connection is noticed at once
    (or by a probe every `probe_seconds`) and re-established, LISTEN included.
    """

    def __init__(
        self,
        dsn: str,
        *,
        module: ModuleRef,
        probe_seconds: float = 1.0,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        queue_size: int = 1000,
    ) -> None:
        self._dsn = dsn
        self.module = module
        self.channel = channel_for(module.namespace)
        self.instance = secrets.token_hex(6)
        self.probe_seconds = probe_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._queue_size = queue_size
        self._conn: Any = None
        self._lock = asyncio.Lock()  # one statement at a time on the connection
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._subscriptions: list[Subscription] = []
        self._last_seq: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._seq = 0
        self._ever_connected = False
        self._closed = False
        self._metrics: SignalMetrics | None = None
        self.problem: str | None = "not connected"
        self.reconnects = 0
        self.published = 0
        self.received = 0
        self.missed = 0

    def __repr__(self) -> str:  # never the DSN: it holds the password
        return f"SignalBus({self.module.label}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def attach_metrics(self, registry: CollectorRegistry, labels: tuple[str, str, str]) -> None:
        """Count published/received/missed signals on the module's registry (once)."""
        if self._metrics is None:
            self._metrics = SignalMetrics(registry, labels)

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and listen; if the database is unreachable, keep trying in the
        background (publish raises `SignalsUnavailable` meanwhile). Never raises for it."""
        if self._task is not None or self._closed:
            return
        try:
            await self._connect()
        except SignalsUnavailable as error:
            log.warning("signal bus not connected at start; retrying", extra={"error": str(error)})
        self._task = asyncio.create_task(self._supervise(), name="tradeplane-signals")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.remove_termination_listener(self._on_terminated)
            try:
                await asyncio.wait_for(conn.close(), timeout=2)
            except Exception:
                conn.terminate()
        for subscription in list(self._subscriptions):
            subscription.close()

    async def __aenter__(self) -> SignalBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- publish / subscribe ---------------------------------------------------------

    async def publish(self, name: str, payload: Mapping[str, Any] | None = None) -> Signal:
        """Send a signal to the namespace; returns it as sent (with its sequence number).
        Raises `SignalTooLarge`, `TypeError` (a float or other non-JSON value),
        `ValueError` (a bad name), `SignalsUnavailable` (no connection) or `SignalError`
        (the server refused the NOTIFY)."""
        check_name(name)
        if payload is not None and not isinstance(payload, Mapping):
            raise TypeError(f"a signal payload is a mapping (a JSON object), not {payload!r}")
        body = encode_payload({} if payload is None else payload)
        async with self._lock:
            sent_at = datetime.now(UTC)
            wire = self._wire(name, body, self._seq + 1, sent_at)
            size = len(wire)  # ASCII only: bytes == characters
            if size > MAX_NOTIFY_BYTES:
                raise SignalTooLarge(
                    f"signal {name!r} is {size} bytes encoded; a NOTIFY payload must be at most "
                    f"{MAX_NOTIFY_BYTES}: publish an id and keep the data in a table"
                )
            conn = self._conn
            if conn is None or self._closed:
                raise SignalsUnavailable(self.problem or "signal bus is closed")
            self._seq += 1  # used even if the NOTIFY fails: receivers then see the jump
            seq = self._seq
            try:
                await conn.execute("SELECT pg_notify($1, $2)", self.channel, wire)
            except CONNECTION_ERRORS as error:
                self._drop(conn, error)
                raise SignalsUnavailable(self.problem) from None
            except asyncpg.PostgresError as error:  # e.g. the notification queue is full
                raise SignalError(f"the database refused signal {name!r}: {error}") from None
        self.published += 1
        if self._metrics is not None:
            self._metrics.published.inc()
        return Signal(name, body, self.module.name, seq, sent_at, instance=self.instance)

    def subscribe(self, pattern: str, *, queue_size: int | None = None) -> Subscription:
        """Signals named `pattern` ("price.WETH-USDC"), starting with a prefix
        ("price.*"), or all ("*"), from the moment the bus listens. Needs no connection."""
        if pattern != "*":
            check_name(pattern[:-2] if pattern.endswith(".*") else pattern)
        subscription = Subscription(self, pattern, queue_size or self._queue_size)
        self._subscriptions.append(subscription)
        return subscription

    # ---- the wire --------------------------------------------------------------------

    def _wire(self, name: str, body: Any, seq: int, sent_at: datetime) -> str:
        envelope = {
            "v": WIRE_VERSION,
            "ns": self.module.namespace,
            "n": name,
            "s": self.module.name,
            "i": self.instance,
            "q": seq,
            "t": sent_at.isoformat(timespec="microseconds"),
            "p": body,
        }
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=True)

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if conn is not self._conn or not self._subscriptions:
            return
        try:
            envelope = json.loads(payload)
            if envelope["v"] != WIRE_VERSION or envelope["ns"] != self.module.namespace:
                return
            name, sender, instance = str(envelope["n"]), str(envelope["s"]), str(envelope["i"])
            seq = int(envelope["q"])
            sent_at = datetime.fromisoformat(envelope["t"])
            body = envelope["p"]
            if not isinstance(body, dict):
                raise TypeError("payload is not an object")
        except (ValueError, KeyError, TypeError) as error:
            log.warning("malformed signal ignored", extra={"error": repr(error), "pid": pid})
            return
        if instance == self.instance:
            return  # our own
        missed = self._track(sender, instance, seq)
        if missed is None:
            return
        signal = Signal(name, body, sender, seq, sent_at, missed > 0, missed, instance)
        delivered = False
        for subscription in self._subscriptions:
            if subscription.matches(name):
                subscription._put(signal)
                delivered = True
        if delivered:
            self.received += 1
            if self._metrics is not None:
                self._metrics.received.inc()

    def _track(self, sender: str, instance: str, seq: int) -> int | None:
        """Signals of this publisher lost before `seq` (None: a repeat, drop it)."""
        key = (sender, instance)
        last = self._last_seq.pop(key, None)
        self._last_seq[key] = seq if last is None else max(last, seq)
        if len(self._last_seq) > KNOWN_PUBLISHERS:
            self._last_seq.popitem(last=False)
        if last is None:
            return 0
        if seq <= last:
            return None
        missed = seq - last - 1
        if missed:
            log.warning(
                "signals missed",
                extra={"sender": sender, "missed": missed, "after_seq": last, "seq": seq},
            )
            self._count_missed(missed)
        return missed

    def _count_missed(self, count: int) -> None:
        self.missed += count
        if self._metrics is not None:
            self._metrics.missed.inc(count)

    def _forget(self, subscription: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    # ---- the connection --------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            conn = await asyncpg.connect(
                self._dsn,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                server_settings={"application_name": APPLICATION_NAME},
            )
        except CONNECTION_ERRORS as error:
            raise SignalsUnavailable(self._problem(error)) from None
        try:
            await conn.add_listener(self.channel, self._on_notify)
        except CONNECTION_ERRORS as error:
            conn.terminate()
            raise SignalsUnavailable(self._problem(error)) from None
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._on_terminated)
        self._conn, self.problem = conn, None
        self._lost.clear()
        if self._ever_connected:
            self.reconnects += 1
            log.warning(
                "signal bus reconnected: signals sent while it was away are lost",
                extra={"module_name": self.module.label, "reconnects": self.reconnects},
            )
        self._ever_connected = True

    def _problem(self, error: BaseException) -> str:
        text = str(error) or type(error).__name__
        self.problem = f"database unreachable: {type(error).__name__}: {text}"
        return self.problem

    def _on_terminated(self, conn: Any) -> None:
        if conn is self._conn:
            self._drop(conn, ConnectionError("connection closed"))

    def _drop(self, conn: Any, error: BaseException) -> None:
        if conn is not self._conn:
            return
        self._conn = None
        self._problem(error)
        conn.remove_termination_listener(self._on_terminated)
        conn.terminate()
        for subscription in self._subscriptions:
            subscription.mark_gap()  # whatever is published until we listen again is lost
        self._lost.set()
        if not self._closed:
            log.warning(
                "signal bus lost the database",
                extra={"module_name": self.module.label, "error": self.problem},
            )

    async def _supervise(self) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        while not self._closed:
            conn = self._conn
            if conn is None:
                try:
                    await self._connect()
                    backoff.reset()
                except SignalsUnavailable as error:
                    log.info("signal bus still unreachable", extra={"error": str(error)})
                    await asyncio.sleep(backoff.next())
                except Exception:
                    log.exception("signal bus connect failed")
                    await asyncio.sleep(backoff.next())
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=self.probe_seconds)
            if self._conn is not conn:
                continue
            try:
                async with self._lock:
                    if self._conn is conn:
                        await conn.execute("SELECT 1")
            except CONNECTION_ERRORS as error:
                self._drop(conn, error)
            except Exception as error:
                log.exception("signal bus probe failed")
                self._drop(conn, error)


def signals_for(cfg: RuntimeConfig) -> SignalBus | None:
    """The runtime's bus when a database is configured (else None: no signals)."""
    if not cfg.database_url:
        return None
    return SignalBus(cfg.database_url, module=module_ref(cfg))


@contextlib.asynccontextmanager
async def running(bus: SignalBus | None) -> AsyncIterator[SignalBus | None]:
    """`bus` started for the block and closed after it (nothing when None)."""
    if bus is None:
        yield None
        return
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()
