"""Pre-trade risk checks, halts and stop losses.

`check()` is pure: it reads an order, a `RiskState` and `RiskLimits` and says yes or no
with a machine reason code (a bounded set: it is a metric label) and a message for
people. Nothing here reads the wall clock; callers pass `now` from an injected `Clock`.

Policy:
- A *halt* (max daily loss or max drawdown breached, or a person's halt) blocks every
  order, including ones that reduce a position, until a person calls `resume()`. No
  exception for stop-loss exits: halts are often caused by bad data (a broken price
  feed shows as a sudden drawdown), and selling into the same data would realize the
  error; deciding is the person's job. Simple to reason about, simple to audit.
- *Paused* (spec.paused) and *stopping* block orders that open or grow exposure;
  orders that reduce a position still go through, so stop losses keep working.
- An order reduces a position only if the state says so: it sells no more than the
  held (and not already being sold) quantity of a long. `order.reduces_position` is a
  claim that is verified, not trusted. Verified reducing orders skip the exposure limits
  (they can only lower exposure), so a module near its limits can still get out.
- Spot, long only: a sell beyond the held quantity would be a short and is refused.
- Perpetuals (`Market.PERP`, `_check_perp`): long or short; an order against the open
  side reduces it (never beyond it: no flip in one order); an opening order must fit
  the max leverage (the spec's and the venue's tier for the resulting notional), the
  position size (notional), the margin available (allocation + realized PnL - margin in
  use - margin reserved), the exposure (notional <= maxLeverage x equity), and its
  liquidation price must lie beyond the stop loss: a position that would be liquidated
  before its stop could fire is refused. Funding and liquidations count in realized PnL,
  so a liquidation counts toward the daily loss and drawdown halts.
- The daily loss budget is on today's net realized PnL (UTC day): `max_daily_loss +
  realized today`. An opening order must fit its loss at the stop (its whole notional
  when there is no stop) into what is left. Open losses count through drawdown and the
  stop loss, not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from enum import StrEnum

from module_runtime.futures.events import PositionEvent
from module_runtime.futures.margin import Direction, liquidation_price
from module_runtime.futures.tiers import TierTable
from module_runtime.orders import Market, Order, Side
from module_runtime.positions import (
    ACCOUNTING_CONTEXT,
    ClosedTrade,
    Position,
    PositionKey,
    PositionSide,
)
from tradeplane_operator.api.models import CapitalSpec, RiskSpec

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class RejectReason(StrEnum):
    """Why an order was refused; also the `reason` label of the rejection metric."""

    HALTED = "halted"
    PAUSED = "paused"
    PORTFOLIO_HALTED = "portfolio_halted"
    STOPPING = "stopping"
    INVALID_ORDER = "invalid_order"
    NOT_REDUCING = "not_reducing"
    SHORT_NOT_SUPPORTED = "short_not_supported"
    MAX_LEVERAGE = "max_leverage"
    MAX_POSITION_SIZE = "max_position_size"
    MAX_OPEN_POSITIONS = "max_open_positions"
    INSUFFICIENT_CAPITAL = "insufficient_capital"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    MAX_DRAWDOWN = "max_drawdown"
    UNKNOWN_SYMBOL = "unknown_symbol"
    LIQUIDATION_INSIDE_STOP = "liquidation_inside_stop"


class HaltReason(StrEnum):
    MAX_DAILY_LOSS = "max_daily_loss"
    MAX_DRAWDOWN = "max_drawdown"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The module's limits, in its capital currency."""

    allocation: Decimal
    max_position_size: Decimal
    max_daily_loss: Decimal
    max_drawdown_percent: Decimal
    stop_loss_percent: Decimal  # 0 disables the stop loss
    max_open_positions: int
    max_leverage: Decimal
    currency: str = "USDC"
    # perpetuals: the venue's notional tiers per (base, quote); an unknown pair is refused
    tiers: Mapping[PositionKey, TierTable] = field(default_factory=dict, compare=False)

    @classmethod
    def from_spec(cls, risk: RiskSpec, capital: CapitalSpec) -> RiskLimits:
        if capital.allocation <= 0:
            raise ValueError("capital.allocation must be greater than 0")
        return cls(
            allocation=capital.allocation,
            max_position_size=risk.max_position_size,
            max_daily_loss=risk.max_daily_loss,
            max_drawdown_percent=risk.max_drawdown_percent,
            stop_loss_percent=risk.stop_loss_percent,
            max_open_positions=risk.max_open_positions,
            max_leverage=risk.max_leverage,
            currency=capital.currency,
        )


