"""Crash safety: SIGKILL the runtime at random points across many orders, restart it,
and compare the ledger with the venue's own record (the paper broker's journal).

No duplicate: every order executed at most once (journal) and booked at most once
(orders.order_id is the key). No missing trade: every execution is a FILLED row with the
venue's numbers, and every order the ledger settled otherwise never executed.
CRASH_KILLS (default 10) sets the number of kills; CRASH_SEED the random seed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from module_runtime.db.ledger import PgLedger

from .conftest import MODULE
from .rig import read_journal

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


def start_child(url: str, journal: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    env = {**os.environ, "TRADEPLANE_DATABASE_URL": url, "CRASH_JOURNAL": str(journal)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.db.crash_child"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until reconciled (or the child dies)
    if not line:
        proc.kill()
        raise AssertionError(f"crash child exited early ({proc.wait()})")
    return proc, json.loads(line)


def executions(journal: Path) -> int:
    try:
        return journal.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_repeatedly(url: str, journal: Path, kills: int) -> Counter[str]:
    """Start, let it trade, SIGKILL; `kills` times; then start once more and stop cleanly.
    Half the kills land the instant an execution hits the journal (the venue answered,
    the outcome is not committed yet), the others anywhere in the next order or two."""
    rng = random.Random(int(os.environ.get("CRASH_SEED", "5")))
    reconciled: Counter[str] = Counter()
    for i in range(kills):
        proc, ready = start_child(url, journal)
        reconciled.update(ready["reconciled"])
        target = executions(journal) + rng.randint(3, 40)
        deadline = time.monotonic() + 20
        while executions(journal) < target and proc.poll() is None:
            assert time.monotonic() < deadline, "the child stopped trading"
            if i % 2:
                time.sleep(0.001)
        if i % 2:
            time.sleep(rng.random() * 0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc, ready = start_child(url, journal)  # settles what the last kill left open
    reconciled.update(ready["reconciled"])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    return reconciled


async def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    db_url: str, tmp_path: Path
) -> None:
    kills = int(os.environ.get("CRASH_KILLS", "10"))
    journal = tmp_path / "venue.jsonl"
    reconciled = await asyncio.to_thread(kill_repeatedly, db_url, journal, kills)
    venue = read_journal(journal)  # raises on an order executed twice
    conn = await asyncpg.connect(db_url)
    try:
        rows = {r["order_id"]: r for r in await conn.fetch("SELECT * FROM orders")}
    finally:
        await conn.close()
    statuses = Counter(r["status"] for r in rows.values())
    assert statuses["pending"] == statuses["sent"] == 0, statuses
    assert set(venue) <= set(rows), "an execution without a durable intent"
    for order_id, row in rows.items():
        fill = venue.get(order_id)
        if row["status"] == "filled":
            assert fill is not None, f"{order_id} booked but never executed"
            assert (row["filled_quantity"], row["fill_price"], row["fee"]) == (
                fill.quantity,
                fill.price,
                fill.fee,
            )
        else:
            assert fill is None, f"{order_id} executed but settled as {row['status']}"
    # the booked fills replay into consistent positions (no sell beyond what was bought)
    ledger = PgLedger(db_url, MODULE)
    await ledger.connect()
    trades = await ledger.closed_trades()
    await ledger.close()
    assert len(trades) == sum(
        1 for r in rows.values() if r["status"] == "filled" and r["side"] == "sell"
    )
    print(
        f"crash: {kills} SIGKILLs, {len(rows)} orders, {len(venue)} executions, "
        f"{len(trades)} closed trades, statuses {dict(statuses)}, "
        f"settled at restart {dict(reconciled)}"
    )
    assert len(venue) >= kills * 3
