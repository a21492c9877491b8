"""Signals between modules over a real PostgreSQL's LISTEN/NOTIFY: exact Decimal payloads,
namespace isolation, per-publisher order, gaps after reconnects, the NOTIFY size limit,
and one module trading (through its own risk checks) on another module's signal."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from module_runtime.db.ledger import ModuleRef, PgLedger
from module_runtime.db.reconcile import PaperResolver
from module_runtime.db.runtime import attach
from module_runtime.db.signals import (
    MAX_NOTIFY_BYTES,
    Signal,
    SignalBus,
    SignalsUnavailable,
    SignalTooLarge,
    Subscription,
    channel_for,
    running,
)
from module_runtime.host import ModuleHost
from module_runtime.modules.base import BaseModule, StrategyParams
from module_runtime.orders import Order, OrderStatus, Side

from ..pg import PgServer, free_port
from ..runtime.conftest import make_spec
from .rig import FastClock, WavePrice, flipflop_spec, new_paper
from .test_cli import env_for, get_json, module_file, runtime, wait_until

pytestmark = pytest.mark.postgres
D = Decimal
FAST: dict[str, Any] = {"probe_seconds": 0.05, "backoff_initial": 0.05, "backoff_max": 0.2}

LIQUIDITY = D("123456789012345678901234567890")
BusFactory = Callable[..., Any]


@pytest.fixture
async def make_bus(pg_url: str) -> AsyncIterator[BusFactory]:
    """Started SignalBuses on the test database (module `name` in `namespace`)."""
    made: list[SignalBus] = []

    async def make(name: str, namespace: str = "ns", **options: Any) -> SignalBus:
        bus = SignalBus(pg_url, module=ModuleRef(namespace, name), **{**FAST, **options})
        made.append(bus)
        await bus.start()
        assert bus.connected
        return bus

    try:
        yield make
    finally:
        for bus in made:
            await bus.close()


async def wait_for(condition: Callable[[], bool], seconds: float = 10, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.01)


async def receive(subscription: Subscription, count: int, seconds: float = 10) -> list[Signal]:
    async with asyncio.timeout(seconds):
        return [await subscription.get() for _ in range(count)]


async def test_round_trip_keeps_decimals_exact(make_bus: BusFactory) -> None:
    scanner, trader = await make_bus("scanner"), await make_bus("trader")
    prices = trader.subscribe("price.WETH-USDC")
    everything = trader.subscribe("*")
    own = scanner.subscribe("*")
    payload = {
        "price": D("3141.592653589793238462643383279"),
        "tick": D("1E-18"),
        "fees": [D("0.30"), D("-3.000")],
        "pool": {"liquidity": LIQUIDITY, "live": True},
        "venue": "uniswap-v2",
    }
    sent = await scanner.publish("price.WETH-USDC", payload)
    await scanner.publish("price.WBTC-USDC", {"price": D("97000.5")})
    [got] = await receive(prices, 1)
    assert got.decimal("price") == payload["price"]
    assert str(got.decimal("price")) == "3141.592653589793238462643383279"
    assert got.decimal("tick") == D("1E-18")
    assert got.payload["fees"] == ["0.30", "-3.000"]  # the exact digits, trailing zeros too
    assert D(got.payload["pool"]["liquidity"]) == LIQUIDITY
    assert got.payload["pool"]["live"] is True and got.payload["venue"] == "uniswap-v2"
    assert (got.name, got.sender, got.seq, got.gap, got.missed) == (
        "price.WETH-USDC",
        "scanner",
        1,
        False,
        0,
    )
    assert got.sent_at == sent.sent_at and got.payload == sent.payload
    assert [s.name for s in await receive(everything, 2)] == ["price.WETH-USDC", "price.WBTC-USDC"]
    assert prices.drain() == []  # WBTC is not its name
    await asyncio.sleep(0.1)
    assert own.drain() == []  # a bus never hears itself
    with pytest.raises(TypeError, match=r"payload\.price is a float"):
        await scanner.publish("price.WETH-USDC", {"price": 3141.59})
    with pytest.raises(ValueError, match="invalid signal name"):
        await scanner.publish("bad name", {})
    assert (scanner.published, trader.received) == (2, 2)


def test_channel_names_are_short_identifiers_per_namespace() -> None:
    longest = "n" * 63  # a Kubernetes namespace is at most 63 characters
    names = {channel_for(ns) for ns in ("ns", "ns2", "default", longest)}
    assert len(names) == 4
    for name in names:
        assert name.isidentifier() and name == name.lower() and len(name.encode()) <= 63


async def test_other_namespaces_never_see_a_signal(make_bus: BusFactory, pg_url: str) -> None:
    alpha_pub, alpha_sub = await make_bus("pub", "alpha"), await make_bus("sub", "alpha")
    beta_pub, beta_sub = await make_bus("pub", "beta"), await make_bus("sub", "beta")
    assert alpha_pub.channel != beta_pub.channel
    alpha_in, beta_in = alpha_sub.subscribe("*"), beta_sub.subscribe("*")
    raw: list[str] = []  # a plain session listening on beta's channel
    spy = await asyncpg.connect(pg_url)
    await spy.add_listener(beta_pub.channel, lambda *args: raw.append(args[3]))
    try:
        await alpha_pub.publish("opportunity.arb", {"edge": D("0.01")})
        # notifications arrive in commit order: had alpha's leaked, it would come first
        await beta_pub.publish("marker", {})
        assert [s.name for s in await receive(beta_in, 1)] == ["marker"]
        assert [s.name for s in await receive(alpha_in, 1)] == ["opportunity.arb"]
        await wait_for(lambda: len(raw) == 1, what="the spy's notification")
        assert '"marker"' in raw[0] and "opportunity" not in raw[0]
        await asyncio.sleep(0.1)
        assert beta_in.drain() == [] and alpha_in.drain() == []
    finally:
        await spy.close()


async def test_signals_arrive_in_publish_order_per_publisher(make_bus: BusFactory) -> None:
    first, second, listener = await make_bus("a"), await make_bus("b"), await make_bus("z")
    inbox = listener.subscribe("tick.*")

    async def burst(bus: SignalBus, count: int) -> None:
        for i in range(1, count + 1):
            await bus.publish(f"tick.{bus.module.name}", {"i": i, "at": D(i) / 7})
            if i % 25 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(burst(first, 300), burst(second, 200))
    sent = await asyncio.gather(*(first.publish("tick.a", {"i": 300 + i}) for i in (1, 2, 3)))
    assert sorted(s.seq for s in sent) == [301, 302, 303]  # each returns its own number
    got = await receive(inbox, 503)
    for sender, count in (("a", 300), ("b", 200)):
        mine = [s for s in got if s.sender == sender][:count]
        assert [s.seq for s in mine] == list(range(1, count + 1))
        assert [s.payload["i"] for s in mine] == list(range(1, count + 1))
        assert [s.decimal("at") for s in mine] == [D(i) / 7 for i in range(1, count + 1)]
    last = [(s.seq, s.payload["i"]) for s in got if s.sender == "a"][300:]
    assert last == sorted((s.seq, s.payload["i"]) for s in sent)
    assert not any(s.gap for s in got)
    assert listener.missed == 0 and listener.received == 503


async def test_a_subscriber_resubscribes_after_a_restart_and_flags_the_gap(
    make_bus: BusFactory, pg_server: PgServer
) -> None:
    publisher, subscriber = await make_bus("pub"), await make_bus("sub")
    inbox = subscriber.subscribe("opportunity.*")
    for i in (1, 2):
        await publisher.publish("opportunity.arb", {"i": i})
    assert [(s.seq, s.gap) for s in await receive(inbox, 2)] == [(1, False), (2, False)]

    await asyncio.to_thread(pg_server.stop, "fast")
    try:
        await wait_for(lambda: not subscriber.connected, what="the subscriber to notice")
        with pytest.raises(SignalsUnavailable, match="database unreachable"):
            await publisher.publish("opportunity.arb", {"i": "lost"})
        assert pg_server.password not in repr(subscriber) + str(subscriber.problem)
    finally:
        await asyncio.to_thread(pg_server.start)
    await wait_for(lambda: publisher.connected and subscriber.connected, what="both back")
    assert subscriber.reconnects == 1 and publisher.reconnects == 1
    await publisher.publish("opportunity.arb", {"i": 3})
    await publisher.publish("opportunity.arb", {"i": 4})
    after = await receive(inbox, 2)
    # the refused publish never used a sequence number: nothing is known to be missing,
    # but the subscriber was away, so the first signal after it is flagged
    assert [(s.payload["i"], s.seq, s.gap, s.missed) for s in after] == [
        (3, 3, True, 0),
        (4, 4, False, 0),
    ]


async def test_signals_sent_while_a_subscriber_is_away_are_counted_missed(
    make_bus: BusFactory, pg_url: str, pg_server: PgServer
) -> None:
    publisher, subscriber = await make_bus("pub"), await make_bus("sub")
    registry = CollectorRegistry()
    subscriber.attach_metrics(registry, ("sub", "ns", "custom"))
    inbox = subscriber.subscribe("price.*")
    await publisher.publish("price.WETH-USDC", {"price": D("3000.1")})
    assert (await receive(inbox, 1))[0].seq == 1
    database = pg_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg_server.url())  # the `postgres` database
    try:
        # keep the subscriber out (the publisher's session stays) and cut its session
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND application_name = 'tradeplane-signals' AND pid = ANY($2)",
            database,
            [subscriber._conn.get_server_pid()],
        )
        await wait_for(lambda: not subscriber.connected, what="the subscriber to be cut")
        for price in ("3000.2", "3000.3", "3000.4"):
            await publisher.publish("price.WETH-USDC", {"price": D(price)})
        await asyncio.sleep(0.3)  # it keeps trying meanwhile
        assert not subscriber.connected
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
    await wait_for(lambda: subscriber.connected, what="the subscriber back")
    await publisher.publish("price.WETH-USDC", {"price": D("3000.5")})
    [after] = await receive(inbox, 1)
    assert (after.seq, after.decimal("price"), after.gap, after.missed) == (5, D("3000.5"), True, 3)
    assert subscriber.missed == 3
    labels = {"module": "sub", "namespace": "ns", "type": "custom"}
    assert registry.get_sample_value("tradeplane_module_signals_missed_total", labels) == 3
    assert registry.get_sample_value("tradeplane_module_signals_received_total", labels) == 2


async def test_a_slow_subscriber_loses_the_oldest_and_is_told(make_bus: BusFactory) -> None:
    publisher, subscriber = await make_bus("pub"), await make_bus("sub")
    slow = subscriber.subscribe("tick", queue_size=3)
    fast = subscriber.subscribe("tick")
    for i in range(1, 6):
        await publisher.publish("tick", {"i": i})
    assert [s.seq for s in await receive(fast, 5)] == [1, 2, 3, 4, 5]
    got = slow.drain()
    assert [(s.seq, s.gap, s.missed) for s in got] == [(3, True, 2), (4, False, 0), (5, False, 0)]
    assert (slow.dropped, subscriber.missed) == (2, 2)
    slow.close()
    with pytest.raises(StopAsyncIteration):
        await anext(slow)


async def test_a_payload_over_the_notify_limit_is_refused(
    make_bus: BusFactory, pg_url: str
) -> None:
    publisher, subscriber = await make_bus("pub"), await make_bus("sub")
    inbox = subscriber.subscribe("blob")
    raw: list[str] = []
    spy = await asyncpg.connect(pg_url)
    await spy.add_listener(publisher.channel, lambda *args: raw.append(args[3]))
    try:
        with pytest.raises(SignalTooLarge, match=r"must be at most 7999.*keep the data in a table"):
            await publisher.publish("blob", {"data": "x" * 8000})
        # the largest signal that fits is exactly PostgreSQL's limit, and it goes through
        await publisher.publish("blob", {"data": ""})
        await wait_for(lambda: len(raw) == 1, what="the empty blob")
        room = MAX_NOTIFY_BYTES - len(raw[0].encode())
        await publisher.publish("blob", {"data": "y" * room})
        await wait_for(lambda: len(raw) == 2, what="the largest blob")
        assert len(raw[1].encode()) == MAX_NOTIFY_BYTES == 7999
        with pytest.raises(SignalTooLarge):
            await publisher.publish("blob", {"data": "y" * (room + 1)})
        with pytest.raises(SignalTooLarge):  # non-ASCII travels escaped: counted as sent
            await publisher.publish("blob", {"data": "é" * (room // 6 + 1)})
        got = await receive(inbox, 2)
        assert [(s.seq, s.gap, len(s.payload["data"])) for s in got] == [
            (1, False, 0),
            (2, False, room),
        ]  # refused signals used no sequence number: no gap
    finally:
        await spy.close()


# ---- one module acting on another's signal ----------------------------------------------


class ScoutParams(StrategyParams):
    pass


class OpportunityScout(BaseModule[ScoutParams]):
    """Publishes each queued opportunity as an `opportunity.buy` signal, one per tick."""

    params_model = ScoutParams

    def configure(self) -> None:
        self.outbox: list[dict[str, Any]] = []

    async def tick(self) -> None:
        if self.outbox and self.signals is not None:
            await self.signals.publish("opportunity.buy", self.outbox.pop(0))


class FollowerParams(StrategyParams):
    pass


class SignalFollower(BaseModule[FollowerParams]):
    """Buys what an `opportunity.*` signal suggests, through its own order path."""

    params_model = FollowerParams

    def configure(self) -> None:
        self.fills: list[tuple[Signal, OrderStatus, str | None]] = []
        self.inbox: Subscription | None = None

    async def on_start(self) -> None:
        assert self.signals is not None
        self.inbox = self.signals.subscribe("opportunity.*")

    async def tick(self) -> None:
        assert self.inbox is not None
        for signal in self.inbox.drain():
            order = Order(
                venue=self.venue,
                side=Side.BUY,
                base=signal.payload["base"],
                quote=signal.payload["quote"],
                quantity=signal.decimal("quantity"),
                price=signal.decimal("price"),
                created_at=self.clock.now(),
            )
            fill = await self.submit(order)  # risk checks, ledger, broker: as any order
            self.fills.append((signal, fill.status, fill.reason))


async def test_a_module_trades_on_another_modules_signal_within_its_risk_limits(
    db_url: str,
) -> None:
    clock, market = FastClock(), WavePrice()
    spec = make_spec(
        strategy={"tickSeconds": 1},
        risk=flipflop_spec().risk.model_dump(mode="json", by_alias=True),
    )  # maxPositionSize 2000
    hosts: dict[str, ModuleHost] = {}
    for name, cls in (("scout", OpportunityScout), ("follower", SignalFollower)):
        hosts[name] = ModuleHost(
            spec, name=name, namespace="ns", market=market, clock=clock,
            broker=new_paper(clock, market), ledger=PgLedger(db_url, ModuleRef("ns", name)),
            module_class=cls,
            signals=SignalBus(db_url, module=ModuleRef("ns", name), **FAST),
        )  # fmt: skip
    scout, follower = hosts["scout"].module, hosts["follower"].module
    assert isinstance(scout, OpportunityScout) and isinstance(follower, SignalFollower)
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:  # as `tradeplane-runtime run` does
        for host in hosts.values():
            assert isinstance(host.ledger, PgLedger)
            await stack.enter_async_context(
                attach(host, host.ledger, PaperResolver(), probe_seconds=0.05)
            )
            await stack.enter_async_context(running(host.signals))
        tasks = [asyncio.create_task(host.run(stop)) for host in hosts.values()]
        # signals reach subscriptions that exist when they are sent: wait for B's
        await wait_for(lambda: follower.inbox is not None, what="the follower to subscribe")
        scout.outbox += [
            {"base": "WETH", "quote": "USDC", "quantity": D("0.5"), "price": D("1001")},
            {"base": "WETH", "quote": "USDC", "quantity": D("5"), "price": D("1001")},  # 5005
        ]
        await wait_for(lambda: len(follower.fills) == 2, what="both signals acted on")
        stop.set()
        await asyncio.gather(*tasks)
        assert [host.health()["status"] for host in hosts.values()] == ["ok", "ok"]
    (first, status1, _), (second, status2, reason2) = follower.fills
    assert (first.sender, first.seq, status1) == ("scout", 1, OrderStatus.FILLED)
    assert (second.seq, status2) == (2, OrderStatus.REJECTED)
    assert reason2 is not None and reason2.startswith("max_position_size")

    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT m.name, o.status, o.quantity, o.price FROM orders o "
            "JOIN modules m ON m.id = o.module_id"
        )
        assert [tuple(r) for r in rows] == [("follower", "filled", D("0.5"), D("1001"))]
        rejected = await conn.fetch(
            "SELECT m.name, r.reason, r.detail->>'quantity' AS quantity FROM risk_events r "
            "JOIN modules m ON m.id = r.module_id WHERE r.kind = 'rejection'"
        )
        assert [tuple(r) for r in rejected] == [("follower", "max_position_size", "5")]
    finally:
        await conn.close()

    def sample(host: ModuleHost, what: str) -> float | None:
        labels = {"module": host.name, "namespace": "ns", "type": "custom"}
        return host.registry.get_sample_value(f"tradeplane_module_signals_{what}_total", labels)

    assert sample(hosts["scout"], "published") == 2 and sample(hosts["scout"], "received") == 0
    assert sample(hosts["follower"], "received") == 2
    assert sample(hosts["follower"], "missed") == 0


async def test_the_runtime_process_listens_and_exports_the_signal_counters(
    db_url: str, pg_server: PgServer, tmp_path: Path
) -> None:
    port = free_port()
    env = env_for(
        db_url,
        TRADEPLANE_CONFIG_FILE=str(module_file(tmp_path)),
        TRADEPLANE_LISTEN_ADDRESS="127.0.0.1",
        TRADEPLANE_PORT=str(port),
    )
    logs = tmp_path / "runtime.log"
    with logs.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            *runtime("run"), env=env, stdout=out, stderr=out
        )
    try:
        await asyncio.to_thread(
            wait_until, lambda: get_json(f"http://127.0.0.1:{port}/readyz"), 30, "readyz"
        )
        conn = await asyncpg.connect(db_url)
        try:
            deadline = time.monotonic() + 10
            while not await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()",
                "tradeplane-signals",
            ):
                assert time.monotonic() < deadline, "no signal session"
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
        text = await asyncio.to_thread(get_text, f"http://127.0.0.1:{port}/metrics")
        for what in ("published", "received", "missed"):
            assert (
                f'tradeplane_module_signals_{what}_total{{module="cli-mod",namespace="ns",'
                f'type="custom"}} 0.0' in text
            ), what
        proc.terminate()  # SIGTERM: a clean stop
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert pg_server.password not in logs.read_text()


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
        return text
