"""A module that trades on every tick, a clock that runs fast, a journaling paper broker:
the pieces the outage and crash tests drive many orders with."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import Field

from module_runtime.clock import SystemClock
from module_runtime.ledger import FINAL_STATUSES
from module_runtime.modules.base import BaseModule, StrategyParams
from module_runtime.orders import Fill, Order, OrderStatus, Side
from module_runtime.paper_broker import PaperBroker, PriceQuotes

from ..runtime.conftest import make_spec

D = Decimal


class FastClock(SystemClock):
    """Wall-clock time whose sleeps are `factor` times shorter (a 1 s tick takes 10 ms)."""

    def __init__(self, factor: float = 100.0) -> None:
        self.factor = factor

    async def sleep(self, delay: timedelta) -> None:
        await asyncio.sleep(max(delay.total_seconds(), 0) / self.factor)


class FlipFlopParams(StrategyParams):
    base: str = "WETH"
    quote: str = "USDC"
    order_size: Decimal = Field(default=Decimal(100), gt=0)


class FlipFlopModule(BaseModule[FlipFlopParams]):
    """Buys `orderSize` worth when flat, sells everything when holding: one order a tick."""

    params_model = FlipFlopParams

    async def tick(self) -> None:
        p = self.params
        price = await self.market.price(p.base, p.quote)
        self.order_path.mark(p.base, p.quote, price)
        holding = self.order_path.state.positions.get((p.base, p.quote))
        if holding is not None:
            order = self.exit_order(holding, price)
        elif self.can_open and not self.order_path.state.pending:
            order = Order(
                venue=self.venue,
                side=Side.BUY,
                base=p.base,
                quote=p.quote,
                quantity=(p.order_size / price).quantize(D("1E-8")),
                price=price,
                created_at=self.clock.now(),
            )
        else:
            return
        if order is not None:
            await self.submit(order)


class WavePrice:
    """1000, 1001, 1002, 1001, 1000, ...: a price that moves a little every read."""

    def __init__(self) -> None:
        self.reads = 0

    async def price(self, base: str, quote: str) -> Decimal:
        self.reads += 1
        return D(1000) + D((0, 1, 2, 1)[self.reads % 4])


def flipflop_spec() -> Any:
    return make_spec(
        strategy={"base": "WETH", "quote": "USDC", "orderSize": "100", "tickSeconds": 1},
        risk={
            "maxPositionSize": "2000",
            "maxDailyLoss": "5000",
            "maxDrawdownPercent": 50,
            "stopLossPercent": 0,
            "maxOpenPositions": 1,
        },
    )


class JournalBroker:
    """A PaperBroker that appends every execution to a file (fsync'd) before answering:
    the venue's own record, which survives a SIGKILL of the process."""

    def __init__(self, paper: PaperBroker, path: Path) -> None:
        self.name = paper.name
        self._paper = paper
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def execute(self, order: Order) -> Fill:
        fill = await self._paper.execute(order)
        line = json.dumps(
            {
                "order_id": fill.order_id,
                "status": fill.status.value,
                "quantity": str(fill.quantity),
                "price": str(fill.price),
                "fee": str(fill.fee),
                "at": fill.at.isoformat(),
            }
        )
        os.write(self._fd, (line + "\n").encode())  # one write: all or nothing on a kill
        os.fsync(self._fd)
        return fill


def read_journal(path: Path) -> dict[str, Fill]:
    """Executions by order id (a torn last line, cut by a kill, never happened)."""
    from datetime import datetime

    found: dict[str, Fill] = {}
    if not path.exists():
        return found
    for line in path.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            continue
        d = json.loads(line)
        if d["order_id"] in found:
            raise AssertionError(f"order {d['order_id']} executed twice")
        found[d["order_id"]] = Fill(
            d["order_id"],
            OrderStatus(d["status"]),
            D(d["quantity"]),
            D(d["price"]),
            D(d["fee"]),
            at=datetime.fromisoformat(d["at"]),
        )
    return found


class JournalResolver:
    """Open intents resolved from the journal: executed -> that fill, else DROPPED."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def resolve(self, order: Order, last: Fill | None) -> Fill | None:
        fill = read_journal(self.path).get(order.order_id)
        if fill is not None and fill.status in FINAL_STATUSES:
            return fill
        return Fill(order.order_id, OrderStatus.DROPPED, reason="not in the venue's journal")


def new_paper(clock: Any, market: WavePrice) -> PaperBroker:
    return PaperBroker(PriceQuotes(market.price), fee_bps=D(0), slippage_bps=D(0), clock=clock)
