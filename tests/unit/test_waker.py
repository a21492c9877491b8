"""operator/waker.py: a daemon's sleep ends on a wake-up, its stop, or its delay."""

from __future__ import annotations

import asyncio

from tradeplane_operator.waker import Waker


def test_a_wake_up_before_or_during_the_sleep_ends_it() -> None:
    async def scenario() -> None:
        stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waker = Waker()
        waker.set()  # came during the pass: the sleep returns at once
        await asyncio.wait_for(waker.sleep(stop, None), timeout=5)
        waker.clear()
        sleeping = asyncio.ensure_future(waker.sleep(stop, None))
        await asyncio.sleep(0)
        assert not sleeping.done()
        waker.set()
        await asyncio.wait_for(sleeping, timeout=5)
        waker.clear()
        await asyncio.wait_for(waker.sleep(stop, 0.01), timeout=5)  # the delay ends it

    asyncio.run(scenario())


def test_the_stop_ends_the_sleep_and_every_later_one() -> None:
    async def scenario() -> None:
        stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waker = Waker()
        sleeping = asyncio.ensure_future(waker.sleep(stop, None))
        await asyncio.sleep(0)
        stop.set_result(None)
        await asyncio.wait_for(sleeping, timeout=5)
        await asyncio.wait_for(waker.sleep(stop, None), timeout=5)
        assert not stop.cancelled()  # the sleep never cancels the daemon's stop

    asyncio.run(scenario())
