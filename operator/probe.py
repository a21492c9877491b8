"""Probing a runtime's /healthz from the operator's event loop (aiohttp, never blocking).

Each failure has a cause of its own (timeout, refused, http_<status>, bad_body) so the
operator's metrics say *why* modules are unhealthy, not only that they are.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiohttp
from pydantic import ValidationError

from .api.models import MetricsSummary
from .decisions import Probe

_HEALTHY = {"ok", "degraded", "halted"}


async def probe_runtime(
    session: aiohttp.ClientSession, url: str, limit: float, *, now: datetime | None = None
) -> Probe:
    at = now or datetime.now(UTC)
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=limit)) as answer:
            if not 200 <= answer.status < 300:
                return Probe(cause=f"http_{answer.status}", at=at)
            text = await answer.text()
    except TimeoutError:
        return Probe(cause="timeout", at=at)
    except aiohttp.ClientConnectorError:
        return Probe(cause="refused", at=at)
    except (aiohttp.ClientError, asyncio.CancelledError) as error:
        if isinstance(error, asyncio.CancelledError):
            raise
        return Probe(cause="refused", at=at)
    return parse_health(text, at)


async def post_control(
    session: aiohttp.ClientSession, url: str, body: dict[str, object], limit: float
) -> dict[str, object] | None:
    """POST to one of the runtime's /control endpoints; its /healthz body, or None when
    it did not answer 200 with JSON (the caller says it again on its next pass)."""
    try:
        async with session.post(
            url, json=body, timeout=aiohttp.ClientTimeout(total=limit)
        ) as answer:
            if answer.status != 200:
                return None
            result = await answer.json()
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None
    return result if isinstance(result, dict) else None


_SUMMARY_KEYS = {f.alias or n for n, f in MetricsSummary.model_fields.items()}


def _summary(metrics: dict[str, object]) -> MetricsSummary:
    """Known keys only: a newer runtime may report more than this operator knows."""
    return MetricsSummary.model_validate({k: v for k, v in metrics.items() if k in _SUMMARY_KEYS})


def parse_health(text: str, at: datetime) -> Probe:
    """The runtime's JSON: {"status": ok|degraded|halted, "halt": {...}, "metrics": {...}}."""
    try:
        body = json.loads(text)
        status = body["status"]
        if status not in _HEALTHY:
            return Probe(cause="bad_body", at=at)
        metrics = body.get("metrics")
        summary = _summary(metrics) if metrics is not None else None
        halt = body.get("halt") or {}
        portfolio_halt = (body.get("portfolioHalt") or {}).get("reason")
        paused = body.get("paused")
    except (ValueError, KeyError, TypeError, ValidationError):
        return Probe(cause="bad_body", at=at)
    return Probe(
        cause=status,
        at=at,
        halt_reason=halt.get("reason") if status == "halted" else None,
        halt_message=str(halt.get("message") or "") if status == "halted" else "",
        metrics=summary,
        portfolio_halt=str(portfolio_halt) if portfolio_halt else None,
        paused=paused if isinstance(paused, bool) else None,
    )
