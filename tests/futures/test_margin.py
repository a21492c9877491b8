"""Liquidation price, maintenance margin and funding against the exchange's documented
formulas, on cases computed by hand here (Decimal, 60 digits).

Sources:
- Binance, "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts"
  (https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93): in isolated
  mode TMM = UPNL = 0 and, one-way mode,
  LP = (WB + cumB - Side x Position x EP) / (Position x MMR - Side x Position);
  "if your position (calculated at the liquidation price) and the current position
  (calculated at the opening price) are of different levels", recompute with the MMR and
  maintenance amount of the level at the liquidation price.
- Binance, "Leverage and Margin of USDⓈ-M Futures"
  (https://www.binance.com/en/futures/trading-rules/perpetual/leverage-margin):
  Maintenance Margin = Notional Position Value x MMR - Maintenance Amount, and
  Maintenance Amount[n] = Floor[n] x (MMR[n] - MMR[n-1]) + Maintenance Amount[n-1].
- Binance, "Introduction to Binance Futures Funding Rates"
  (https://www.binance.com/en/support/faq/360033525031): Funding Amount = Nominal Value
  of Positions x Funding Rate, nominal value = Mark Price x Size; a positive rate: longs
  pay shorts.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from module_runtime.futures.margin import (
    Direction,
    funding_received,
    initial_margin,
    liquidated,
    liquidation_price,
    maintenance_margin,
    margin_balance,
    margin_ratio,
)
from module_runtime.futures.tiers import BTC_TIERS, Tier, TierTable, default_tables, table
from module_runtime.positions import ACCOUNTING_CONTEXT

D = Decimal
LONG, SHORT = Direction.LONG, Direction.SHORT
TABLES = default_tables()
BTC = TABLES[("BTC", "USDT")]
ETH = TABLES[("ETH", "USDT")]


def q(text: str) -> Decimal:
    with localcontext(ACCOUNTING_CONTEXT):
        return D(text)


def div(a: str, b: str) -> Decimal:
    with localcontext(ACCOUNTING_CONTEXT):
        return D(a) / D(b)


# (name, table, side, quantity, entry, leverage, expected LP, the working)
CASES = [
    (
        # notional 50,000 is tier 2 (MMR 0.5 %, cum 50): LP = (5000 + 50 - 50000) /
        # (0.005 - 1) = 45175.88, whose notional 45,175.88 is tier 1: recomputed with
        # MMR 0.4 %, cum 0: (5000 - 50000) / (0.004 - 1) = 45000 / 0.996
        "BTC long 1 @ 50000 x10, tier recomputed",
        BTC,
        LONG,
        "1",
        "50000",
        "10",
        div("45000", "0.996"),
    ),
    (
        # tier 1; WB = 20000 / 20 = 1000: (1000 + 0 + 0.5 x 40000) / (0.5 x 0.004 + 0.5)
        "BTC short 0.5 @ 40000 x20",
        BTC,
        SHORT,
        "0.5",
        "40000",
        "20",
        div("21000", "0.502"),
    ),
    (
        # notional 300,000: ETH tier 3 (MMR 1 %, cum 365), WB 60,000:
        # (60000 + 365 - 300000) / (100 x 0.01 - 100) = 239635 / 99; at LP 242,055 still tier 3
        "ETH long 100 @ 3000 x5",
        ETH,
        LONG,
        "100",
        "3000",
        "5",
        div("239635", "99"),
    ),
    (
        # notional 1,200,000: BTC tier 4 (MMR 2.5 %, cum 16300), WB 120,000:
        # (120000 + 16300 + 1200000) / (30 x 0.025 + 30) = 1336300 / 30.75
        "BTC short 30 @ 40000 x10, tier 4",
        BTC,
        SHORT,
        "30",
        "40000",
        "10",
        div("1336300", "30.75"),
    ),
    (
        # WB equals the notional: (30000 + 0 - 30000) / (...) = 0: never liquidated
        "BTC long 1 @ 30000 x1",
        BTC,
        LONG,
        "1",
        "30000",
        "1",
        D(0),
    ),
]


@pytest.mark.parametrize(
    ("tiers", "side", "quantity", "entry", "leverage", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_liquidation_price_hand_computed(
    tiers: TierTable, side: Direction, quantity: str, entry: str, leverage: str, expected: Decimal
) -> None:
    wallet = initial_margin(D(quantity), D(entry), D(leverage))
    found = liquidation_price(side, D(quantity), D(entry), wallet, tiers)
    assert found == expected
    if expected > 0:
        # at the liquidation price the margin balance is exactly the maintenance margin
        with localcontext(ACCOUNTING_CONTEXT):
            balance = margin_balance(side, D(quantity), D(entry), wallet, found)
            mm = maintenance_margin(D(quantity), found, tiers)
            assert abs(balance - mm) < D("1e-40")


def test_hand_computed_values_in_decimal() -> None:
    """The same numbers written out, so a reader can check the divisions above."""
    assert str(CASES[0][-1])[:20] == "45180.72289156626506"
    assert str(CASES[1][-1])[:20] == "41832.66932270916334"
    assert str(CASES[2][-1])[:20] == "2420.555555555555555"
    assert str(CASES[3][-1])[:20] == "43456.91056910569105"


def test_maintenance_margin_and_ratio() -> None:
    # BTC tier 1 at 48,000: MM = 48000 x 0.004 = 192; balance = 5000 + (48000 - 50000) = 3000
    assert maintenance_margin(D(1), D(48000), BTC) == D("192.000")
    assert margin_ratio(LONG, D(1), D(50000), D(5000), D(48000), BTC) == D("0.064")
    # tier 2 at 100,000 notional: 100000 x 0.005 - 50 = 450
    assert maintenance_margin(D(2), D(50000), BTC) == D("450.000")
    # continuous at the tier boundary: 50000 x 0.004 - 0 == 50000 x 0.005 - 50
    assert BTC.maintenance_margin(D("49999.99")) < BTC.maintenance_margin(D(50000)) == D(200)


def test_maintenance_amounts_follow_the_published_recurrence() -> None:
    # cum[n] = floor[n] x (MMR[n] - MMR[n-1]) + cum[n-1], e.g. tier 4: 1,000,000 x 1.5 % + 1300
    assert [t.cum for t in BTC.tiers][:5] == [D(0), D(50), D(1300), D(16300), D(266300)]
    wrong = [*BTC_TIERS[:2], ("250000", "1000000", 50, "0.01", "1250")]
    with pytest.raises(ValueError, match="should be 1300"):
        table("BTCUSDT", wrong)
    with pytest.raises(ValueError, match="contiguous"):
        TierTable(
            "X",
            [
                Tier(D(0), D(10), D(5), D("0.01"), D(0)),
                Tier(D(11), D(20), D(2), D("0.02"), D("0.11")),
            ],
        )


@pytest.mark.parametrize(
    ("side", "quantity", "mark", "rate", "received"),
    [
        (LONG, "2", "41000", "0.0001", "-8.2"),  # 2 x 41000 x 0.01 % = 8.2, longs pay
        (SHORT, "10", "2500", "0.0003", "7.5"),  # shorts receive 10 x 2500 x 0.03 %
        (LONG, "1", "30000", "-0.0002", "6"),  # a negative rate: longs receive
        (SHORT, "0.5", "40000", "-0.0001", "-2"),  # and shorts pay
    ],
)
def test_funding_hand_computed(
    side: Direction, quantity: str, mark: str, rate: str, received: str
) -> None:
    assert funding_received(side, D(quantity), D(mark), D(rate)) == D(received)


# ---- the formula and the definition agree: liquidated exactly when the mark crosses ------

quantities = st.decimals(min_value=D("0.001"), max_value=D(200), places=3)
prices = st.decimals(min_value=D(100), max_value=D(100_000), places=2)
leverages = st.integers(min_value=1, max_value=125).map(D)


@settings(max_examples=400, deadline=None)
@given(
    side=st.sampled_from([LONG, SHORT]),
    quantity=quantities,
    entry=prices,
    leverage=leverages,
    move=st.decimals(min_value=D("-0.99"), max_value=D(3), places=4),
)
def test_liquidated_exactly_when_margin_balance_reaches_maintenance(
    side: Direction, quantity: Decimal, entry: Decimal, leverage: Decimal, move: Decimal
) -> None:
    notional = quantity * entry
    if notional >= BTC.max_notional:
        return
    wallet = initial_margin(quantity, entry, leverage)
    lp = liquidation_price(side, quantity, entry, wallet, BTC)
    mark = (entry * (1 + move)).quantize(D("0.01"))
    if mark <= 0 or quantity * mark >= BTC.max_notional:
        return
    with localcontext(ACCOUNTING_CONTEXT):
        by_definition = margin_balance(side, quantity, entry, wallet, mark) <= maintenance_margin(
            quantity, mark, BTC
        )
    assert liquidated(side, mark, lp) == by_definition