@dataclass(frozen=True, slots=True)
class RiskDecision:
    accepted: bool
    reason: RejectReason | None = None
    message: str = ""

    @classmethod
    def accept(cls) -> RiskDecision:
        return cls(True)

    @classmethod
    def reject(cls, reason: RejectReason, message: str) -> RiskDecision:
        return cls(False, reason, message)

    @property
    def text(self) -> str:
        """The reason code, a colon, then the message: the code can be split off."""
        return "accepted" if self.reason is None else f"{self.reason.value}: {self.message}"


@dataclass(frozen=True, slots=True)
class HaltInfo:
    reason: str  # a HaltReason value, or what the person who halted wrote
    message: str
    since: datetime


@dataclass(slots=True)
class RiskState:
    """What the checks need to know, refreshed from the ledger after every outcome.

    Positions, pending intents and realized PnL are derived from the ledger (`sync`),
    so they cannot drift from it; marks, the equity peak, pause and halt are the risk
    layer's own.
    """

    allocation: Decimal
    day: date
    equity_peak: Decimal
    positions: dict[PositionKey, Position] = field(default_factory=dict)
    pending: list[Order] = field(default_factory=list)  # intents with no final outcome
    marks: dict[PositionKey, Decimal] = field(default_factory=dict)
    realized_pnl: Decimal = ZERO  # closed trades + funding
    realized_pnl_today: Decimal = ZERO  # for `day` (UTC)
    funding: Decimal = ZERO  # funding received (negative: paid), part of realized_pnl
    paused: bool = False
    stopping: bool = False
    halt: HaltInfo | None = None
    # The portfolio's halt (kill switch or its loss limits), set by the operator: like
    # paused, it refuses new exposure and lets reductions through.
    portfolio_halt: HaltInfo | None = None
    # What `sync` summed last time, so a ledger that only appended trades (the in-memory
    # one hands back the same objects) is not summed from the first trade at every fill.
    _tally: _Tally | None = field(default=None, repr=False, compare=False)

    @classmethod
    def initial(cls, limits: RiskLimits, now: datetime) -> RiskState:
        return cls(allocation=limits.allocation, day=utc_day(now), equity_peak=limits.allocation)

    # ---- derived ---------------------------------------------------------------------

    @property
    def halted(self) -> bool:
        return self.halt is not None

    @property
    def capital_in_use(self) -> Decimal:
        """Capital of open positions (spot: the full cost; perpetuals: the margin)."""
        with localcontext(ACCOUNTING_CONTEXT):
            return sum((p.capital for p in self.positions.values()), ZERO)

    @property
    def reserved(self) -> Decimal:
        """Capital of orders sent or in flight whose outcome is not known yet: the notional
        of spot buys, the margin of perpetual orders that do not claim to reduce."""
        with localcontext(ACCOUNTING_CONTEXT):
            return sum((reservation(o) for o in self.pending), ZERO)

    @property
    def unrealized_pnl(self) -> Decimal:
        if not self.positions:
            return ZERO
        with localcontext(ACCOUNTING_CONTEXT):
            return sum(
                (p.unrealized_pnl(self.marks.get(k)) for k, p in self.positions.items()), ZERO
            )

    @property
    def exposure(self) -> Decimal:
        """Market value (perpetuals: notional) of open positions plus what pending orders
        may add (`exposure_of`)."""
        with localcontext(ACCOUNTING_CONTEXT):
            held = sum((p.market_value(self.marks.get(k)) for k, p in self.positions.items()), ZERO)
            pending = sum((exposure_of(o) for o in self.pending), ZERO)
            return held + pending

    @property
    def equity(self) -> Decimal:
        """allocation + realized + unrealized (the same sum as `unrealized_pnl`, inlined
        for spot: it is computed several times per tick while a position is open)."""
        with localcontext(ACCOUNTING_CONTEXT):
            total = self.allocation + self.realized_pnl
            marks = self.marks
            for key, p in self.positions.items():
                mark = marks.get(key)
                if mark is None:
                    continue
                if p.is_perp:  # direction and entry fees: Position.unrealized_pnl
                    total += p.unrealized_pnl(mark)
                else:
                    total += p.quantity * mark - p.cost
            return total

    @property
    def drawdown_percent(self) -> Decimal:
        """Fall of equity from its peak, percent; never negative."""
        with localcontext(ACCOUNTING_CONTEXT):
            if self.equity_peak <= 0:
                return HUNDRED
            return max(ZERO, (self.equity_peak - self.equity) / self.equity_peak * HUNDRED)

    def closable(self, key: PositionKey) -> Decimal:
        """Perpetuals: the open quantity not already committed to a pending reducing
        order (the side opposite the position's)."""
        position = self.positions.get(key)
        if position is None:
            return ZERO
        closing = Side.SELL if position.side is PositionSide.LONG else Side.BUY
        with localcontext(ACCOUNTING_CONTEXT):
            pending = sum(
                (
                    o.quantity
                    for o in self.pending
                    if o.side is closing and (o.base, o.quote) == key
                ),
                ZERO,
            )
            return position.quantity - pending

    def sellable(self, key: PositionKey) -> Decimal:
        """Held quantity not already committed to a pending sell."""
        position = self.positions.get(key)
        held = ZERO if position is None else position.quantity
        with localcontext(ACCOUNTING_CONTEXT):
            selling = sum(
                (
                    o.quantity
                    for o in self.pending
                    if o.side is Side.SELL and (o.base, o.quote) == key
                ),
                ZERO,
            )
            return held - selling

    # ---- updates ---------------------------------------------------------------------

    def roll_day(self, now: datetime) -> None:
        """Start a new daily-loss budget when the UTC day changes."""
        today = utc_day(now)
        if today != self.day:
            self.day = today
            self.realized_pnl_today = ZERO

    def sync(
        self,
        *,
        positions: list[Position],
        trades: list[ClosedTrade],
        pending: list[Order],
        now: datetime,
        events: Sequence[PositionEvent] = (),
    ) -> None:
        """Take positions, pending intents and realized PnL (closed trades, liquidations
        included, and funding) from the ledger."""
        today = utc_day(now)
        self.day = today
        self.positions = {p.key: p for p in positions}
        self.pending = list(pending)
        with localcontext(ACCOUNTING_CONTEXT):
            realized, realized_today = self._trades_pnl(trades, today)
            funding = [e for e in events if e.kind == "funding"]
            self.funding = sum((e.amount for e in funding), ZERO)
            self.realized_pnl = realized + self.funding
            self.realized_pnl_today = realized_today + sum(
                (e.amount for e in funding if utc_day(e.at) == today), ZERO
            )
        self._update_peak()

    def _trades_pnl(self, trades: list[ClosedTrade], today: date) -> tuple[Decimal, Decimal]:
        """Realized PnL of the closed trades, in all and today. Incremental: a ledger that
        only appended trades (the in-memory one hands back the same objects) is not summed
        from the first trade at every fill."""
        tally = self._tally
        n = len(trades)
        if (
            tally is None
            or tally.count > n
            or (tally.count and trades[tally.count - 1] is not tally.last)
        ):
            tally = _Tally()  # not an extension of what was summed: start over
        realized = tally.realized
        for t in trades[tally.count :]:
            realized += t.pnl
        if tally.day != today:
            realized_today = sum(
                (t.pnl for t in trades if t.closed_at and utc_day(t.closed_at) == today), ZERO
            )
        else:
            realized_today = tally.today
            for t in trades[tally.count :]:
                if t.closed_at and utc_day(t.closed_at) == today:
                    realized_today += t.pnl
        self._tally = _Tally(n, trades[-1] if trades else None, realized, today, realized_today)
        return realized, realized_today

    def mark(self, key: PositionKey, price: Decimal) -> bool:
        """Record the latest market price of a pair (for unrealized PnL and drawdown).

        Returns whether equity may have moved: only a held pair's mark moves it, so an
        unheld pair's mark (most candles of a backtest) skips the peak and breach work.
        """
        if price <= 0:
            raise ValueError(f"mark price must be > 0, got {price}")
        if self.marks.get(key) is price:
            return False  # the same mark again (stop-loss scan, then the tick)
        self.marks[key] = price
        if key not in self.positions:
            return False
        self._update_peak()
        return True

    def _update_peak(self) -> None:
        self.equity_peak = max(self.equity_peak, self.equity)

    def halt_now(self, reason: str, message: str, now: datetime) -> None:
        if self.halt is None:  # keep the first reason: it is the one that matters
            self.halt = HaltInfo(reason, message, now)

    def resume(self) -> None:
        """Clear a halt. Only a person does this (operator annotation, later issue).

        The drawdown is measured from here on: the peak restarts at the current equity,
        otherwise the same drawdown would halt the module again at the next mark.
        """
        self.halt = None
        self.equity_peak = self.equity


