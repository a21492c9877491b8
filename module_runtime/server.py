"""The runtime's HTTP endpoints: what the operator probes and Prometheus scrapes.

- `/healthz`: 200 with JSON `{"status": "ok" | "halted" | "degraded", ...}` while the
  process can serve; a risk halt is *healthy but halted* so the operator never restarts
  a module for it. 503 only when the module loop has died.
- `/readyz`: 200 once the module has started.
- `/metrics`: Prometheus text format from the module's own registry.
- `/status`: the JSON metrics summary the operator copies into the resource status.
- `POST /control/portfolio-halt` `{"reason": R, "message": M}` (R null lifts it): the
  operator's portfolio halt, idempotent; answers the resulting `/healthz` body. The
  endpoint trusts the pod network (restrict it to the operator with a NetworkPolicy).
- `POST /control/pause` `{"paused": true|false}`: spec.paused applied without a restart
  (no new exposure while paused; reductions pass), idempotent; answers `/healthz`'s body.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class Observable(Protocol):
    """What the server needs from the running module."""

    registry: CollectorRegistry

    @property
    def ready(self) -> bool: ...

    @property
    def alive(self) -> bool: ...

    def health(self) -> dict[str, Any]: ...

    def summary(self) -> dict[str, Any]: ...

    def set_portfolio_halt(self, reason: str | None, message: str = "") -> None: ...

    def set_paused(self, paused: bool) -> None: ...


def build_app(target: Observable) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        body = {**target.health(), "metrics": target.summary()}
        return web.json_response(body, status=200 if target.alive else 503)

    async def readyz(_: web.Request) -> web.Response:
        ready = target.ready and target.alive
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(target.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def status(_: web.Request) -> web.Response:
        return web.json_response(target.summary())

    async def portfolio_halt(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            reason = body.get("reason")
            message = str(body.get("message") or "")
            if reason is not None and (not isinstance(reason, str) or not reason):
                raise ValueError("reason must be a non-empty string or null")
        except (ValueError, AttributeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        target.set_portfolio_halt(reason, message)
        return web.json_response(target.health())

    async def pause(request: web.Request) -> web.Response:
        try:
            paused = (await request.json()).get("paused")
            if not isinstance(paused, bool):
                raise ValueError("paused must be true or false")
        except (ValueError, AttributeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        target.set_paused(paused)
        return web.json_response(target.health())

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    app.router.add_post("/control/portfolio-halt", portfolio_halt)
    app.router.add_post("/control/pause", pause)
    return app


async def serve(target: Observable, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_app(target), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner
