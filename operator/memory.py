"""Keep the operator's resident memory near what it holds (bench/fleet.py, P3).

glibc keeps freed memory in its heap for reuse, so after a burst (a cold start that
creates 1,000 pods, a relist) the resident size stays at the burst's high-water mark.
`malloc_trim` hands the free pages back; at 1,000 modules that is about 10 MiB.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

log = logging.getLogger(__name__)


def malloc_trim() -> Callable[[], int] | None:
    """glibc's malloc_trim(0), or None where there is none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: int(trim(0))


async def trim_forever(interval: float) -> None:
    """Trim every `interval` seconds, in a worker thread: the loop never waits on it."""
    trim = malloc_trim()
    if trim is None or interval <= 0:
        return
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(trim)


def drop_managed_fields(metadata: MutableMapping[str, Any]) -> None:
    """kopf keeps each module's last body for its daemon; more than half of that body is
    `metadata.managedFields` (about 19 KB of objects a module), which nothing here reads.
    Dropped from the raw event in place, so the body kopf keeps no longer holds it."""
    metadata.pop("managedFields", None)


def drop_status(body: Mapping[str, Any]) -> None:
    """Empty the status in the raw event kopf keeps for a daemon, in place."""
    status = body.get("status")
    if isinstance(status, dict):
        status.clear()