@dataclass(frozen=True, slots=True)
class _Tally:
    count: int = 0
    last: ClosedTrade | None = None
    realized: Decimal = ZERO
    day: date | None = None
    today: Decimal = ZERO


def utc_day(moment: datetime) -> date:
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return moment.astimezone(UTC).date()


def breach(state: RiskState, limits: RiskLimits) -> tuple[HaltReason, str] | None:
    """A limit whose breach must halt the module, evaluated after each fill and mark."""
    with localcontext(ACCOUNTING_CONTEXT):
        loss_today = -state.realized_pnl_today
        if loss_today > 0 and loss_today >= limits.max_daily_loss:
            return (
                HaltReason.MAX_DAILY_LOSS,
                f"realized loss today {loss_today} {limits.currency} reached the "
                f"max daily loss {limits.max_daily_loss}",
            )
        peak = state.equity_peak
        if peak > 0:  # below the limit, exactly and without a division (every mark)
            fall = peak - state.equity
            if fall <= 0 or fall * HUNDRED < limits.max_drawdown_percent * peak:
                return None
        drawdown = state.drawdown_percent
        if drawdown > 0 and drawdown >= limits.max_drawdown_percent:
            return (
                HaltReason.MAX_DRAWDOWN,
                f"drawdown {drawdown.quantize(Decimal('0.01'))}% from the equity peak "
                f"{state.equity_peak} reached the max {limits.max_drawdown_percent}%",
            )
    return None


