"""Status conditions per the Kubernetes API conventions.

A condition's `lastTransitionTime` changes only when its status flips, so that writing
the same observation twice writes nothing new.
"""

from __future__ import annotations

from datetime import datetime

from .api.models import Condition

READY = "Ready"
HEALTHY = "Healthy"
RISK_HALTED = "RiskHalted"


def timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[Condition],
    *,
    type: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Return `conditions` with `type` set; other conditions are kept as they are."""
    value = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c.type == type), None)
    since = (
        previous.last_transition_time
        if previous is not None and previous.status == value
        else timestamp(now)
    )
    updated = Condition(
        type=type,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return (
        [updated if c.type == type else c for c in conditions]
        if previous
        else [
            *conditions,
            updated,
        ]
    )


def get(conditions: list[Condition], type: str) -> Condition | None:
    return next((c for c in conditions if c.type == type), None)
