"""`arbitrage`: buy in the cheaper of two pools, sell in the dearer, when the spread pays.

Each tick reads both pools (one snapshot each). With the mid prices `cheap < dear` it trades
only when

- the mid spread, `(dear / cheap - 1)` in bps, exceeds both pools' fees plus `minSpreadBps`,
  and
- at the chosen size, the exact two-leg quote (the contracts' integer math: both fees and
  both price impacts) returns at least `minSpreadBps` on the quote spent.

Size: the spend that maximizes the exact profit, capped by `orderSize` and the max position
size, then reduced (if needed) to the largest spend that still returns `minSpreadBps`.

Both legs go through the one `OrderPath` (risk checks, ledger, broker): leg 1 buys base
with quote on the cheap pool (`min_out`: its exact quote less `slippagePercent`); leg 2
sells exactly what leg 1 received on the dear pool (`min_out`: the dear pool's exact quote
for that amount at the snapshot the decision used, less `slippagePercent`), as a reducing
order. The ledger books them as one position opened and closed: realized PnL = quote back -
quote spent, fees included; on chain that is the wallet's quote balance change (gas is paid
in the native coin).

When leg 2 fails (reverted: the dear pool moved past the slippage; dropped; or refused) the
base bought in leg 1 stays in the ledger as an open position - nothing is hidden or
guessed. The module logs it and counts it (`leg_failures`), opens no new arbitrage while
it holds inventory, and unwinds it from the next tick on: it sells everything sellable on
whichever pool pays more at that moment (`min_out`: that exact quote less
`slippagePercent`), accepting the loss the move caused rather than carrying inventory risk
an arbitrage module is not meant to take. The base module's stop loss still applies
meanwhile (routed to the better pool too). A risk halt blocks the unwind as it blocks
every order: a person decides (see `module_runtime.risk`).

Paper mode does not move the pools, so after a paper arbitrage the same spread is still
there; the module does not trade the same pair of snapshots (same reserves) twice.

With `marketData.source: synthetic` the two pools are simulated (`SimulatedPool`: one random
walk, independent bounded noise per pool), so the sample runs without a node.

spec.strategy example::

    base: WETH
    quote: USDC
    orderSize: "2000"        # most quote spent per arbitrage
    minSpreadBps: 20
    poolA: "0x..."           # evm: the two Pairs and their Routers
    routerA: "0x..."
    poolB: "0x..."
    routerB: "0x..."
    slippagePercent: 0.5
    deadlineSeconds: 120
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal, localcontext

from pydantic import Field, model_validator

from module_runtime.chain.pool_market import PoolMarket
from module_runtime.chain.pool_state import PoolState
from module_runtime.chain.venues import EvmAddress, VenueConfig
from module_runtime.modules.base import BPS, BaseModule, InvalidStrategyParams, StrategyParams
from module_runtime.modules.dex_trading import require
from module_runtime.orders import Order, OrderStatus, Side
from module_runtime.positions import ACCOUNTING_CONTEXT, Position
from tradeplane_operator.api.models import MarketDataSource, Mode, TradingModuleSpec

log = logging.getLogger(__name__)

VENUES = ("a", "b")


class ArbitrageParams(StrategyParams):
    base: str = Field(min_length=1, max_length=32, description="Token bought and sold.")
    quote: str = Field(min_length=1, max_length=32, description="Token paid with.")
    order_size: Decimal = Field(gt=0, description="Most quote spent per arbitrage.")
    min_spread_bps: Decimal = Field(
        default=Decimal(10), ge=0, lt=10_000, description="Least net return, bps of the spend."
    )
    pool_a: EvmAddress | None = Field(default=None, description="Pair A (evm).")
    router_a: EvmAddress | None = Field(default=None, description="Router of pool A (live).")
    pool_b: EvmAddress | None = Field(default=None, description="Pair B (evm).")
    router_b: EvmAddress | None = Field(default=None, description="Router of pool B (live).")
    slippage_percent: Decimal = Field(default=Decimal("0.5"), ge=0, lt=100)
    deadline_seconds: int = Field(default=120, ge=1, le=3600)

    @model_validator(mode="after")
    def _distinct(self) -> ArbitrageParams:
        if self.base == self.quote:
            raise ValueError("base and quote must differ")
        if self.pool_a is not None and self.pool_a == self.pool_b:
            raise ValueError("poolA and poolB must differ")
        return self


class ArbitrageModule(BaseModule[ArbitrageParams]):
    params_model = ArbitrageParams

    @classmethod
    def venues(cls, params: StrategyParams, spec: TradingModuleSpec) -> list[VenueConfig]:
        assert isinstance(params, ArbitrageParams)
        p = params
        if spec.market_data.source is not MarketDataSource.EVM:
            return [VenueConfig(name, p.base, p.quote) for name in VENUES]
        live = spec.mode is Mode.LIVE
        configs = []
        for name, pool, router in (("a", p.pool_a, p.router_a), ("b", p.pool_b, p.router_b)):
            suffix = name.upper()
            pool = require(pool, f"pool{suffix}", "required when marketData.source is evm")
            if live:
                router = require(router, f"router{suffix}", "required in live mode")
            configs.append(
                VenueConfig(
                    name,
                    p.base,
                    p.quote,
                    pool=pool,
                    router=router,
                    deadline_seconds=p.deadline_seconds,
                )
            )
        return configs

    def configure(self) -> None:
        if not isinstance(self.market, PoolMarket):
            raise InvalidStrategyParams("arbitrage needs two pools (module_runtime.chain.market)")
        self.pools = self.market
        self.key = (self.params.base, self.params.quote)
        self.arbitrages = 0
        self.leg_failures = 0
        self.unwinds = 0
        self.last_spread_bps: Decimal | None = None
        self._taken: tuple[tuple[int, int], ...] | None = None

    async def tick(self) -> None:
        p = self.params
        a, b = await asyncio.gather(*(self.pools.state(name) for name in VENUES))
        self.order_path.mark(p.base, p.quote, a.mid)  # as PoolMarket.price: pool A's mid
        if self.order_path.state.sellable(self.key) > 0:
            await self._unwind((a, b))
            return
        cheap, dear = (a, b) if a.mid <= b.mid else (b, a)
        with localcontext(ACCOUNTING_CONTEXT):
            spread = (dear.mid / cheap.mid - 1) * BPS
        self.last_spread_bps = spread
        if spread <= cheap.fee_bps + dear.fee_bps + p.min_spread_bps:
            return
        taken = (a.reserves, b.reserves)
        if taken == self._taken or not self.can_open or self.key in self.stopped_out:
            return
        leg1 = self._leg1(cheap, dear)
        if leg1 is None:
            return
        first = await self.submit(leg1)
        if first.status is not OrderStatus.FILLED:
            log.info(
                "arbitrage first leg not filled",
                extra={"module_name": self.name, "status": first.status.value},
            )
            return
        self._taken = taken
        leg2 = Order(
            venue=dear.venue,
            side=Side.SELL,
            base=p.base,
            quote=p.quote,
            quantity=first.quantity,
            price=dear.mid,
            min_out=dear.min_out(Side.SELL, first.quantity, dear.mid, p.slippage_percent),
            reduces_position=True,
            created_at=self.clock.now(),
        )
        second = await self.submit(leg2)
        if second.status is OrderStatus.FILLED:
            self.arbitrages += 1
            log.info(
                "arbitrage done",
                extra={
                    "module_name": self.name,
                    "buy_venue": cheap.venue,
                    "sell_venue": dear.venue,
                    "spent": str(first.notional + first.fee),
                    "received": str(second.notional - second.fee),
                },
            )
        else:
            self.leg_failures += 1
            log.warning(
                "arbitrage second leg failed: the position stays open and is unwound next tick",
                extra={
                    "module_name": self.name,
                    "status": second.status.value,
                    "reason": second.reason,
                    "holding": str(first.quantity),
                },
            )

    # ---- sizing --------------------------------------------------------------------------

    def _leg1(self, cheap: PoolState, dear: PoolState) -> Order | None:
        p = self.params

        def profit(spend: int) -> int:
            return dear.swap_out(Side.SELL, cheap.swap_out(Side.BUY, spend)) - spend

        def pays(spend: int) -> bool:
            return spend > 0 and Decimal(profit(spend)) * BPS >= p.min_spread_bps * spend

        cap = cheap.quote.to_units(min(p.order_size, self.order_path.limits.max_position_size))
        if cap < 1:
            return None
        best = _argmax(profit, 1, cap)
        if profit(best) <= 0:
            return None
        if not pays(best):
            # The average return falls with size: find the largest spend that still pays.
            lo, hi = 0, best
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if pays(mid) else (lo, mid)
            best = lo
        if not pays(best):
            return None
        price = cheap.mid
        with localcontext(ACCOUNTING_CONTEXT):
            step = Decimal(1).scaleb(-cheap.base.decimals)
            quantity = (cheap.quote.from_units(best) / price).quantize(step, rounding=ROUND_DOWN)
        if quantity <= 0 or not pays(cheap.amount_in(Side.BUY, quantity, price)):
            return None
        return Order(
            venue=cheap.venue,
            side=Side.BUY,
            base=p.base,
            quote=p.quote,
            quantity=quantity,
            price=price,
            min_out=cheap.min_out(Side.BUY, quantity, price, p.slippage_percent),
            created_at=self.clock.now(),
        )

    # ---- inventory -----------------------------------------------------------------------

    def _best_exit(self, states: tuple[PoolState, ...], quantity: Decimal) -> PoolState:
        return max(states, key=lambda s: s.swap_out(Side.SELL, s.base.to_units(quantity)))

    async def _unwind(self, states: tuple[PoolState, PoolState]) -> None:
        p = self.params
        quantity = self.order_path.state.sellable(self.key)
        best = self._best_exit(states, quantity)
        order = Order(
            venue=best.venue,
            side=Side.SELL,
            base=p.base,
            quote=p.quote,
            quantity=quantity,
            price=best.mid,
            min_out=best.min_out(Side.SELL, quantity, best.mid, p.slippage_percent),
            reduces_position=True,
            created_at=self.clock.now(),
        )
        fill = await self.submit(order)
        if fill.status is OrderStatus.FILLED:
            self.unwinds += 1
            log.warning(
                "arbitrage inventory unwound",
                extra={"module_name": self.name, "venue": best.venue, "quantity": str(quantity)},
            )
        else:
            log.warning(
                "arbitrage inventory unwind failed; retrying next tick",
                extra={
                    "module_name": self.name,
                    "status": fill.status.value,
                    "reason": fill.reason,
                },
            )

    def exit_order(self, position: Position, price: Decimal) -> Order | None:
        """Stop-loss exits go to the pool that pays more (per the last snapshots)."""
        order = super().exit_order(position, price)
        if order is None:
            return None
        states = tuple(s for name in VENUES if (s := self.pools.last_state(name)) is not None)
        if not states:
            return None
        best = self._best_exit(states, order.quantity)
        min_out = best.min_out(Side.SELL, order.quantity, best.mid, self.params.slippage_percent)
        return replace(order, venue=best.venue, price=best.mid, min_out=min_out)

    async def on_stop(self) -> None:
        await self.pools.close()


def _argmax(f: Callable[[int], int], lo: int, hi: int) -> int:
    """The integer in [lo, hi] where the (unimodal) `f` is largest: ternary search."""
    while hi - lo > 2:
        m1 = lo + (hi - lo) // 3
        m2 = hi - (hi - lo) // 3
        if f(m1) < f(m2):
            lo = m1 + 1
        else:
            hi = m2
    return max(range(lo, hi + 1), key=f)
