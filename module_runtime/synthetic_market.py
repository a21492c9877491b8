"""A seeded random walk of prices, for demos and paper runs without a venue.

Deterministic (same seed, same prices) and Decimal throughout: each step moves the
price by a uniformly drawn fraction of `volatility_percent`, drawn as an integer so no
float enters a price.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

from module_runtime.clock import Clock

_RESOLUTION = 10_000
_PLACES = Decimal("0.000001")


class RandomWalkMarket:
    def __init__(
        self,
        clock: Clock,
        *,
        seed: int,
        start_price: Decimal,
        volatility_percent: Decimal,
        step: timedelta,
        start: datetime | None = None,
    ) -> None:
        if start_price <= 0:
            raise ValueError("start_price must be positive")
        self._clock = clock
        self._step = step
        self._start = start or clock.now()
        self._vol = volatility_percent / 100
        self._random = random.Random(seed)
        self._prices: dict[tuple[str, str], list[Decimal]] = {}
        self._start_price = start_price

    def _series(self, base: str, quote: str) -> list[Decimal]:
        return self._prices.setdefault((base, quote), [self._start_price])

    async def price(self, base: str, quote: str) -> Decimal:
        series = self._series(base, quote)
        index = max(0, (self._clock.now() - self._start) // self._step)
        while len(series) <= index:
            draw = Decimal(self._random.randint(-_RESOLUTION, _RESOLUTION)) / _RESOLUTION
            nxt = (series[-1] * (1 + self._vol * draw)).quantize(_PLACES)
            series.append(max(nxt, _PLACES))
        return series[index]
