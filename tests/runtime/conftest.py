"""Shared builders for the runtime tests: limits, specs, a manual clock, price feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from module_runtime.clock import ManualClock
from module_runtime.orders import Order, Side
from module_runtime.risk import RiskLimits
from tradeplane_operator.api.models import TradingModuleSpec

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
D = Decimal


def make_limits(**overrides: Any) -> RiskLimits:
    values: dict[str, Any] = {
        "allocation": D(10_000),
        "max_position_size": D(2_000),
        "max_daily_loss": D(500),
        "max_drawdown_percent": D(20),
        "stop_loss_percent": D(5),
        "max_open_positions": 2,
        "max_leverage": D(1),
    }
    values.update(overrides)
    return RiskLimits(**values)


def buy(quantity: str, price: str, base: str = "WETH", **kw: Any) -> Order:
    return Order("paper", Side.BUY, base, "USDC", D(quantity), D(price), **kw)


def sell(quantity: str, price: str, base: str = "WETH", **kw: Any) -> Order:
    return Order("paper", Side.SELL, base, "USDC", D(quantity), D(price), **kw)


def make_spec(**overrides: Any) -> TradingModuleSpec:
    doc: dict[str, Any] = {
        "type": "custom",
        "entryPoint": "price_band",
        "mode": "paper",
        "capital": {"allocation": "10000", "currency": "USDC"},
        "risk": {
            "maxPositionSize": "2000",
            "maxDailyLoss": "500",
            "maxDrawdownPercent": 20,
            "stopLossPercent": 5,
            "maxOpenPositions": 1,
        },
        "strategy": {
            "base": "WETH",
            "quote": "USDC",
            "orderSize": "1000",
            "emaPeriod": 3,
            "bandPercent": 2,
            "tickSeconds": 60,
        },
    }
    doc.update(overrides)
    return TradingModuleSpec.model_validate(doc)


class MutablePrice:
    """A price feed a test moves by hand (an async callable, like a real feed)."""

    def __init__(self, price: str | Decimal) -> None:
        self.value = D(price)

    async def __call__(self, base: str, quote: str) -> Decimal:
        return self.value


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def price() -> MutablePrice:
    return MutablePrice("1000")
