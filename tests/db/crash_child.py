"""The runtime the crash test kills: `python -m tests.db.crash_child`.

The same wiring as `tradeplane-runtime run` with a database (`PgLedger` + `attach`), with
three test pieces: a module that orders on every tick, a fast clock (10 ms ticks) and a
paper broker that journals each execution to a file before answering (the venue's own
record, which survives SIGKILL). Environment: TRADEPLANE_DATABASE_URL, CRASH_JOURNAL.
Prints one JSON line once open intents are reconciled, then trades until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from module_runtime.db.ledger import PgLedger
from module_runtime.db.runtime import attach
from module_runtime.host import ModuleHost

from .conftest import MODULE
from .rig import (
    FastClock,
    FlipFlopModule,
    JournalBroker,
    JournalResolver,
    WavePrice,
    flipflop_spec,
    new_paper,
)


async def main() -> int:
    journal = Path(os.environ["CRASH_JOURNAL"])
    clock, market = FastClock(), WavePrice()
    ledger = PgLedger(os.environ["TRADEPLANE_DATABASE_URL"], MODULE)
    host = ModuleHost(
        flipflop_spec(),
        name=MODULE.name,
        namespace=MODULE.namespace,
        market=market,
        clock=clock,
        broker=JournalBroker(new_paper(clock, market), journal),
        ledger=ledger,
        module_class=FlipFlopModule,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with attach(host, ledger, JournalResolver(journal), stop=stop) as persistence:
        statuses = Counter(f.status.value for f in persistence.reconciled)
        print(json.dumps({"ready": True, "reconciled": statuses}), flush=True)
        await host.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
