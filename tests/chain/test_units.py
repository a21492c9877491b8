"""Decimal <-> smallest-unit conversions and the pool math, as properties (no node needed)."""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from module_runtime.chain import (
    apply_slippage,
    from_units,
    get_amount_in,
    get_amount_out,
    to_units,
)

decimals = st.integers(min_value=0, max_value=30)
units = st.integers(min_value=0, max_value=2**128)
amounts = st.decimals(min_value=0, max_value=Decimal(10) ** 30, allow_nan=False, places=40)
reserves = st.integers(min_value=1_000, max_value=2**112 - 1)
fees = st.integers(min_value=0, max_value=9_999)


@given(units, decimals)
def test_units_round_trip_exactly(value: int, places: int) -> None:
    assert to_units(from_units(value, places), places) == value


@given(amounts, decimals)
def test_to_units_rounds_down_by_less_than_one_unit(amount: Decimal, places: int) -> None:
    """Never more than asked (we send it / demand at most it), never a whole unit less."""
    back = from_units(to_units(amount, places), places)
    with localcontext(prec=200):  # the check itself must not round
        assert back <= amount
        assert amount - back < Decimal(1).scaleb(-places)


@given(st.integers(min_value=0, max_value=10**40), decimals)
def test_large_amounts_are_not_rounded_by_the_decimal_context(whole: int, places: int) -> None:
    """30+ significant digits would be rounded (possibly up) by a 28-digit context."""
    amount = Decimal(f"{whole}.{'9' * 40}")
    assert to_units(amount, places) == whole * 10**places + (10**places - 1)


def test_known_values() -> None:
    assert to_units(Decimal("1.5"), 6) == 1_500_000
    assert to_units(Decimal("0.0000019"), 6) == 1  # down, not to nearest
    assert to_units(Decimal("1E+3"), 0) == 1000
    assert from_units(1_500_000, 6) == Decimal("1.5")
    assert str(from_units(1, 18)) == "1E-18"


@pytest.mark.parametrize("bad", [Decimal("-1"), Decimal("NaN"), Decimal("Infinity")])
def test_to_units_rejects_negative_and_non_finite(bad: Decimal) -> None:
    with pytest.raises(ValueError):
        to_units(bad, 18)


@given(units, st.decimals(min_value=0, max_value=Decimal("99.99"), places=4))
def test_slippage_bound(amount: int, slippage: Decimal) -> None:
    min_out = apply_slippage(amount, slippage)
    assert 0 <= min_out <= amount
    # exact: the bound is the largest integer <= amount * (1 - s/100)
    exact = amount * (100 - Fraction(slippage))
    assert min_out * 100 <= exact < (min_out + 1) * 100


def test_slippage_rejects_out_of_range() -> None:
    for bad in (Decimal(-1), Decimal(100), Decimal("NaN")):
        with pytest.raises(ValueError):
            apply_slippage(10**18, bad)


@given(st.integers(min_value=1, max_value=2**100), reserves, reserves, fees)
def test_amount_out_keeps_the_fee_adjusted_product(
    amount_in: int, reserve_in: int, reserve_out: int, fee: int
) -> None:
    """What Pair.swap checks: the quote is the largest output the pool accepts."""
    out = get_amount_out(amount_in, reserve_in, reserve_out, fee)

    def k_ok(paid_out: int) -> bool:
        adjusted_in = (reserve_in + amount_in) * 10_000 - amount_in * fee
        return adjusted_in * (reserve_out - paid_out) * 10_000 >= reserve_in * reserve_out * 10**8

    assert 0 <= out < reserve_out
    assert k_ok(out)
    assert out + 1 >= reserve_out or not k_ok(out + 1)


@given(reserves, reserves, fees, st.integers(min_value=1, max_value=10**30))
def test_amount_in_is_the_least_input_for_an_output(
    reserve_in: int, reserve_out: int, fee: int, wanted: int
) -> None:
    if wanted >= reserve_out:
        with pytest.raises(ValueError):
            get_amount_in(wanted, reserve_in, reserve_out, fee)
        return
    needed = get_amount_in(wanted, reserve_in, reserve_out, fee)
    assert get_amount_out(needed, reserve_in, reserve_out, fee) >= wanted
    if needed > 1:
        assert get_amount_out(needed - 1, reserve_in, reserve_out, fee) < wanted
