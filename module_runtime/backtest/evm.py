"""Candles from a block range: one candle per block, the pool's mid price at that block.

Reads the pair's reserves at every block in [from_block, to_block] over JSON-RPC (archive
reads: `eth_call` at a block number) and the block's timestamp. Block `n`'s mid price is
the close the strategy sees at block `n`'s timestamp; its open is the block before's
close. Blocks sharing a timestamp collapse into the last of them (the state at the end
of that second). The candle length is the mean block interval.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from module_runtime.backtest.candles import Candle, CandleError, CandleSeries
from module_runtime.chain.pool import PoolClient
from module_runtime.chain.rpc import connect, disconnect

BATCH = 16  # blocks read concurrently


async def _block(pool: PoolClient, w3: Any, number: int) -> tuple[int, Decimal]:
    block = await w3.eth.get_block(number)
    return int(block["timestamp"]), await pool.mid_price(block_identifier=number)


async def block_candles(
    rpc_url: str, pool_address: str, *, base: str, from_block: int, to_block: int
) -> CandleSeries:
    if to_block <= from_block:
        raise CandleError("backtest.toBlock must be greater than fromBlock")
    w3 = connect(rpc_url)
    try:
        latest = await w3.eth.block_number
        if to_block > latest:
            raise CandleError(f"backtest.toBlock {to_block} is beyond the node's head {latest}")
        pool = await PoolClient.load(w3, pool_address, base=base)
        points: list[tuple[int, Decimal]] = []
        for start in range(from_block, to_block + 1, BATCH):
            numbers = range(start, min(start + BATCH, to_block + 1))
            points += await asyncio.gather(*(_block(pool, w3, n) for n in numbers))
    finally:
        await disconnect(w3)
    collapsed: dict[int, Decimal] = {}
    for ts, price in points:  # in block order: a later block of the same second wins
        collapsed[ts] = price
    times = sorted(collapsed)
    if len(times) < 2:
        raise CandleError(f"blocks {from_block}..{to_block} span fewer than two timestamps")
    timeframe = max(1, round((times[-1] - times[0]) / (len(times) - 1)))
    series = CandleSeries(timeframe, source=f"evm:{pool.address}@{from_block}-{to_block}")
    previous = collapsed[times[0]]
    last_open = None
    for ts in times:
        close = collapsed[ts]
        open_time = ts - timeframe
        if last_open is not None and open_time <= last_open:
            open_time = last_open + 1  # irregular spacing: keep open times increasing
        series.append(
            Candle(open_time, previous, max(previous, close), min(previous, close), close)
        )
        last_open = open_time
        previous = close
    return series
