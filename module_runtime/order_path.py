"""`OrderPath`: the one place orders leave a module.

    risk check -> ledger intent -> broker -> ledger outcome -> risk state -> metrics

A rejected order is recorded as a rejection and never reaches the broker. Submissions
are serialized by an asyncio lock, so two orders can never pass the same capital check.
Nothing in here raises into the module loop: failures are logged, counted and show up
in `problems()` (health "degraded").

When the broker raises, the outcome is unknown: the order may or may not have reached
the venue. The intent then stays open (a non-final PENDING outcome with the error as
reason) instead of being guessed as DROPPED; its notional stays reserved against the
capital checks until someone reconciles it (later issue), which is the safe side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Protocol, runtime_checkable

from module_runtime.clock import Clock
from module_runtime.futures.events import EventKind, PositionEvent
from module_runtime.futures.tiers import TierTable
from module_runtime.ledger import Ledger
from module_runtime.orders import Broker, Fill, Order, OrderStatus
from module_runtime.positions import ClosedTrade, Position, PositionKey
from module_runtime.prom import ModuleMetrics
from module_runtime.risk import (
    HaltInfo,
    RiskDecision,
    RiskLimits,
    RiskState,
    breach,
    check,
    stop_loss_hit,
)
from module_runtime.trade_stats import TradeStats, compute_stats

log = logging.getLogger(__name__)


@runtime_checkable
class PositionVenue(Protocol):
    """A broker whose positions change without our orders (perpetuals): funding payments
    and liquidations, reported as ledger events (module_runtime.futures.events)."""

    async def position_events(self, positions: list[Position]) -> list[PositionEvent]:
        """Funding and liquidations of `positions` since they were last asked about."""
        ...


class OrderPath:
    def __init__(
        self,
        *,
        broker: Broker,
        ledger: Ledger,
        limits: RiskLimits,
        clock: Clock,
        metrics: ModuleMetrics | None = None,
        state: RiskState | None = None,
    ) -> None:
        self._broker = broker
        self._ledger = ledger
        self._limits = limits
        self._clock = clock
        self._metrics = metrics
        self._state = state or RiskState.initial(limits, clock.now())
        self._lock = asyncio.Lock()
        self._trades: list[ClosedTrade] = []
        self._events: list[PositionEvent] = []
        self._ledger_ok = True
        self.errors = 0
        self.last_error: str | None = None
        if metrics is not None:
            metrics.watch(self)

    # ---- read-only views -------------------------------------------------------------

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    @property
    def broker(self) -> Broker:
        return self._broker

    @property
    def limits(self) -> RiskLimits:
        return self._limits

    @property
    def state(self) -> RiskState:
        return self._state

    @property
    def halted(self) -> bool:
        return self._state.halted

    @property
    def ledger_ok(self) -> bool:
        """False since the last ledger failure, until a clean round trip through it."""
        return self._ledger_ok

    @property
    def drawdown_ratio(self) -> Decimal:
        """Current fall of equity from its peak, as a fraction (the risk check's view)."""
        return self._state.drawdown_percent / 100

    @property
    def drawdown_limit_ratio(self) -> Decimal:
        return self._limits.max_drawdown_percent / 100

    @property
    def halt_info(self) -> HaltInfo | None:
        return self._state.halt

    @property
    def paused(self) -> bool:
        return self._state.paused

    def positions(self) -> list[Position]:
        return list(self._state.positions.values())

    def stats(self) -> TradeStats:
        """Statistics from the ledger as of the last outcome, at the latest marks."""
        return compute_stats(
            self._trades,
            capital=self._limits.allocation,
            positions=self.positions(),
            marks=self._state.marks,
            funding=self._state.funding,
            liquidations=sum(1 for e in self._events if e.kind is EventKind.LIQUIDATION),
        )

    def events(self) -> list[PositionEvent]:
        """Funding payments and liquidations booked so far (perpetuals)."""
        return list(self._events)

    def problems(self) -> list[str]:
        """Why the path is degraded, if it is: unresolved intents, ledger failures."""
        found = []
        if not self._ledger_ok:
            found.append(f"ledger: {self.last_error}")
        if self._state.pending and not self._lock.locked():
            found.append(f"{len(self._state.pending)} order(s) with unknown outcome")
        return found

    def stop_losses(self) -> list[tuple[Position, Decimal]]:
        """Open positions whose stop loss is hit at their latest mark."""
        hits = []
        for key, position in self._state.positions.items():
            mark = self._state.marks.get(key)
            if mark is not None and stop_loss_hit(position, mark, self._limits.stop_loss_percent):
                hits.append((position, mark))
        return hits

    # ---- control ---------------------------------------------------------------------

    def use_tiers(self, tiers: Mapping[PositionKey, TierTable]) -> None:
        """The venue's perpetual notional tiers (leverage, maintenance margin) per pair,
        for the pre-trade checks; pairs without one are refused as unknown symbols."""
        self._limits = replace(self._limits, tiers=dict(tiers))

    def set_paused(self, paused: bool) -> None:
        """Paused: no new exposure; orders that reduce a position still go through."""
        self._state.paused = paused

    def halt(self, reason: str, message: str = "") -> None:
        """Block every order until `resume()`; keeps the first reason if already halted."""
        if not self._state.halted:
            log.error("module halted", extra={"halt_reason": reason, "halt_message": message})
        self._state.halt_now(reason, message, self._clock.now())

    def set_portfolio_halt(self, reason: str | None, message: str = "") -> None:
        """The portfolio's halt (None clears it): no new exposure, reductions allowed."""
        if reason is None:
            if self._state.portfolio_halt is not None:
                log.warning("portfolio halt cleared", extra={"halt_reason": reason})
            self._state.portfolio_halt = None
        elif self._state.portfolio_halt is None or self._state.portfolio_halt.reason != reason:
            log.error("portfolio halted", extra={"halt_reason": reason, "halt_message": message})
            self._state.portfolio_halt = HaltInfo(reason, message, self._clock.now())

    @property
    def portfolio_halt(self) -> HaltInfo | None:
        return self._state.portfolio_halt

    def resume(self) -> None:
        """Clear a halt. For a person only (operator annotation): never called by code
        reacting to market data."""
        if self._state.halted:
            log.warning("halt cleared by a person", extra={"halt": repr(self._state.halt)})
        self._state.resume()

    async def restore(self) -> None:
        """Load positions, trades and open intents from the ledger (at start)."""
        async with self._lock:
            if await self._refresh():
                self._ledger_ok = True

    async def drain(self) -> None:
        """Return once no submission is in flight."""
        async with self._lock:
            pass

    async def close(self) -> None:
        """Stop opening exposure, wait for the in-flight order, flush the ledger."""
        self._state.stopping = True
        async with self._lock:
            try:
                await self._ledger.flush()
            except Exception as error:
                self._fail("ledger flush failed", error)

    # ---- market data -----------------------------------------------------------------

    def mark(self, base: str, quote: str, price: Decimal) -> None:
        """Mark a pair to market; halts on a drawdown breach (checked when the mark moved
        equity: a breach is re-checked after every fill anyway)."""
        if self._state.mark((base, quote), price):
            self._check_breach()

    # ---- funding and liquidations ----------------------------------------------------

    async def settle(self) -> list[PositionEvent]:
        """Ask a `PositionVenue` broker for funding and liquidations of the open positions
        and book them (serialized with orders); then the risk state, and halts on a
        breach (a liquidation counts toward the daily loss). Nothing for other brokers."""
        if not isinstance(self._broker, PositionVenue):
            return []
        async with self._lock:
            try:
                found = await self._broker.position_events(self.positions())
            except Exception as error:
                self._fail("venue could not report funding and liquidations", error)
                return []
            booked = []
            known = {e.event_id for e in self._events}
            found = [e for e in found if e.event_id not in known]  # reported again: booked
            for event in found:
                try:
                    await self._ledger.record_event(event)
                except Exception as error:
                    self._fail(f"ledger refused the {event.kind} event", error)
                    continue
                booked.append(event)
                if event.kind is EventKind.LIQUIDATION:
                    log.error(
                        "position liquidated",
                        extra={"pair": f"{event.base}/{event.quote}", "price": str(event.price)},
                    )
            if found:
                await self._refresh()
        return booked

    # ---- orders ----------------------------------------------------------------------

    async def submit(self, order: Order) -> Fill:
        async with self._lock:
            fill = await self._submit(order)
        if self._metrics is not None:
            self._metrics.order(fill.status)
        return fill

    async def _submit(self, order: Order) -> Fill:
        errors_before = self.errors
        fill = await self._route(order)
        if self.errors == errors_before:
            self._ledger_ok = True  # a clean round trip through the ledger
        return fill

    async def _route(self, order: Order) -> Fill:
        now = self._clock.now()
        self._state.roll_day(now)
        decision = check(order, self._state, self._limits)
        if not decision.accepted:
            return await self._reject(order, decision)
        try:
            await self._ledger.record_intent(order)
        except Exception as error:
            self._fail("ledger refused the intent; order not sent", error, order)
            return Fill(
                order.order_id,
                OrderStatus.DROPPED,
                reason=f"ledger_error: intent not recorded, order not sent ({error})",
                at=now,
            )
        try:
            fill = await self._broker.execute(order)
            if fill.order_id != order.order_id:
                raise RuntimeError(f"broker answered for order {fill.order_id}")
        except Exception as error:
            self._fail("broker raised; outcome unknown, intent kept open", error, order)
            fill = Fill(
                order.order_id,
                OrderStatus.PENDING,
                reason=f"broker_error: outcome unknown ({error!r})",
                at=self._clock.now(),
            )
        try:
            await self._ledger.record_outcome(fill)
        except Exception as error:
            self._fail("ledger refused the outcome", error, order)
        await self._refresh()
        return fill

    async def _reject(self, order: Order, decision: RiskDecision) -> Fill:
        assert decision.reason is not None
        log.info(
            "order rejected",
            extra={"order_id": order.order_id, "reason": decision.reason.value},
        )
        try:
            await self._ledger.record_rejection(order, decision.text)
        except Exception as error:
            self._fail("ledger refused the rejection", error, order)
        if self._metrics is not None:
            self._metrics.rejected(decision.reason)
        return Fill(
            order.order_id, OrderStatus.REJECTED, reason=decision.text, at=self._clock.now()
        )

    async def _refresh(self) -> bool:
        """Re-derive risk state from the ledger, then halt on a breach."""
        try:
            positions = await self._ledger.positions()
            trades = await self._ledger.closed_trades()
            pending = await self._ledger.open_intents()
            reader = getattr(self._ledger, "events", None)  # ledgers without perpetuals: none
            events = await reader() if reader is not None else []
        except Exception as error:
            self._fail("ledger read failed", error)
            return False
        self._trades = trades
        self._events = events
        self._state.sync(
            positions=positions,
            trades=trades,
            pending=pending,
            now=self._clock.now(),
            events=events,
        )
        self._check_breach()
        return True

    def _check_breach(self) -> None:
        found = breach(self._state, self._limits)
        if found is not None and not self._state.halted:
            reason, message = found
            self.halt(reason.value, message)

    def _fail(self, what: str, error: Exception, order: Order | None = None) -> None:
        self.errors += 1
        self.last_error = f"{what}: {error!r}"
        if what.startswith("ledger"):
            self._ledger_ok = False
        log.error(
            what,
            exc_info=error,
            extra={"order_id": order.order_id if order is not None else None},
        )
