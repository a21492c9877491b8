"""Funding payments and liquidations: ledger entries that are not orders.

A perpetual position changes without an order of ours twice: at every funding time
(it pays or receives `quantity x mark x rate`) and when the venue liquidates it. Both are
recorded in the ledger as entries of their own, beside the fills, each under an
idempotency key (`event_id`) that the venue's own record gives (the funding time, the
exchange's transaction id), so seeing the same event twice books it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal(0)


class EventKind(StrEnum):
    FUNDING = "funding"
    LIQUIDATION = "liquidation"


@dataclass(frozen=True, slots=True)
class PositionEvent:
    """`amount`: funding received (negative: paid), quote units; for a liquidation the
    ledger's book computes the loss (the margin) and `amount` is that loss, negative.
    `price`: the mark at funding, the liquidation price at a liquidation."""

    event_id: str
    kind: EventKind
    base: str
    quote: str
    price: Decimal
    amount: Decimal = ZERO
    rate: Decimal = ZERO
    quantity: Decimal = ZERO
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def key(self) -> tuple[str, str]:
        return (self.base, self.quote)


def funding_id(base: str, quote: str, at: datetime) -> str:
    """One funding payment per pair and funding time."""
    return f"funding:{base}/{quote}:{int(at.timestamp())}"


def liquidation_id(base: str, quote: str, opened_at: datetime | None, at: datetime) -> str:
    """One liquidation per position (identified by when it was opened)."""
    opened = int(opened_at.timestamp() * 1000) if opened_at else 0
    return f"liquidation:{base}/{quote}:{opened}:{int(at.timestamp())}"
