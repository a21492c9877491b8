"""An EVM-range backtest against anvil: one candle per block from the real pool, the
price band module replayed over them through the paper broker."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

import pytest
from web3 import AsyncWeb3

from module_runtime.backtest.runner import Backtest
from module_runtime.backtest.sources import load_candles
from module_runtime.chain import load_artifact
from tradeplane_operator.api.models import TradingModuleSpec

from .anvil import AnvilNode
from .conftest import Dex, market_swap, rpc, units

pytestmark = pytest.mark.anvil

BLOCK_SECONDS = 12
# WETH sold (+) or bought back (-, in USDC) by the market, one swap per block.
MOVES = ["0.4", "0.4", "0.4", "-2500", "-2500", "-2500", "0.5", "0.5", "-3000", "-3000"]


async def mid_at(w3: AsyncWeb3[Any], dex: Dex, block: int) -> Decimal:
    """The pool's mid price at `block`, from its reserves read here (not PoolClient), to
    36 significant digits as prices are kept."""
    pair = w3.eth.contract(
        address=w3.to_checksum_address(dex.venue_a.pair), abi=load_artifact("Pair").abi
    )
    r0, r1, _ = await pair.functions.getReserves().call(block_identifier=block)
    token0 = await pair.functions.token0().call()
    weth, usdc = (r0, r1) if token0.lower() == dex.weth.lower() else (r1, r0)
    with localcontext() as ctx:
        ctx.prec = 36
        return Decimal(usdc * 10**12) / Decimal(weth)


async def test_backtest_over_a_block_range(anvil: AnvilNode, w3: AsyncWeb3[Any], dex: Dex) -> None:
    first = None
    stamp = int((await w3.eth.get_block("latest"))["timestamp"])
    for i, move in enumerate(MOVES):
        await rpc(w3, "evm_setNextBlockTimestamp", stamp + BLOCK_SECONDS * (i + 1))
        if move.startswith("-"):
            await market_swap(w3, dex, dex.venue_a, dex.usdc, units(move[1:], 6))
        else:
            await market_swap(w3, dex, dex.venue_a, dex.weth, units(move, 18))
        number = await w3.eth.block_number
        first = number if first is None else first
    last = await w3.eth.block_number
    assert first is not None and last - first == len(MOVES) - 1
    spec = TradingModuleSpec.model_validate(
        {
            "type": "dex_trading",
            "mode": "backtest",
            "capital": {"allocation": "10000"},
            "risk": {"maxPositionSize": "2000", "maxDailyLoss": "1000", "stopLossPercent": 0},
            "strategy": {
                "base": "WETH",
                "quote": "USDC",
                "orderSize": "1000",
                "emaPeriod": 2,
                "bandPercent": 0.5,
                "pool": dex.venue_a.pair,
            },
            "marketData": {"source": "evm", "rpcUrl": anvil.rpc_url},
            "backtest": {
                "source": "evm",
                "rpcUrl": anvil.rpc_url,
                "fromBlock": first,
                "toBlock": last,
                "feeBps": 30,
                "slippageBps": 0,
            },
        }
    )
    assert spec.backtest is not None
    candles = await load_candles(spec.backtest, base="WETH", strategy=spec.strategy)
    assert len(candles) == len(MOVES)
    assert candles.timeframe == BLOCK_SECONDS
    for i, block in enumerate(range(first, last + 1)):
        assert candles.closes[i] == await mid_at(w3, dex, block)
        header = await w3.eth.get_block(block)
        assert candles.times[i] + candles.timeframe == header["timestamp"]
    assert candles.opens[1:] == candles.closes[:-1]

    report = await Backtest(spec, candles, name="bt", namespace="ns").run()
    assert report.candles == len(MOVES)
    assert report.trades >= 1  # bought on the dip, sold on the recovery
    assert report.source == f"evm:{w3.to_checksum_address(dex.venue_a.pair)}@{first}-{last}"
    assert report.timeframe == "12s"
