"""The modules as real `tradeplane-runtime run` processes against anvil, and the wallet key
nowhere to be seen: not in logs (in process, at DEBUG; the runtime's stderr), metrics,
status or reprs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest
from web3 import AsyncWeb3

from .anvil import AnvilNode
from .conftest import Dex
from .modules_support import build_host, move_to
from .test_arbitrage_module import arb_doc
from .test_dex_module import dex_doc, round_trip
from .test_liquidity_module import lp_doc
from .test_secrets import assert_no_key

pytestmark = pytest.mark.anvil

D = Decimal
RUNTIME = Path(sys.executable).with_name("tradeplane-runtime")


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Runtime:
    name: str
    process: asyncio.subprocess.Process
    url: str
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")


@asynccontextmanager
async def runtimes(
    tmp_path: Path, docs: list[dict[str, Any]], *, key: str | None = None
) -> AsyncIterator[list[Runtime]]:
    """Start one `tradeplane-runtime run` per document, each on its own 127.0.0.N; on exit,
    SIGTERM them all and require exit code 0."""
    started: list[Runtime] = []
    try:
        for i, doc in enumerate(docs):
            name = doc["metadata"]["name"]
            config = tmp_path / f"{name}.json"
            config.write_text(json.dumps(doc))
            address = f"127.0.0.{71 + i}"
            port = free_port(address)
            env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPLANE_")}
            env |= {
                "TRADEPLANE_CONFIG_FILE": str(config),
                "TRADEPLANE_LISTEN_ADDRESS": address,
                "TRADEPLANE_PORT": str(port),
                "TRADEPLANE_LOG_FORMAT": "json",
            }
            if key is not None:
                env["TRADEPLANE_WALLET_KEY"] = key
            stderr = tmp_path / f"{name}.stderr"
            with stderr.open("wb") as sink:
                process = await asyncio.create_subprocess_exec(
                    str(RUNTIME),
                    "run",
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=sink,
                )
            started.append(Runtime(name, process, f"http://{address}:{port}", stderr))
        yield started
        for runtime in started:
            runtime.process.send_signal(signal.SIGTERM)
        for runtime in started:
            code = await asyncio.wait_for(runtime.process.wait(), 15)
            assert code == 0, f"{runtime.name} exited {code}:\n{runtime.log()[-3000:]}"
    finally:
        for runtime in started:
            if runtime.process.returncode is None:
                runtime.process.kill()
                await runtime.process.wait()


async def get(session: aiohttp.ClientSession, url: str) -> Any:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            if "json" in response.content_type:
                return await response.json()
            return await response.text()
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None


async def wait_until(
    session: aiohttp.ClientSession,
    runtime: Runtime,
    what: str,
    check: Callable[[dict[str, Any]], bool],
    within: float = 20,
) -> dict[str, Any]:
    """Poll /healthz (which carries the /status summary as `metrics`) until `check`."""
    async with asyncio.timeout(within):
        while True:
            assert runtime.process.returncode is None, (
                f"{runtime.name} died:\n{runtime.log()[-3000:]}"
            )
            body = await get(session, f"{runtime.url}/healthz")
            if isinstance(body, dict) and check(body):
                return body
            await asyncio.sleep(0.2)
    raise AssertionError(f"{runtime.name}: never {what}")  # pragma: no cover


def trades(body: dict[str, Any]) -> int:
    return int(body["metrics"]["trades"])


def in_use(body: dict[str, Any]) -> Decimal:
    return D(body["metrics"]["capitalInUse"])


async def test_modules_run_as_processes_in_paper_mode(
    anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex, tmp_path: Path
) -> None:
    """(i) dex_trading on pool A, arbitrage between A and B, liquidity_provision on B: paper
    runtimes quoting the real pools. Each trades as the pools move, sends nothing, reports
    on /healthz and /status, and exits 0 on SIGTERM."""
    dex_paper = dex_doc(anvil, dex, mode="paper")
    arb = arb_doc(anvil, dex)
    lp = lp_doc(anvil, dex)
    lp["spec"]["strategy"] |= {"pool": dex.venue_b.pair, "router": dex.venue_b.router}
    docs = [dex_paper, arb, lp]
    for doc, name in zip(docs, ("dex", "arb", "lp"), strict=True):
        doc["metadata"]["name"] = name
        doc["spec"]["mode"] = "paper"
        doc["spec"].pop("walletSecretRef", None)
    nonce = await w3.eth.get_transaction_count(dex.trader.address)
    async with runtimes(tmp_path, docs) as (dex_rt, arb_rt, lp_rt), aiohttp.ClientSession() as s:
        await wait_until(s, dex_rt, "warmed up", lambda b: b["ticks"] >= 2)
        await wait_until(s, arb_rt, "took the 3000/3100 spread", lambda b: trades(b) >= 1)
        await wait_until(s, lp_rt, "added liquidity", lambda b: in_use(b) > 0)
        await move_to(w3, dex, dex.venue_a, D(2850))
        await wait_until(s, dex_rt, "bought the dip", lambda b: in_use(b) > 0)
        await move_to(w3, dex, dex.venue_a, D(3000))
        await wait_until(s, dex_rt, "sold the recovery", lambda b: trades(b) >= 1)
        await move_to(w3, dex, dex.venue_b, D(3100) * D("0.95"))
        await wait_until(s, lp_rt, "removed liquidity", lambda b: trades(b) >= 1)
        for runtime in (dex_rt, arb_rt, lp_rt):
            health = await get(s, f"{runtime.url}/healthz")
            assert health["status"] == "ok" and health["mode"] == "paper", health
            status = await get(s, f"{runtime.url}/status")
            assert status == health["metrics"] or status["trades"] >= health["metrics"]["trades"]
            assert (await get(s, f"{runtime.url}/readyz"))["ready"] is True
        lp_metrics = await get(s, f"{lp_rt.url}/metrics")
        assert "tradeplane_module_lp_fees_earned{" in lp_metrics
        assert "tradeplane_module_lp_impermanent_loss{" in lp_metrics
        dex_status = await get(s, f"{dex_rt.url}/status")
        assert D(dex_status["realizedPnl"]) > 0
    assert await w3.eth.get_transaction_count(dex.trader.address) == nonce  # paper: nothing sent
    for runtime in (dex_rt, arb_rt, lp_rt):
        assert "module stopped cleanly" in runtime.log()


async def test_wallet_key_never_shows_in_a_live_runtime(
    anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex, tmp_path: Path
) -> None:
    """(h) A live arbitrage runtime (logLevel DEBUG) signs and sends its trades; its stderr,
    /metrics, /status and /healthz never contain the key, and nothing even tried to log it (the
    redaction filter, the second line of defence, never fired)."""
    key = dex.trader.private_key
    doc = arb_doc(anvil, dex)
    doc["spec"]["logLevel"] = "DEBUG"
    nonce = await w3.eth.get_transaction_count(dex.trader.address)
    async with runtimes(tmp_path, [doc], key=key) as (runtime,), aiohttp.ClientSession() as s:
        await wait_until(s, runtime, "traded", lambda b: trades(b) >= 1)
        texts = [
            await get(s, f"{runtime.url}/metrics"),
            json.dumps(await get(s, f"{runtime.url}/status")),
            json.dumps(await get(s, f"{runtime.url}/healthz")),
        ]
    assert await w3.eth.get_transaction_count(dex.trader.address) > nonce  # it did sign
    stderr = runtime.log()
    assert "sent tx" in stderr and "arbitrage done" in stderr  # the signing path logged
    assert "[REDACTED]" not in stderr
    for text in [stderr, *texts]:
        assert_no_key(text, key)


async def test_wallet_key_never_shows_in_process(
    anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex, caplog: pytest.LogCaptureFixture
) -> None:
    """(h) A live DEX round trip in process with every logger at DEBUG (web3's included):
    no key in the records, the metrics, health, status or the reprs of what holds it."""
    key = dex.trader.private_key
    caplog.set_level(logging.DEBUG)
    host = build_host(dex_doc(anvil, dex), key)
    try:
        await round_trip(w3, dex, host)
        texts = [
            generate_latest(host.registry).decode(),
            json.dumps(host.health()),
            json.dumps(host.summary()),
            repr(host.broker),
            repr(host.module.market),
            repr(host.module),
            str(host.broker),
        ]
    finally:
        await host.module.stop()
    assert any("sent tx" in r.getMessage() for r in caplog.records)
    for text in [caplog.text, *texts]:
        assert_no_key(text, key)
