"""Module registry (entry points), strategy parameter validation, price band signals."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from module_runtime.modules.base import InvalidStrategyParams
from module_runtime.modules.price_band import (
    PriceBandModule,
    PriceBandParams,
    PriceBandStrategy,
    Signal,
)
from module_runtime.modules.registry import (
    UnknownModule,
    available,
    load,
    module_class_for,
    module_name,
)

from .conftest import make_spec

D = Decimal


def test_builtin_modules_come_from_entry_points() -> None:
    assert "price_band" in available()
    assert load("price_band") is PriceBandModule
    assert module_class_for(make_spec()) is PriceBandModule


def test_unknown_module_names_the_known_ones() -> None:
    with pytest.raises(UnknownModule, match="price_band"):
        load("no_such_module")


def test_module_name_from_spec() -> None:
    assert module_name(make_spec()) == "price_band"  # custom: the entry point
    assert module_name(make_spec(type="dex_trading", entryPoint=None)) == "dex_trading"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"emaPeriod": 1}, "strategy.emaPeriod"),
        ({"orderSize": "-5"}, "strategy.orderSize"),
        ({"bandPercent": "abc"}, "strategy.bandPercent"),
        ({"exitAt": "sideways"}, "strategy.exitAt"),
        ({"surprise": 1}, "strategy.surprise"),
        ({"quote": "WETH"}, "base and quote must differ"),
    ],
)
def test_invalid_params_name_the_field(change: dict[str, object], field: str) -> None:
    raw = {"base": "WETH", "quote": "USDC", "orderSize": "100", **change}
    with pytest.raises(InvalidStrategyParams, match=re.escape(field)):
        PriceBandModule.parse_params(raw)


def test_missing_param_is_named() -> None:
    with pytest.raises(InvalidStrategyParams, match=r"strategy\.orderSize: Field required"):
        PriceBandModule.parse_params({"base": "WETH", "quote": "USDC"})


def test_params_are_decimal() -> None:
    params = PriceBandModule.parse_params(
        {"base": "WETH", "quote": "USDC", "orderSize": "100.5", "bandPercent": 1.5}
    )
    assert isinstance(params, PriceBandParams)
    assert params.order_size == D("100.5") and params.band_percent == D("1.5")


def test_price_band_signals() -> None:
    # EMA period 3 (alpha 0.5), band 10 %; decisions use the EMA of earlier prices
    strategy = PriceBandStrategy(ema_period=3, band_percent=D(10), exit_at="mean")
    warmup = [strategy.on_price(D(100), holding=False) for _ in range(3)]
    assert warmup == [Signal.HOLD] * 3  # EMA 100
    assert strategy.on_price(D(95), holding=False) is Signal.HOLD  # above 90; EMA 97.5
    assert strategy.on_price(D(87), holding=False) is Signal.BUY  # <= 87.75; EMA 92.25
    assert strategy.on_price(D(90), holding=True) is Signal.HOLD  # < 92.25; EMA 91.125
    assert strategy.on_price(D(92), holding=True) is Signal.SELL  # back to the mean
