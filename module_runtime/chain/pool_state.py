"""`PoolState`: one consistent snapshot of a constant-product pool (reserves and LP supply
read at one block), oriented base/quote, with the contracts' exact integer math: swap output
(`Router.getAmountOut`), what an add mints and what a remove pays
(`Router.addLiquidity`/`removeLiquidity`, `Pair.mint`/`burn`). Pure: no RPC.

Which price. `mid` is the pool's *mid price*: quote reserve / base reserve, in tokens
(decimals applied) - fee-free and without price impact. What an order actually gets is the
exact quote (`swap_out`), fee and impact included. A venue's LP token has a price too
(`lp_price`): the value of one LP token (10**18 units) at the mid price, 2 x quote reserve /
LP supply.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from ..market_data import MarketDataUnavailable
from ..orders import Side
from ..positions import ACCOUNTING_CONTEXT
from .pool import Token, get_amount_out
from .units import apply_slippage, product, ratio

LP_DECIMALS = 18  # Pair.decimals


@dataclass(frozen=True, slots=True)
class PoolState:
    """One pool at one moment, oriented base/quote, with the contracts' integer math."""

    venue: str
    base: Token
    quote: Token
    lp: Token
    fee_bps: int
    base_reserve: int
    quote_reserve: int
    total_supply: int
    block_number: int | None = None

    @property
    def reserves(self) -> tuple[int, int]:
        return (self.base_reserve, self.quote_reserve)

    @property
    def mid(self) -> Decimal:
        """Quote per base from the reserves: no fee, no price impact."""
        if self.base_reserve <= 0 or self.quote_reserve <= 0:
            raise MarketDataUnavailable(f"venue {self.venue} has no liquidity")
        return ratio(
            self.quote.from_units(self.quote_reserve), self.base.from_units(self.base_reserve)
        )

    @property
    def lp_price(self) -> Decimal:
        """Value of one LP token in quote at the mid price: 2 x quote reserve / supply."""
        if self.total_supply <= 0 or self.quote_reserve <= 0:
            raise MarketDataUnavailable(f"venue {self.venue} has no liquidity")
        return ratio(
            2 * self.quote.from_units(self.quote_reserve), self.lp.from_units(self.total_supply)
        )

    def value(self, base_amount: int, quote_amount: int) -> Decimal:
        """Quote value of token amounts (units) at the mid price."""
        with localcontext(ACCOUNTING_CONTEXT):
            return product(self.base.from_units(base_amount), self.mid) + self.quote.from_units(
                quote_amount
            )

    # ---- swaps -------------------------------------------------------------------------

    def amount_in(self, side: Side, quantity: Decimal, price: Decimal) -> int:
        """Units an order spends, rounded as `Web3Broker` rounds them: a buy spends
        quantity x price quote, a sell `quantity` base; both rounded down."""
        if side is Side.BUY:
            return self.quote.to_units(product(quantity, price))
        return self.base.to_units(quantity)

    def swap_out(self, side: Side, amount_in: int) -> int:
        """Exact output of an exact-input swap: base for a buy, quote for a sell."""
        if amount_in <= 0:
            return 0
        if side is Side.BUY:
            return get_amount_out(amount_in, self.quote_reserve, self.base_reserve, self.fee_bps)
        return get_amount_out(amount_in, self.base_reserve, self.quote_reserve, self.fee_bps)

    def min_out(
        self, side: Side, quantity: Decimal, price: Decimal, slippage_percent: Decimal
    ) -> Decimal:
        """The order's exact output here, less `slippage_percent`, rounded down: `min_out`."""
        out = self.swap_out(side, self.amount_in(side, quantity, price))
        token = self.base if side is Side.BUY else self.quote
        return token.from_units(apply_slippage(out, slippage_percent))

    # ---- liquidity ---------------------------------------------------------------------

    def add_amounts(self, liquidity: int) -> tuple[int, int]:
        """(base, quote) units to offer for `liquidity` LP units: pro rata, rounded up."""
        if self.total_supply <= 0:
            raise MarketDataUnavailable(f"venue {self.venue} has no liquidity to join")
        return (
            -(-liquidity * self.base_reserve // self.total_supply),
            -(-liquidity * self.quote_reserve // self.total_supply),
        )

    def mint(self, base_desired: int, quote_desired: int) -> tuple[int, int, int]:
        """(base used, quote used, LP minted) of `Router.addLiquidity` on this pool."""
        rb, rq, supply = self.base_reserve, self.quote_reserve, self.total_supply
        if rb <= 0 or rq <= 0 or supply <= 0:
            raise MarketDataUnavailable(f"venue {self.venue} has no liquidity to join")
        quote_optimal = base_desired * rq // rb
        if quote_optimal <= quote_desired:
            base_used, quote_used = base_desired, quote_optimal
        else:
            base_used, quote_used = quote_desired * rb // rq, quote_desired
        minted = min(base_used * supply // rb, quote_used * supply // rq)
        return base_used, quote_used, minted

    def burn(self, liquidity: int) -> tuple[int, int]:
        """(base, quote) units `Pair.burn` pays for `liquidity` LP units."""
        if self.total_supply <= 0:
            return (0, 0)
        return (
            liquidity * self.base_reserve // self.total_supply,
            liquidity * self.quote_reserve // self.total_supply,
        )
