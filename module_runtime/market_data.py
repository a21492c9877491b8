"""Market data as an injected dependency, and a deterministic source for paper runs.

Modules read prices only through `MarketData`, so the same strategy runs against a
recorded or synthetic series (paper, backtest, tests) or a live pool (the chain client
provides its own `MarketData`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from module_runtime.clock import Clock
from module_runtime.positions import PositionKey


class MarketDataUnavailable(Exception):
    """No price for this pair right now."""


class MarketData(Protocol):
    async def price(self, base: str, quote: str) -> Decimal:
        """The current price of `base` in `quote` (mid / spot)."""
        ...


class PriceSeries:
    """Prices that step through fixed series as the clock advances.

    Step `i` is in effect from `start + i x interval`; after the last step the last price
    holds and `exhausted` is true. With a `ManualClock` and a module ticking every
    `interval`, each tick sees the next price: a paper run is then fully deterministic.
    """

    def __init__(
        self,
        clock: Clock,
        prices: Mapping[PositionKey, Sequence[Decimal]],
        *,
        interval: timedelta,
        start: datetime | None = None,
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError("interval must be positive")
        for key, series in prices.items():
            if not series:
                raise ValueError(f"empty price series for {key}")
            if any(not isinstance(p, Decimal) or p <= 0 for p in series):
                raise ValueError(f"prices for {key} must be positive Decimals")
        self._clock = clock
        self._prices = {key: list(series) for key, series in prices.items()}
        self._interval = interval
        self._start = start or clock.now()

    def step(self) -> int:
        return max(0, (self._clock.now() - self._start) // self._interval)

    @property
    def exhausted(self) -> bool:
        """True once every series is at (or past) its last price."""
        return all(self.step() >= len(series) - 1 for series in self._prices.values())

    async def price(self, base: str, quote: str) -> Decimal:
        series = self._prices.get((base, quote))
        if series is None:
            raise MarketDataUnavailable(f"no prices for {base}/{quote}")
        return series[min(self.step(), len(series) - 1)]