def stop_loss_hit(position: Position, mark: Decimal, stop_loss_percent: Decimal) -> bool:
    """True when a long's mark is at or below its average cost less `stop_loss_percent`
    (a short's: at or above its average entry plus it).

    The average cost of a spot long includes entry fees. A stop of 0 % means "no stop
    loss" (a 0 % stop would fire on the entry fee alone).
    """
    if stop_loss_percent <= 0:
        return False
    with localcontext(ACCOUNTING_CONTEXT):
        if position.side is PositionSide.SHORT:
            return mark >= position.avg_cost * (HUNDRED + stop_loss_percent) / HUNDRED
        return mark <= position.avg_cost * (HUNDRED - stop_loss_percent) / HUNDRED


def exposure_of(order: Order) -> Decimal:
    """The notional a pending order may add: spot buys and perpetual orders that do not
    claim to reduce."""
    if order.market is Market.PERP:
        return ZERO if order.reduces_position else order.notional
    return order.notional if order.side is Side.BUY else ZERO


def reservation(order: Order) -> Decimal:
    """What a pending order holds back from the capital checks (see `RiskState.reserved`)."""
    with localcontext(ACCOUNTING_CONTEXT):
        if order.market is Market.PERP:
            return ZERO if order.reduces_position else order.notional / order.leverage
        return order.notional if order.side is Side.BUY else ZERO


def check(order: Order, state: RiskState, limits: RiskLimits) -> RiskDecision:
    """Accept or reject `order` against `limits` given `state`. First failure wins."""
    with localcontext(ACCOUNTING_CONTEXT):
        return _check(order, state, limits)


def _check(order: Order, state: RiskState, limits: RiskLimits) -> RiskDecision:
    reject = RiskDecision.reject
    if state.halt is not None:
        return reject(
            RejectReason.HALTED,
            f"module halted ({state.halt.reason}: {state.halt.message}); a person must resume it",
        )
    if order.quantity <= 0 or order.price <= 0 or order.leverage <= 0:
        return reject(
            RejectReason.INVALID_ORDER,
            f"quantity, price and leverage must be > 0 (got {order.quantity}, "
            f"{order.price}, {order.leverage})",
        )
    key = (order.base, order.quote)
    if order.market is Market.PERP:
        return _check_perp(order, key, state, limits)
    if order.side is Side.SELL:
        sellable = state.sellable(key)
        if order.quantity > sellable:
            return reject(
                RejectReason.SHORT_NOT_SUPPORTED,
                f"sell of {order.quantity} {order.base} exceeds the sellable {sellable}: "
                "only spot longs are supported",
            )
        return RiskDecision.accept()  # a verified reduction
    if order.reduces_position:
        return reject(
            RejectReason.NOT_REDUCING,
            "order claims to reduce a position but is a buy, which opens or grows one",
        )
    return _check_opening(order, key, state, limits)


