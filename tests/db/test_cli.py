"""`tradeplane-runtime migrate`, `report` and `run` against a real PostgreSQL, as processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from module_runtime.db.migrate import LATEST, migrate

from ..pg import PgServer, free_port
from ..runtime.conftest import make_spec

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "tradeplane-runtime"


def runtime(*args: str) -> list[str]:
    if SCRIPT.exists():
        return [str(SCRIPT), *args]
    return [sys.executable, "-m", "module_runtime.cli", *args]


def env_for(url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPLANE_")}
    if url:
        env["TRADEPLANE_DATABASE_URL"] = url
    env.update(extra)
    return env


def module_file(tmp_path: Path) -> Path:
    spec = make_spec(
        strategy={"base": "WETH", "quote": "USDC", "orderSize": "100", "emaPeriod": 2,
                  "bandPercent": 0.1, "tickSeconds": 1},
        marketData={"source": "synthetic", "seed": 3, "volatilityPercent": 2, "stepSeconds": 1},
    )  # fmt: skip
    doc = {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingModule",
        "metadata": {"name": "cli-mod", "namespace": "ns", "uid": "uid-1", "generation": 3},
        "spec": spec.model_dump(mode="json", by_alias=True),
    }
    path = tmp_path / "module.json"
    path.write_text(json.dumps(doc))
    return path


async def test_migrate_command_runs_concurrently(pg_url: str, pg_server: PgServer) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            *runtime("migrate"),
            env=env_for(pg_url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    for out, err in outputs:
        assert f"schema at version {LATEST}".encode() in out
        assert pg_server.password.encode() not in out + err
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in rows] == list(range(1, LATEST + 1))
    finally:
        await conn.close()
    done = await asyncio.to_thread(
        subprocess.run, runtime("migrate"), env=env_for(None), capture_output=True, timeout=30
    )
    assert done.returncode == 2 and b"TRADEPLANE_DATABASE_URL" in done.stderr


async def test_run_refuses_an_older_schema(
    pg_url: str, pg_server: PgServer, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn, target=LATEST - 1)
    finally:
        await conn.close()
    done = await asyncio.to_thread(
        subprocess.run,
        runtime("run"),
        env=env_for(
            pg_url,
            TRADEPLANE_CONFIG_FILE=str(module_file(tmp_path)),
            TRADEPLANE_LISTEN_ADDRESS="127.0.0.1",
            TRADEPLANE_PORT=str(free_port()),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"schema is at version {LATEST - 1}" in done.stderr
    assert "tradeplane-runtime migrate" in done.stderr
    assert pg_server.password not in done.stderr + done.stdout


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def wait_until(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_sequence(url: str, tmp_path: Path, password: str) -> dict[str, Any]:
    """run -> SIGKILL -> (an intent left open) -> run again (settles it) -> SIGTERM."""
    port = free_port()
    env = env_for(
        url,
        TRADEPLANE_CONFIG_FILE=str(module_file(tmp_path)),
        TRADEPLANE_LISTEN_ADDRESS="127.0.0.1",
        TRADEPLANE_PORT=str(port),
        TRADEPLANE_METRICS_SNAPSHOT_SECONDS="0.3",
    )
    logs = tmp_path / "runtime.log"
    base = f"http://127.0.0.1:{port}"
    seen: dict[str, Any] = {}
    for round_ in ("first", "second"):
        with logs.open("a") as log:
            proc = subprocess.Popen(runtime("run"), env=env, stdout=log, stderr=log)
        try:
            wait_until(lambda: get_json(f"{base}/readyz"), 30, "readyz")
            seen[round_] = wait_until(lambda: get_json(f"{base}/healthz"), 10, "healthz")
            if round_ == "first":
                time.sleep(1.0)  # a few ticks and metrics snapshots
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                asyncio.run(leave_an_open_intent(url))
            else:
                proc.send_signal(signal.SIGTERM)
                seen["exit"] = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    seen["logs"] = logs.read_text()
    assert password not in seen["logs"]
    return seen


async def leave_an_open_intent(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO orders (order_id, module_id, venue, side, base, quote, quantity, price,
                                created_at)
            SELECT 'left-open', id, 'paper', 'buy', 'WETH', 'USDC', 0.1, 1000, now()
            FROM modules WHERE namespace = 'ns' AND name = 'cli-mod'
            """
        )
    finally:
        await conn.close()


async def test_run_persists_recovers_and_reports(
    db_url: str, pg_server: PgServer, tmp_path: Path
) -> None:
    seen = await asyncio.to_thread(run_sequence, db_url, tmp_path, pg_server.password)
    assert seen["first"]["status"] == "ok" and seen["second"]["status"] == "ok"
    assert seen["exit"] == 0
    conn = await asyncpg.connect(db_url)
    try:
        module = await conn.fetchrow("SELECT * FROM modules")
        assert (module["namespace"], module["name"], module["uid"], module["version"]) == (
            "ns",
            "cli-mod",
            "uid-1",
            "3",
        )
        assert json.loads(module["config"])["strategy"]["orderSize"] == "100"
        left = await conn.fetchrow("SELECT status, reason FROM orders WHERE order_id = 'left-open'")
        assert left["status"] == "dropped" and "paper venue" in left["reason"]
        assert (
            await conn.fetchval("SELECT count(*) FROM orders WHERE status IN ('pending','sent')")
            == 0
        )
        assert await conn.fetchval("SELECT count(*) FROM module_metrics") >= 2
    finally:
        await conn.close()
    done = await asyncio.to_thread(
        subprocess.run,
        runtime("report", "cli-mod", "--namespace", "ns"),
        env=env_for(db_url),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "module        ns/cli-mod (custom)" in done.stdout
    assert "dropped 1" in done.stdout and "realized PnL" in done.stdout
    report = json.loads(done.stdout.splitlines()[-1].removeprefix("json "))
    assert report["openIntents"] == 0 and report["lastSnapshot"] is not None
    assert pg_server.password not in done.stdout + done.stderr
    missing = await asyncio.to_thread(
        subprocess.run,
        runtime("report", "nope"),
        env=env_for(db_url),
        capture_output=True,
        timeout=30,
    )
    assert missing.returncode == 1 and b"no module default/nope" in missing.stderr
