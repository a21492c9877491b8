"""OHLCV candles for backtests: one columnar series, and the sources that fill it.

Columnar (one list per field) rather than a list of objects: a one-year 1-minute series
is 525,600 candles, and a synthetic series shares one Decimal per price between open,
high, low and close. Prices are `Decimal` from the source's text (never through a
float); times are UTC epoch seconds of each candle's *open*. A candle's close is known
only at `time + timeframe`, which is when the replay clock shows it to the strategy.
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_RESOLUTION = 10_000
_PLACES = Decimal("0.000001")
ZERO = Decimal(0)


class CandleError(ValueError):
    """The candle data cannot be used; the message says where and why."""


def timeframe_seconds(text: str) -> int:
    """ "1m" -> 60, "4h" -> 14400."""
    match = re.fullmatch(r"([1-9][0-9]*)([smhd])", text)
    if match is None:
        raise CandleError(f"timeframe {text!r}: expected a number and s, m, h or d (e.g. 1m)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_time(text: str) -> int:
    """RFC 3339 (`2026-01-01T00:00:00Z`, offsets allowed) or epoch seconds -> epoch seconds."""
    text = text.strip()
    if re.fullmatch(r"[0-9]+(\.0+)?", text):
        return int(Decimal(text))
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CandleError(f"time {text!r} is neither RFC 3339 nor epoch seconds") from None
    if when.tzinfo is None:
        raise CandleError(f"time {text!r} has no timezone (write Z for UTC)")
    return int(when.timestamp())


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Candle:
    time: int  # open time, UTC epoch seconds
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO


@dataclass
class CandleSeries:
    """Candles of one pair, strictly increasing in time."""

    timeframe: int  # seconds
    times: list[int] = field(default_factory=list)
    opens: list[Decimal] = field(default_factory=list)
    highs: list[Decimal] = field(default_factory=list)
    lows: list[Decimal] = field(default_factory=list)
    closes: list[Decimal] = field(default_factory=list)
    volumes: list[Decimal] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.times)

    def candle(self, i: int) -> Candle:
        return Candle(
            self.times[i],
            self.opens[i],
            self.highs[i],
            self.lows[i],
            self.closes[i],
            self.volumes[i],
        )

    def append(self, c: Candle) -> None:
        if self.times and c.time <= self.times[-1]:
            raise CandleError(
                f"candle at {iso(c.time)} is not after the one before ({iso(self.times[-1])})"
            )
        for name in ("open", "high", "low", "close"):
            if getattr(c, name) <= 0:
                raise CandleError(f"candle at {iso(c.time)}: {name} must be > 0")
        if not c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high:
            raise CandleError(f"candle at {iso(c.time)}: low <= open, close <= high does not hold")
        self.times.append(c.time)
        self.opens.append(c.open)
        self.highs.append(c.high)
        self.lows.append(c.low)
        self.closes.append(c.close)
        self.volumes.append(c.volume)

    def window(self, start: int | None, end: int | None) -> CandleSeries:
        """The candles opening in [start, end)."""
        keep = [
            i
            for i, t in enumerate(self.times)
            if (start is None or t >= start) and (end is None or t < end)
        ]
        if len(keep) == len(self.times):
            return self
        out = CandleSeries(self.timeframe, source=self.source)
        for i in keep:
            out.times.append(self.times[i])
            out.opens.append(self.opens[i])
            out.highs.append(self.highs[i])
            out.lows.append(self.lows[i])
            out.closes.append(self.closes[i])
            out.volumes.append(self.volumes[i])
        return out

    @classmethod
    def of(cls, timeframe: int, candles: Iterable[Candle], source: str = "") -> CandleSeries:
        series = cls(timeframe, source=source)
        for c in candles:
            series.append(c)
        return series


def _decimal(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise CandleError(f"{where}: {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise CandleError(f"{where}: {text!r} is not a finite number")
    return value


COLUMNS = ("time", "open", "high", "low", "close")


def read_csv(text: str, *, timeframe: int, source: str = "csv") -> CandleSeries:
    """Rows `time,open,high,low,close[,volume]` with a header naming them (any order;
    `timestamp`/`date` are accepted for `time`). Errors name the line."""
    reader = csv.reader(io.StringIO(text))
    header: Sequence[str] | None = None
    series = CandleSeries(timeframe, source=source)
    for line, row in enumerate(reader, start=1):
        if not row or all(not cell.strip() for cell in row) or row[0].startswith("#"):
            continue
        if header is None:
            header = [
                {"timestamp": "time", "date": "time"}.get(h.strip().lower(), h.strip().lower())
                for h in row
            ]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise CandleError(f"line {line}: header lacks {', '.join(missing)}")
            continue
        if len(row) != len(header):
            raise CandleError(f"line {line}: {len(row)} fields, the header has {len(header)}")
        cells = dict(zip(header, row, strict=True))
        where = f"line {line}"
        try:
            candle = Candle(
                parse_time(cells["time"]),
                _decimal(cells["open"], where),
                _decimal(cells["high"], where),
                _decimal(cells["low"], where),
                _decimal(cells["close"], where),
                _decimal(cells["volume"], where) if cells.get("volume") else ZERO,
            )
            series.append(candle)
        except CandleError as error:
            raise CandleError(f"{where}: {error}") from None
    if header is None:
        raise CandleError("no header line (time,open,high,low,close[,volume])")
    return series


def read_csv_file(path: Path, *, timeframe: int) -> CandleSeries:
    try:
        text = path.read_text()
    except OSError as error:
        raise CandleError(f"cannot read candle file {path}: {error.strerror}") from None
    return read_csv(text, timeframe=timeframe, source=f"csv:{path.name}")


def synthetic(
    *,
    start: int,
    timeframe: int,
    count: int,
    seed: int,
    start_price: Decimal,
    volatility_percent: Decimal,
) -> CandleSeries:
    """A seeded random walk of closes (the synthetic market's walk, one step per candle);
    each candle opens at the previous close. Deterministic: same inputs, same candles."""
    if start_price <= 0:
        raise CandleError("synthetic start price must be > 0")
    rng = random.Random(seed)
    vol = volatility_percent / 100
    series = CandleSeries(timeframe, source=f"synthetic:seed={seed}")
    times, opens, highs, lows, closes, volumes = (
        series.times,
        series.opens,
        series.highs,
        series.lows,
        series.closes,
        series.volumes,
    )
    price = start_price
    draws = [Decimal(k) / _RESOLUTION for k in range(-_RESOLUTION, _RESOLUTION + 1)]
    randint = rng.randint
    for i in range(count):
        draw = draws[randint(-_RESOLUTION, _RESOLUTION) + _RESOLUTION]
        close = max((price * (1 + vol * draw)).quantize(_PLACES), _PLACES)
        times.append(start + i * timeframe)
        opens.append(price)
        highs.append(price if price >= close else close)
        lows.append(close if price >= close else price)
        closes.append(close)
        volumes.append(ZERO)
        price = close
    return series
