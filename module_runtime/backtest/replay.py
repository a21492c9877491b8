"""Replaying candles to a strategy: a clock that jumps from close to close, and market
data that shows nothing after it.

At step `i` the clock reads candle `i`'s *close time* (open + timeframe): the moment its
close is known. `ReplayMarket.price` is that close. History is offered through
`candles()` / `price_at()`, and both refuse anything later than the clock with
`LookAheadError`, so a strategy that peeks at the next candle fails the backtest instead
of silently looking good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import overload

from module_runtime.backtest.candles import Candle, CandleSeries, iso
from module_runtime.market_data import MarketDataUnavailable


class LookAheadError(RuntimeError):
    """The strategy asked for market data later than the replay clock."""


class ReplayClock:
    """`Clock` for a backtest: time is whatever the replay says; sleeping takes none."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ReplayClock needs a timezone-aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when < self._now:
            raise ValueError("time does not go backwards")
        self._now = when

    async def sleep(self, delay: timedelta) -> None:
        await asyncio.sleep(0)


class CandleView:
    """The candles up to the clock, as a read-only sequence: index 0 is the first, -1
    the latest closed one. An index beyond the latest raises `LookAheadError`."""

    def __init__(self, series: CandleSeries, visible: int) -> None:
        self._series = series
        self._visible = visible

    def __len__(self) -> int:
        return self._visible

    @overload
    def __getitem__(self, index: int) -> Candle: ...
    @overload
    def __getitem__(self, index: slice) -> list[Candle]: ...

    def __getitem__(self, index: int | slice) -> Candle | list[Candle]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._visible)
            if index.stop is not None and index.stop > self._visible:
                raise LookAheadError(
                    f"candles up to {index.stop} asked for; only {self._visible} have closed"
                )
            return [self._series.candle(i) for i in range(start, stop, step)]
        if index >= self._visible:
            raise LookAheadError(
                f"candle {index} asked for; only {self._visible} have closed (no look-ahead)"
            )
        if index < -self._visible:
            raise IndexError(index)
        return self._series.candle(index % self._visible)

    def __iter__(self) -> Iterator[Candle]:
        return (self._series.candle(i) for i in range(self._visible))


class ReplayMarket:
    """`MarketData` of one pair from a `CandleSeries`, advanced by the backtest runner."""

    def __init__(self, series: CandleSeries, base: str, quote: str, clock: ReplayClock) -> None:
        if not series:
            raise ValueError("no candles to replay")
        self.series = series
        self.pair = (base, quote)
        self.clock = clock
        self.index = -1  # the latest closed candle; -1: none yet
        self._close: Decimal | None = None
        self._timeframe = timedelta(seconds=series.timeframe)

    def advance(self) -> datetime:
        """Close the next candle: move the clock to its close time. Returns that time."""
        self.index += 1
        i = self.index
        series = self.series
        self._close = series.closes[i]
        when = datetime.fromtimestamp(series.times[i] + series.timeframe, UTC)
        self.clock._now = when  # increasing by construction (CandleSeries.append)
        return when

    def _check(self, base: str, quote: str) -> None:
        if (base, quote) != self.pair:
            raise MarketDataUnavailable(
                f"the backtest has candles for {self.pair[0]}/{self.pair[1]}, not {base}/{quote}"
            )

    async def price(self, base: str, quote: str) -> Decimal:
        """The latest closed candle's close."""
        if (base, quote) != self.pair:
            self._check(base, quote)
        if self._close is None:
            raise MarketDataUnavailable("no candle has closed yet")
        return self._close

    def candles(self, base: str, quote: str) -> CandleView:
        """History: the candles closed so far (no look-ahead)."""
        self._check(base, quote)
        return CandleView(self.series, self.index + 1)

    def price_at(self, base: str, quote: str, when: datetime) -> Decimal:
        """The close of the latest candle closed at `when`; refuses a time after the clock."""
        self._check(base, quote)
        now = self.clock.now()
        if when > now:
            raise LookAheadError(f"price at {when.isoformat()} asked for at {now.isoformat()}")
        target = int(when.timestamp()) - self.series.timeframe
        times = self.series.times
        lo, hi = 0, self.index + 1
        while lo < hi:  # last candle with open time <= target
            mid = (lo + hi) // 2
            if times[mid] <= target:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            raise MarketDataUnavailable(f"no candle closed by {iso(int(when.timestamp()))}")
        return self.series.closes[lo - 1]
