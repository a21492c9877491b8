"""Orders, fills and the broker seam shared by every module type.

Every order leaves a module through one path (`module_runtime.order_path`): risk checks,
then the ledger's intent, then a `Broker`, then the ledger's outcome, then metrics.
These types are that path's vocabulary. Money and quantities are `Decimal` throughout.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Market(StrEnum):
    """What an order trades: spot (the asset itself) or a perpetual future (a position
    with isolated margin, long or short; see module_runtime.futures)."""

    SPOT = "spot"
    PERP = "perp"


class OrderStatus(StrEnum):
    PENDING = "pending"  # intent recorded, not yet known to the venue
    SENT = "sent"  # handed to the venue (tx broadcast, order accepted)
    FILLED = "filled"
    REJECTED = "rejected"  # refused by our own risk checks
    REVERTED = "reverted"  # the venue refused it (tx reverted, order rejected)
    DROPPED = "dropped"  # never mined / lost; nothing happened
    CANCELLED = "cancelled"


def new_order_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Order:
    """What a strategy wants: buy or sell `quantity` of `base`, paid in `quote`.

    `price` is the expected price in quote per base (the quote the strategy saw);
    `notional` = quantity x price is what the risk checks size against.
    `min_out` bounds slippage: the least the order may return (base for a buy, quote for
    a sell); the venue must refuse the order below it.
    `market` PERP: a buy opens or grows a long (or reduces a short), a sell opens or grows
    a short (or reduces a long); `leverage` sets the isolated margin, notional / leverage.
    """

    venue: str
    side: Side
    base: str
    quote: str
    quantity: Decimal
    price: Decimal
    leverage: Decimal = Decimal(1)
    min_out: Decimal | None = None
    reduces_position: bool = False
    order_id: str = field(default_factory=new_order_id)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    market: Market = Market.SPOT

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price


@dataclass(frozen=True, slots=True)
class Fill:
    """What actually happened at the venue."""

    order_id: str
    status: OrderStatus
    quantity: Decimal = Decimal(0)  # base filled
    price: Decimal = Decimal(0)  # average quote per base
    fee: Decimal = Decimal(0)  # in quote units
    tx_hash: str | None = None
    reason: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Network (gas) fee, in the chain's native coin (e.g. ETH), not in quote units: on chain
    # it is paid even by a reverted order. Zero for venues without gas.
    gas_fee: Decimal = Decimal(0)

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price


class Broker(Protocol):
    """A venue adapter: paper (simulated fills), web3 (on chain) or an exchange."""

    name: str

    async def execute(self, order: Order) -> Fill:
        """Send the order and return its final outcome. Never raises for a venue refusal:
        that is a Fill with status REVERTED or DROPPED and a reason."""
        ...
