"""operator/memory.py: the heap trim and the managedFields kopf no longer keeps."""

from __future__ import annotations

import asyncio

import kopf

from tradeplane_operator import memory


def test_managed_fields_leave_the_raw_body_kopf_keeps() -> None:
    """kopf's body is a view over the raw event: dropping through it drops from the raw
    dict that the daemon's live body holds (a copy would keep the memory)."""
    raw = {
        "metadata": {"name": "dex", "uid": "u", "managedFields": [{"manager": "kubectl"}]},
        "spec": {"type": "dex_trading"},
    }
    body = kopf.Body(raw)  # type: ignore[arg-type]
    memory.drop_managed_fields(body["metadata"])
    assert raw["metadata"] == {"name": "dex", "uid": "u"}
    assert dict(body.spec) == {"type": "dex_trading"}
    memory.drop_managed_fields(body["metadata"])  # absent: nothing to do


def test_malloc_trim_is_glibcs() -> None:
    trim = memory.malloc_trim()
    assert trim is not None  # this machine (and the image) run glibc
    blocks = [bytearray(4096) for _ in range(20_000)]  # ~80 MB, most freed below
    del blocks[::2]
    assert trim() in (0, 1)  # 1: memory was released, 0: none could be


def test_trim_forever_is_off_at_zero() -> None:
    asyncio.run(asyncio.wait_for(memory.trim_forever(0), timeout=1))


def test_the_status_is_emptied_in_the_raw_body() -> None:
    raw = {"metadata": {"name": "dex"}, "status": {"phase": "Running", "restarts": 3}}
    body = kopf.Body(raw)  # type: ignore[arg-type]
    memory.drop_status(body)
    assert raw["status"] == {} and body.status == {}
    memory.drop_status(kopf.Body({"metadata": {}}))  # type: ignore[arg-type]  # none yet
