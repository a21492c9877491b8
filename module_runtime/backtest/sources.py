"""From `spec.backtest` to the candles to replay."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from module_runtime.backtest.candles import (
    CandleError,
    CandleSeries,
    parse_time,
    read_csv_file,
    synthetic,
    timeframe_seconds,
)
from tradeplane_operator.api.models import BacktestSource, BacktestSpec

# Where the operator mounts spec.backtest.configMap in the runtime pod.
DATA_DIR = "/etc/tradeplane-backtest"
DEFAULT_START = "2026-01-01T00:00:00Z"


async def load_candles(
    spec: BacktestSpec,
    *,
    base: str,
    strategy: Mapping[str, Any],
    data_dir: Path = Path(DATA_DIR),
) -> CandleSeries:
    """The candles `spec` names, within [start, end). Raises `CandleError`."""
    timeframe = timeframe_seconds(spec.timeframe)
    start = parse_time(spec.start) if spec.start else None
    end = parse_time(spec.end) if spec.end else None
    if spec.source is BacktestSource.CSV:
        if spec.path:
            path = Path(spec.path)
        elif spec.key:
            path = data_dir / spec.key
        else:
            raise CandleError("spec.backtest.source csv needs configMap and key, or path")
        series = read_csv_file(path, timeframe=timeframe).window(start, end)
    elif spec.source is BacktestSource.SYNTHETIC:
        first = start if start is not None else parse_time(DEFAULT_START)
        count = spec.candles
        if end is not None:
            count = min(count, max(0, (end - first) // timeframe))
        series = synthetic(
            start=first,
            timeframe=timeframe,
            count=count,
            seed=spec.seed,
            start_price=spec.start_price,
            volatility_percent=spec.volatility_percent,
        )
    else:
        from module_runtime.backtest.evm import block_candles

        pool = spec.pool or strategy.get("pool")
        if not spec.rpc_url or not pool or spec.from_block is None or spec.to_block is None:
            raise CandleError(
                "spec.backtest.source evm needs rpcUrl, fromBlock, toBlock and pool "
                "(spec.backtest.pool or strategy.pool)"
            )
        series = await block_candles(
            spec.rpc_url,
            str(pool),
            base=base,
            from_block=spec.from_block,
            to_block=spec.to_block,
        )
        series = series.window(start, end)
    if len(series) == 0:
        raise CandleError("spec.backtest: no candles in the range")
    return series
