"""A LIVE futures runtime (`tradeplane-runtime run`, ccxt against the exchange stand-in,
its ledger in a real PostgreSQL) SIGKILLed mid-order, again and again, keeps a ledger
equal to the exchange's fills.

Kills, alternating: the instant an order request reaches the exchange, before it is
processed (the intent is durable, the exchange never saw the order: settled DROPPED at
the restart), and after the exchange filled an order but before its answer left (the
fill exists only at the exchange: the restart finds it by client order id and books it,
with the exchange's commission). The mark moves all along, so the module keeps opening
and closing longs and shorts. At the end the ledger's filled orders are exactly the
stand-in's fills (order id, quantity, price, fee), nothing is open, and the position is
the exchange's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.exchange_standin import ExchangeStandin

pytestmark = pytest.mark.postgres

D = Decimal
SCRIPT = Path(sys.executable).parent / "tradeplane-runtime"
LISTEN = os.environ.get("TRADEPLANE_STANDIN_NET", "127.0.0") + ".231"
KEY, SECRET = "crash-key", "crash-secret-9876543210"
MARKS = [D(50000), D(49600), D(50000), D(50400)]  # long below the mean, short above


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingModule",
        "metadata": {"name": "futures-crash", "namespace": "crash"},
        "spec": {
            "type": "futures_trading",
            "mode": "live",
            "capital": {"allocation": "10000", "currency": "USDT"},
            "risk": {
                "maxPositionSize": "3000",
                "maxDailyLoss": "5000",
                "maxDrawdownPercent": 60,
                "stopLossPercent": 0,
                "maxOpenPositions": 1,
                "maxLeverage": 3,
            },
            "exchangeSecretRef": {"name": "keys"},
            "strategy": {
                "base": "BTC",
                "quote": "USDT",
                "orderSize": "1000",
                "leverage": 3,
                "emaPeriod": 2,
                "bandPercent": 0.2,
                "tickSeconds": 1,
                "exchangeUrl": url,
            },
        },
    }


class Rig:
    def __init__(self, standin: ExchangeStandin, url: str, db: str, tmp: Path) -> None:
        self.standin, self.db = standin, db
        self.config = tmp / "module.json"
        self.config.write_text(json.dumps(config(url)))
        self.log = tmp / "runtime.log"
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.kills: list[str] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPLANE_")}
        return env | {
            "TRADEPLANE_CONFIG_FILE": str(self.config),
            "TRADEPLANE_DATABASE_URL": self.db,
            "TRADEPLANE_EXCHANGE_API_KEY": KEY,
            "TRADEPLANE_EXCHANGE_SECRET": SECRET,
            "TRADEPLANE_LISTEN_ADDRESS": LISTEN,
            "TRADEPLANE_PORT": str(self.port),
        }

    async def start(self) -> asyncio.subprocess.Process:
        with self.log.open("ab") as sink:
            self.proc = await asyncio.create_subprocess_exec(
                str(SCRIPT),
                "run",
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
            )
        return self.proc

    def kill_now(self, how: str) -> None:
        assert self.proc is not None and self.proc.returncode is None, self.tail()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.kills.append(how)

    async def ready(self) -> None:
        url = f"http://{LISTEN}:{self.port}/readyz"
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.returncode is None, self.tail()
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"not ready:\n{self.tail()}")

    async def rows(self, where: str = "true") -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.db)
        try:
            return list(await conn.fetch(f"SELECT * FROM orders WHERE {where} ORDER BY intent_seq"))
        finally:
            await conn.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


async def swing(standin: ExchangeStandin, stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        standin.marks["BTCUSDT"] = MARKS[i % len(MARKS)]
        i += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.6)


async def test_sigkill_mid_order_keeps_the_ledger_equal_to_the_exchange(
    pg_url: str, tmp_path: Path
) -> None:
    migrated = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "migrate",
        env={**os.environ, "TRADEPLANE_DATABASE_URL": pg_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, err = await migrated.communicate()
    assert migrated.returncode == 0, err
    standin = ExchangeStandin(KEY, SECRET, marks={"BTCUSDT": D(50000)})
    port = free_port()
    runner = await standin.start("127.0.0.1", port)
    rig = Rig(standin, f"http://127.0.0.1:{port}", pg_url, tmp_path)
    plan = ["before", "after"] * int(os.environ.get("FUTURES_CRASH_ROUNDS", "1"))
    began = time.monotonic()
    phases: list[float] = []
    pending: list[str] = []

    async def before(params: dict[str, str]) -> None:
        if pending and pending[0] == "before":
            pending.pop(0)
            rig.kill_now("before")
            raise RuntimeError("killed before the exchange processed it")  # never processed

    async def after(order: Any) -> None:
        if pending and pending[0] == "after":
            pending.pop(0)
            rig.kill_now("after")  # filled; the answer goes nowhere

    standin.before_order, standin.after_fill = before, after
    stop = asyncio.Event()
    swinger = asyncio.create_task(swing(standin, stop))
    try:
        for how in plan:
            pending[:] = [how]
            proc = await rig.start()
            await rig.ready()
            code = await asyncio.wait_for(proc.wait(), 120)
            assert code == -signal.SIGKILL, rig.tail()
            phases.append(round(time.monotonic() - began, 1))
        # the last life settles what the last kill left open, trades on, stops cleanly
        pending.clear()
        proc = await rig.start()
        await rig.ready()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            open_rows = await rig.rows("status IN ('pending', 'sent')")
            if len(standin.fills) >= len(plan) + 2 and not open_rows:
                break
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.5)
        # an order resting at the exchange: SIGTERM cancels it
        await limit_order(f"http://127.0.0.1:{port}", standin)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, rig.tail()
    finally:
        stop.set()
        await swinger
        if rig.proc is not None and rig.proc.returncode is None:
            rig.proc.kill()
            await rig.proc.wait()
        await runner.cleanup()

    assert "module stopped cleanly" in rig.log.read_text()
    assert standin.resting() == [], "SIGTERM left an order open at the exchange"
    rows = await rig.rows()
    assert not [r for r in rows if r["status"] in ("pending", "sent")]
    filled = {r["order_id"]: r for r in rows if r["status"] == "filled"}
    fills = {f.client_order_id: f for f in standin.fills}
    assert set(filled) == set(fills), (sorted(filled), sorted(fills))
    for order_id, fill in fills.items():
        row = filled[order_id]
        assert (row["filled_quantity"], row["fill_price"], row["fee"]) == (
            fill.quantity,
            fill.price,
            fill.fee,
        ), order_id
        assert row["side"] == fill.side.lower() and row["market"] == "perp"
    dropped = [r for r in rows if r["status"] == "dropped"]
    assert len(dropped) == plan.count("before") and not {r["order_id"] for r in dropped} & set(
        fills
    )
    # the ledger's position is the exchange's
    net = sum((f.quantity if f.side == "BUY" else -f.quantity for f in standin.fills), D(0))
    assert net == standin.positions["BTCUSDT"].amount
    summary = {
        "kills": rig.kills,
        "fills": len(fills),
        "statuses": {
            s: sum(1 for r in rows if r["status"] == s) for s in {r["status"] for r in rows}
        },
        "position": str(net),
        "kill_times_s": phases,
        "seconds": round(time.monotonic() - began, 1),
    }
    print("futures live crash:", json.dumps(summary))


async def limit_order(url: str, standin: ExchangeStandin) -> None:
    """A resting limit order on the account (as if placed by hand)."""
    from module_runtime.futures.exchange import close_exchange, make_exchange

    exchange = make_exchange(KEY, SECRET, url)
    try:
        await exchange.create_order("BTC/USDT:USDT", "limit", "buy", "0.01", "40000")
    finally:
        await close_exchange(exchange)
    assert standin.resting()