def _check_opening(
    order: Order, key: PositionKey, state: RiskState, limits: RiskLimits
) -> RiskDecision:
    reject = RiskDecision.reject
    if state.stopping:
        return reject(RejectReason.STOPPING, "module is stopping: no new exposure")
    if state.paused:
        return reject(RejectReason.PAUSED, "module is paused: no new exposure")
    if state.portfolio_halt is not None:
        return reject(
            RejectReason.PORTFOLIO_HALTED,
            f"portfolio halted ({state.portfolio_halt.reason}): no new exposure",
        )
    notional = order.notional
    if order.leverage > limits.max_leverage:
        return reject(
            RejectReason.MAX_LEVERAGE,
            f"order leverage {order.leverage} exceeds max leverage {limits.max_leverage}",
        )
    if notional > limits.max_position_size:
        return reject(
            RejectReason.MAX_POSITION_SIZE,
            f"order notional {notional} exceeds max position size {limits.max_position_size}",
        )
    position = state.positions.get(key)
    resulting = notional + (ZERO if position is None else position.quantity * order.price)
    if resulting > limits.max_position_size:
        return reject(
            RejectReason.MAX_POSITION_SIZE,
            f"resulting {order.base}/{order.quote} position {resulting} (at {order.price}) "
            f"exceeds max position size {limits.max_position_size}",
        )
    pending = {(o.base, o.quote) for o in state.pending if o.side is Side.BUY}
    if (refused := _max_open_positions(key, state, limits, pending)) is not None:
        return refused
    available = limits.allocation - state.capital_in_use - state.reserved
    if notional > available:
        return reject(
            RejectReason.INSUFFICIENT_CAPITAL,
            f"order notional {notional} exceeds available capital {available} "
            f"(allocation {limits.allocation} - in use {state.capital_in_use} "
            f"- reserved {state.reserved})",
        )
    if (refused := _max_leverage(state, limits, notional)) is not None:
        return refused
    return _loss_limits(state, limits, notional, unstopped=notional)


def _check_perp(
    order: Order, key: PositionKey, state: RiskState, limits: RiskLimits
) -> RiskDecision:
    reject = RiskDecision.reject
    position = state.positions.get(key)
    if position is not None and not position.is_perp:
        return reject(RejectReason.INVALID_ORDER, f"{key[0]}/{key[1]} is held as spot")
    opens = PositionSide.LONG if order.side is Side.BUY else PositionSide.SHORT
    if position is not None and position.side is not opens:
        closable = state.closable(key)
        if order.quantity > closable:
            return reject(
                RejectReason.NOT_REDUCING,
                f"{order.side} of {order.quantity} {order.base} exceeds the closable "
                f"{closable} of the {position.side} position: close it before opening the "
                "other side",
            )
        return RiskDecision.accept()  # a verified reduction
    if order.reduces_position:
        return reject(
            RejectReason.NOT_REDUCING,
            f"order claims to reduce a position but opens or grows a {opens} one",
        )
    if state.stopping:
        return reject(RejectReason.STOPPING, "module is stopping: no new exposure")
    if state.paused:
        return reject(RejectReason.PAUSED, "module is paused: no new exposure")
    tiers = limits.tiers.get(key)
    if tiers is None:
        return reject(RejectReason.UNKNOWN_SYMBOL, f"no perpetual {key[0]}/{key[1]} on this venue")
    if order.leverage > limits.max_leverage:
        return reject(
            RejectReason.MAX_LEVERAGE,
            f"order leverage {order.leverage} exceeds max leverage {limits.max_leverage}",
        )
    notional = order.notional
    held = ZERO if position is None else position.quantity
    resulting = notional + held * order.price
    if resulting > limits.max_position_size:
        return reject(
            RejectReason.MAX_POSITION_SIZE,
            f"resulting {order.base}/{order.quote} position notional {resulting} (at "
            f"{order.price}) exceeds max position size {limits.max_position_size}",
        )
    try:
        venue_max = tiers.max_leverage_for(resulting)
    except ValueError as error:
        return reject(RejectReason.MAX_POSITION_SIZE, str(error))
    if order.leverage > venue_max:
        return reject(
            RejectReason.MAX_LEVERAGE,
            f"order leverage {order.leverage} exceeds the venue's max {venue_max} for a "
            f"{tiers.symbol} notional of {resulting}",
        )
    pending = {(o.base, o.quote) for o in state.pending if reservation(o) > 0}
    if (refused := _max_open_positions(key, state, limits, pending)) is not None:
        return refused
    margin = notional / order.leverage
    available = limits.allocation + state.realized_pnl - state.capital_in_use - state.reserved
    if margin > available:
        return reject(
            RejectReason.INSUFFICIENT_CAPITAL,
            f"order margin {margin} exceeds available margin {available} (allocation "
            f"{limits.allocation} + realized {state.realized_pnl} - in use "
            f"{state.capital_in_use} - reserved {state.reserved})",
        )
    if (refused := _max_leverage(state, limits, notional)) is not None:
        return refused
    if limits.stop_loss_percent > 0:
        quantity = held + order.quantity
        entry = (resulting if position is None else position.cost + notional) / quantity
        wallet = margin + (ZERO if position is None else position.margin)
        side = Direction.LONG if opens is PositionSide.LONG else Direction.SHORT
        liquidation = liquidation_price(side, quantity, entry, wallet, tiers)
        band = limits.stop_loss_percent / HUNDRED
        stop = entry * (1 - band) if side is Direction.LONG else entry * (1 + band)
        inside = liquidation >= stop if side is Direction.LONG else liquidation <= stop
        if inside:
            return reject(
                RejectReason.LIQUIDATION_INSIDE_STOP,
                f"liquidation price {liquidation.quantize(Decimal('0.01'))} lies inside the "
                f"{limits.stop_loss_percent}% stop loss of entry {entry} (stop at "
                f"{stop.quantize(Decimal('0.01'))}): lower the leverage",
            )
    return _loss_limits(state, limits, notional, unstopped=margin)


