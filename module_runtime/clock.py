"""Time as an injected dependency.

Risk limits are per UTC day and the module loop sleeps between ticks; both go through a
`Clock` so that tests and paper runs can drive time deterministically instead of
calling `datetime.now()` deep inside the trading logic.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, delay: timedelta) -> None:
        """Let `delay` pass."""
        ...


class SystemClock:
    """Wall-clock time, for live and paper pods."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, delay: timedelta) -> None:
        await asyncio.sleep(max(delay.total_seconds(), 0))


class ManualClock:
    """Time that only moves when told to: `sleep` advances it instantly.

    Used for deterministic paper runs over a recorded price series and for tests.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delay: timedelta) -> None:
        if delay < timedelta(0):
            raise ValueError("time does not go backwards")
        self._now += delay

    async def sleep(self, delay: timedelta) -> None:
        self.advance(max(delay, timedelta(0)))
        await asyncio.sleep(0)  # still yield, so other tasks (and stop events) get a turn
