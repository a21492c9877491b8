"""Exact conversions between `Decimal` token amounts and integer smallest units (wei).

Rounding rule: Decimal -> units always rounds DOWN (toward zero). Every amount the runtime
converts is either something we send (never send more than the strategy asked for) or a
minimum we demand back (never demand more than the strategy's own bound, so a swap the
strategy would accept is never refused by a sub-unit rounding). Units -> Decimal is exact.
Neither direction uses the decimal context, so its precision (28 digits by default) can
never round a large amount.
"""

from __future__ import annotations

from decimal import Context, Decimal
from fractions import Fraction
from math import floor

MAX_DECIMALS = 77  # 10**77 < 2**256: more would not fit a uint256 anyway


def _check_decimals(decimals: int) -> None:
    if not 0 <= decimals <= MAX_DECIMALS:
        raise ValueError(f"token decimals must be within 0..{MAX_DECIMALS}, got {decimals}")


def to_units(amount: Decimal, decimals: int) -> int:
    """`amount` tokens as smallest units, rounded down. Rejects negative and non-finite."""
    _check_decimals(decimals)
    if not amount.is_finite():
        raise ValueError(f"amount must be finite, got {amount}")
    if amount < 0:
        raise ValueError(f"amount must not be negative, got {amount}")
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    coefficient = int("".join(map(str, digits))) if digits else 0
    shift = exponent + decimals
    scale: int = 10 ** abs(shift)
    return coefficient * scale if shift >= 0 else coefficient // scale


def from_units(units: int, decimals: int) -> Decimal:
    """Smallest units as an exact `Decimal` of tokens (e.g. 1500000, 6 -> 1.500000)."""
    _check_decimals(decimals)
    if units < 0:
        raise ValueError(f"units must not be negative, got {units}")
    return Decimal((0, tuple(int(d) for d in str(units)), -decimals))


def apply_slippage(amount_out: int, slippage_percent: Decimal) -> int:
    """The least output to accept: `amount_out x (100 - slippage) / 100`, rounded down.

    Exact rational math, so e.g. 0.3% of a 30-digit wei amount is not rounded by a context.
    """
    if not slippage_percent.is_finite() or not 0 <= slippage_percent < 100:
        raise ValueError(f"slippage must be within [0, 100) percent, got {slippage_percent}")
    if amount_out < 0:
        raise ValueError(f"amount_out must not be negative, got {amount_out}")
    return floor(amount_out * (100 - Fraction(slippage_percent)) / 100)


def ratio(numerator: Decimal, denominator: Decimal, digits: int = 36) -> Decimal:
    """numerator / denominator with `digits` significant digits (prices are for reporting;
    amounts that move money stay integers)."""
    if denominator == 0:
        raise ZeroDivisionError("ratio with a zero denominator")
    return Context(prec=digits).divide(numerator, denominator)


def product(a: Decimal, b: Decimal) -> Decimal:
    """a x b, exactly (the default context would round past 28 significant digits)."""
    return Context(prec=len(a.as_tuple().digits) + len(b.as_tuple().digits) + 1).multiply(a, b)
