"""kopf's start-up gate, made linear: waiters are woken when the gate's state changes,
not on every object's toggle (kopf_loader.linear_start_gate)."""

from __future__ import annotations

import asyncio

import pytest
from kopf._cogs.aiokits import aiotoggles

from tradeplane_operator.kopf_loader import linear_start_gate


@pytest.fixture(autouse=True)
def linear() -> None:
    linear_start_gate()


async def test_indexing_wakes_the_waiters_once_when_the_last_object_is_indexed() -> None:
    gate = aiotoggles.ToggleSet(all)  # kopf's `operator_indexed`
    notified = 0
    notify_all = gate._condition.notify_all

    def counting() -> None:
        nonlocal notified
        notified += 1
        notify_all()

    gate._condition.notify_all = counting  # type: ignore[method-assign]
    toggles = [await gate.make_toggle(name=f"object {i}") for i in range(300)]
    assert gate.is_off()
    waiters = [asyncio.create_task(gate.wait_for(True)) for _ in range(300)]
    await asyncio.sleep(0)
    for toggle in toggles[:-1]:
        await gate.drop_toggle(toggle)
        assert not any(w.done() for w in waiters)
    await gate.drop_toggle(toggles[-1])
    async with asyncio.timeout(5):
        await asyncio.gather(*waiters)
    assert gate.is_on()
    assert notified == 2  # off at the first object, on after the last one


async def test_a_change_of_state_still_wakes_both_kinds_of_waiters() -> None:
    gate = aiotoggles.ToggleSet(all)
    off = asyncio.create_task(gate.wait_for(False))
    await asyncio.sleep(0)
    first = await gate.make_toggle()
    async with asyncio.timeout(5):
        await off  # the first toggle turned the gate off

    paused = aiotoggles.ToggleSet(any)  # kopf's `operator_paused` (peering)
    toggle = await paused.make_toggle(False, name="peering")
    resumed_waiter = asyncio.create_task(paused.wait_for(True))
    await asyncio.sleep(0)
    assert not resumed_waiter.done()
    await toggle.turn_to(True)  # unchanged: a toggle wakes its set's waiters itself
    async with asyncio.timeout(5):
        await resumed_waiter
    on_waiter = asyncio.create_task(paused.wait_for(False))
    await asyncio.sleep(0)
    await paused.drop_toggles([toggle])  # no toggle on: the set is off again
    async with asyncio.timeout(5):
        await on_waiter
    await gate.drop_toggles([first])
    assert gate.is_on()
