"""Run the operator with tracemalloc and dump where its memory is, for bench/fleet.py.

    python -m bench.trace_memory OUT SECONDS -- OPERATOR ARGS...

Every SECONDS the top allocation sites (by line) are written to
OUT, overwriting the previous dump; tracemalloc roughly doubles the process's memory, so
use it to find *what* grows with the module count, not for the RSS figure itself.
"""

from __future__ import annotations

import sys
import threading
import time
import tracemalloc
from pathlib import Path


def dump(out: Path, every: float) -> None:
    while True:
        time.sleep(every)
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        lines = [f"traced: {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB"]
        for stat in snapshot.statistics("lineno")[:40]:
            lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d}  {stat.traceback[0]}")
        out.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> None:
    out, every, sep, *args = argv
    assert sep == "--"
    tracemalloc.start(1)  # one frame: more makes 1,000 modules crawl
    threading.Thread(target=dump, args=(Path(out), float(every)), daemon=True).start()
    from tradeplane_operator.cli import main as operator

    operator(args)


if __name__ == "__main__":
    main(sys.argv[1:])
