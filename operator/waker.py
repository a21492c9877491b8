"""How a daemon sleeps between passes: until an event about its object, its stop, or the
next pass is due.

A sleep waits on one future and the daemon's one stop task, made once for its life.
Before, every sleep made two tasks (the stop and the wake-up); at 1,000 modules those
were 2,000 tasks with their coroutines and contexts, held while every daemon slept
(bench/fleet.py, P3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kopf


class Waker:
    """Set by the events about one object, cleared at the start of each pass; a set
    that comes during the pass makes the next sleep return at once."""

    __slots__ = ("_due", "_future")

    def __init__(self) -> None:
        self._due = False
        self._future: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._due = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    def clear(self) -> None:
        self._due = False

    async def sleep(self, stop: asyncio.Future[Any], delay: float | None) -> None:
        """Until set, `stop` is done, or `delay` seconds pass (None: no limit)."""
        if self._due or stop.done():
            return
        self._future = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait(
                (self._future, stop), timeout=delay, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._future.cancel()
            self._future = None


@contextmanager
def stop_signal(stopped: kopf.DaemonStopped) -> Iterator[asyncio.Future[Any]]:
    """kopf's stop flag as one future, for the daemon's whole life."""
    task = asyncio.ensure_future(stopped.wait())
    try:
        yield task
    finally:
        task.cancel()