def _max_open_positions(
    key: PositionKey, state: RiskState, limits: RiskLimits, pending: set[PositionKey]
) -> RiskDecision | None:
    """A new pair (not held, no opening order pending) within max open positions."""
    open_keys = set(state.positions) | pending
    if key not in open_keys and len(open_keys) >= limits.max_open_positions:
        return RiskDecision.reject(
            RejectReason.MAX_OPEN_POSITIONS,
            f"{len(open_keys)} positions open, max open positions is {limits.max_open_positions}",
        )
    return None


def _max_leverage(state: RiskState, limits: RiskLimits, notional: Decimal) -> RiskDecision | None:
    """Exposure with this order within max leverage times equity."""
    equity = state.equity
    if equity <= 0 or state.exposure + notional > limits.max_leverage * equity:
        return RiskDecision.reject(
            RejectReason.MAX_LEVERAGE,
            f"exposure {state.exposure + notional} would exceed max leverage "
            f"{limits.max_leverage} x equity {equity}",
        )
    return None


def _loss_limits(
    state: RiskState, limits: RiskLimits, notional: Decimal, *, unstopped: Decimal
) -> RiskDecision:
    """The daily loss budget and the drawdown, last for spot and perpetuals alike. What
    the order could lose is its loss at the stop, or `unstopped` without a stop loss (a
    spot order's notional, a perpetual's margin)."""
    reject = RiskDecision.reject
    remaining = limits.max_daily_loss + state.realized_pnl_today
    if remaining <= 0:
        return reject(
            RejectReason.DAILY_LOSS_LIMIT,
            f"daily loss budget used up (realized today {state.realized_pnl_today}, "
            f"max daily loss {limits.max_daily_loss})",
        )
    worst_case = (
        notional * limits.stop_loss_percent / HUNDRED if limits.stop_loss_percent > 0 else unstopped
    )
    if worst_case > remaining:
        return reject(
            RejectReason.DAILY_LOSS_LIMIT,
            f"loss at the stop ({worst_case}) exceeds the remaining daily loss budget {remaining}",
        )
    drawdown = state.drawdown_percent
    if drawdown > 0 and drawdown >= limits.max_drawdown_percent:
        return reject(
            RejectReason.MAX_DRAWDOWN,
            f"drawdown {drawdown.quantize(Decimal('0.01'))}% has reached the max "
            f"{limits.max_drawdown_percent}%",
        )
    return RiskDecision.accept()
