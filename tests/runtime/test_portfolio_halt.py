"""The runtime's side of a portfolio halt: no new exposure, reductions allowed, and the
control endpoint the operator calls (a real aiohttp server on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal

import aiohttp
from aiohttp import web

from module_runtime.clock import ManualClock
from module_runtime.host import ModuleHost
from module_runtime.market_data import PriceSeries
from module_runtime.positions import Position
from module_runtime.risk import HaltInfo, RejectReason, RiskState, check
from module_runtime.server import build_app
from tradeplane_operator.probe import parse_health

from .conftest import T0, buy, make_limits, make_spec, sell

D = Decimal
ETH = ("WETH", "USDC")


def test_portfolio_halt_refuses_new_exposure_and_allows_reductions() -> None:
    limits = make_limits()
    s = RiskState.initial(limits, T0)
    s.positions = {ETH: Position("WETH", "USDC", D(1), D(1000))}
    s.portfolio_halt = HaltInfo("KillSwitch", "", T0)
    opening = check(buy("0.1", "1000"), s, limits)
    assert not opening.accepted and opening.reason is RejectReason.PORTFOLIO_HALTED
    assert check(sell("1", "900", reduces_position=True), s, limits).accepted
    s.portfolio_halt = None
    assert check(buy("0.1", "1000"), s, limits).accepted


def host(clock: ManualClock, **options: object) -> ModuleHost:
    series = PriceSeries(clock, {ETH: [D(100)] * 5}, interval=timedelta(seconds=60))
    return ModuleHost(make_spec(), name="m", namespace="ns", market=series, clock=clock, **options)  # type: ignore[arg-type]


@asynccontextmanager
async def served(h: ModuleHost) -> AsyncIterator[str]:
    """The runtime's real HTTP app for `h` on a free loopback port: its base URL."""
    runner = web.AppRunner(build_app(h))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_a_pod_created_under_a_halt_starts_halted(clock: ManualClock) -> None:
    h = host(clock, portfolio_halt="MaxDailyLoss")
    body = h.health()
    assert body["portfolioHalt"]["reason"] == "MaxDailyLoss"
    assert body["status"] == "ok"  # not a risk halt: the operator must not record one
    assert host(clock).health()["portfolioHalt"] is None


async def test_control_endpoint_halts_and_lifts_idempotently(clock: ManualClock) -> None:
    h = host(clock)
    async with served(h) as base, aiohttp.ClientSession() as session:
        url = f"{base}/control/portfolio-halt"
        for _ in range(2):  # the operator repeats itself; the runtime does not mind
            async with session.post(url, json={"reason": "KillSwitch"}) as answer:
                assert answer.status == 200
                assert (await answer.json())["portfolioHalt"]["reason"] == "KillSwitch"
        assert h.order_path.state.portfolio_halt is not None
        async with session.post(url, json={"reason": None}) as answer:
            assert (await answer.json())["portfolioHalt"] is None
        async with session.post(url, json={"reason": 5}) as answer:
            assert answer.status == 400
    assert h.order_path.state.portfolio_halt is None


async def test_pause_endpoint_pauses_and_resumes_without_a_restart(clock: ManualClock) -> None:
    h = host(clock)
    async with served(h) as base, aiohttp.ClientSession() as session:
        url = f"{base}/control/pause"
        for _ in range(2):
            async with session.post(url, json={"paused": True}) as answer:
                assert answer.status == 200 and (await answer.json())["paused"] is True
        async with session.get(f"{base}/healthz") as answer:
            # What the operator reads from the probe, as its probe reads it.
            assert parse_health(await answer.text(), T0).paused is True
        assert h.order_path.paused and not h.module.can_open
        async with session.post(url, json={"paused": False}) as answer:
            assert (await answer.json())["paused"] is False
        async with session.post(url, json={"paused": "yes"}) as answer:
            assert answer.status == 400
    assert not h.order_path.paused and h.module.can_open
