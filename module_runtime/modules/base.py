"""`BaseModule`: the lifecycle every trading module shares.

A module decides; it does not execute. Each `tick()` reads prices from the injected
`MarketData`, time from the injected `Clock`, and sends orders only through the
`OrderPath` it was given (risk checks, ledger, broker, metrics all live there). Before
every tick the base class marks open positions to market and exits any whose stop loss
is hit, so every strategy gets stop losses without writing them.

Lifecycle: `start()` -> `run(stop_event)` (the loop) -> `stop()` (no new exposure, wait
for the in-flight order, flush the ledger). `pause()`/`resume()` toggle "no new
exposure" (spec.paused); reducing orders still go through. A risk *halt* is different:
only a person clears it (`OrderPath.resume()`), never the module.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from module_runtime.clock import Clock
from module_runtime.market_data import MarketData
from module_runtime.order_path import OrderPath
from module_runtime.orders import Fill, Order, OrderStatus, Side
from module_runtime.positions import ACCOUNTING_CONTEXT, Position, PositionKey
from tradeplane_operator.api.models import TradingModuleSpec

if TYPE_CHECKING:
    from module_runtime.db.signals import SignalBus

log = logging.getLogger(__name__)

BPS = Decimal(10_000)


class InvalidStrategyParams(ValueError):
    """`spec.strategy` does not fit the module; the message names every bad field."""


class StrategyParams(BaseModel):
    """Base of every module's `spec.strategy` model: camelCase, unknown keys refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    tick_seconds: int = Field(default=5, ge=1, le=86_400, description="Time between ticks.")
    exit_slippage_bps: Decimal = Field(
        default=Decimal(100),
        ge=0,
        lt=10_000,
        description="Worst price accepted when exiting a position (stop loss), in bps.",
    )


P = TypeVar("P", bound=StrategyParams)


def parse_params(model: type[P], raw: Mapping[str, Any]) -> P:
    """Validate `raw` as `model`; errors name the field as `strategy.<field>`."""
    try:
        return model.model_validate(dict(raw))
    except ValidationError as error:
        problems = "; ".join(
            f"strategy.{'.'.join(str(part) for part in item['loc']) or '(root)'}: {item['msg']}"
            for item in error.errors()
        )
        raise InvalidStrategyParams(f"invalid strategy parameters: {problems}") from None


class BaseModule(ABC, Generic[P]):
    """A trading module. Subclasses set `params_model` and implement `tick()`."""

    params_model: ClassVar[type[StrategyParams]] = StrategyParams
    # The namespace's signals (module_runtime.db.signals), set by the host when the runtime
    # has a database, else None. Subscribe in `on_start`, drain in `tick`. Advisory only:
    # an order a signal suggests still goes through `submit` and its risk checks.
    signals: SignalBus | None = None

    def __init__(
        self,
        *,
        name: str,
        spec: TradingModuleSpec,
        order_path: OrderPath,
        market: MarketData,
        clock: Clock,
        venue: str = "paper",
    ) -> None:
        self.name = name
        self.spec = spec
        self.order_path = order_path
        self.market = market
        self.clock = clock
        self.venue = venue
        self.params: P = self.parse_params(spec.strategy)
        self.ticks = 0
        self.consecutive_errors = 0
        self.last_error: str | None = None
        self.started = False
        self.stopped = False
        self.stopped_out: set[PositionKey] = set()  # pairs exited by stop loss this tick
        self.configure()

    @classmethod
    def parse_params(cls, raw: Mapping[str, Any]) -> P:
        """Validate `spec.strategy`; raises `InvalidStrategyParams`."""
        return parse_params(cls.params_model, raw)  # type: ignore[return-value]

    @property
    def tick_interval(self) -> timedelta:
        return timedelta(seconds=self.params.tick_seconds)

    @property
    def can_open(self) -> bool:
        """Whether an order adding exposure could pass (not paused, halted or stopping)."""
        state = self.order_path.state
        return not (state.paused or state.halted or state.stopping)

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Load state from the ledger and apply spec.paused; override `on_start` to add."""
        await self.order_path.restore()
        if self.spec.paused:
            self.pause()
        await self.on_start()
        self.started = True

    async def run(self, stop: asyncio.Event) -> None:
        """The module loop: protect, tick, wait; until `stop` is set. Then `stop()`."""
        if not self.started:
            await self.start()
        try:
            while not stop.is_set():
                await self.step()
                await self._wait(stop, self.tick_interval)
        finally:
            await self.stop()

    def pause(self) -> None:
        self.order_path.set_paused(True)

    def resume(self) -> None:
        """Undo `pause()`. Does not clear a risk halt (a person does that)."""
        self.order_path.set_paused(False)

    async def stop(self) -> None:
        """No new exposure, wait for the in-flight order, flush the ledger. Idempotent."""
        if self.stopped:
            return
        await self.order_path.close()
        await self.on_stop()
        self.stopped = True

    # ---- the loop body ---------------------------------------------------------------

    async def step(self) -> None:
        """One iteration: exit stopped-out positions, then `tick()`. Never raises."""
        try:
            await self.protect()
            await self.tick()
        except Exception as error:
            self.consecutive_errors += 1
            self.last_error = repr(error)
            log.exception("tick failed", extra={"module_name": self.name, "tick": self.ticks})
        else:
            self.consecutive_errors = 0
        self.ticks += 1

    async def protect(self) -> None:
        """Mark open positions to market; exit those whose stop loss is hit."""
        self.stopped_out.clear()
        for position in self.order_path.positions():
            price = await self.market.price(position.base, position.quote)
            self.order_path.mark(position.base, position.quote, price)
        if self.order_path.halted:
            return  # a halt blocks exits too; a person decides (see module_runtime.risk)
        for position, mark in self.order_path.stop_losses():
            order = self.exit_order(position, mark)
            if order is None:
                continue
            log.warning(
                "stop loss hit",
                extra={"module_name": self.name, "pair": f"{position.base}/{position.quote}"},
            )
            if (await self.submit(order)).status is OrderStatus.FILLED:
                self.stopped_out.add(position.key)

    def exit_order(self, position: Position, price: Decimal) -> Order | None:
        """A reducing sell of everything sellable in `position` at about `price`."""
        quantity = self.order_path.state.sellable(position.key)
        if quantity <= 0:
            return None
        with localcontext(ACCOUNTING_CONTEXT):
            min_out = quantity * price * (BPS - self.params.exit_slippage_bps) / BPS
        return Order(
            venue=self.venue,
            side=Side.SELL,
            base=position.base,
            quote=position.quote,
            quantity=quantity,
            price=price,
            min_out=min_out.quantize(Decimal("1E-18"), rounding=ROUND_DOWN),
            reduces_position=True,
            created_at=self.clock.now(),
        )

    async def submit(self, order: Order) -> Fill:
        """Send an order: the only way out is the order path."""
        return await self.order_path.submit(order)

    async def _wait(self, stop: asyncio.Event, delay: timedelta) -> None:
        """Sleep on the clock for `delay`, or less if `stop` is set meanwhile."""
        if stop.is_set():
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(delay))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)

    # ---- for subclasses --------------------------------------------------------------

    @abstractmethod
    async def tick(self) -> None:
        """Read market data, decide, submit orders through `self.submit`."""

    def configure(self) -> None:
        """Hook: build strategy state from the validated `self.params`."""

    async def on_start(self) -> None:
        """Hook: called once before the first tick."""

    async def on_stop(self) -> None:
        """Hook: called once after the last tick, the ledger flushed."""
