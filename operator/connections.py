"""kopf's connections to the API server, bounded.

kopf's own client opens a new TLS connection for every concurrent request and keeps it
(`aiohttp.TCPConnector(limit=0)`): at 1,000 modules its start-up burst of finalizer
patches left ~700 connections open, each with a 256 KiB asyncio SSL buffer plus OpenSSL's
native state, which was most of the operator's RSS, and the burst itself overloaded the
API server into timeouts (bench/fleet.py, P3/P4; kopf#1011). This login handler logs in
as kopf would (`login_via_client`: kubeconfig or in-cluster) and hands kopf a session
whose connector is bounded; requests beyond the bound wait for a free connection.

Watch streams each hold a connection for as long as the watch lasts, and with a
namespace pattern (`--namespace 't-*'`) their number grows with the namespaces that
match: counted against the bound they would starve every request (the operator then
stalls for good). So they get a pool of their own, unbounded, and the bound is for
requests alone.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import kopf
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace


def request_connections() -> int:
    """Connections for requests: TRADEPLANE_API_CONNECTIONS, default 16."""
    return int(os.environ.get("TRADEPLANE_API_CONNECTIONS", "16"))


def is_watch(request: ClientRequest) -> bool:
    return request.url.query.get("watch") in ("true", "1")


class RequestBoundConnector(aiohttp.TCPConnector):
    """A bounded pool for requests; watch streams go through an unbounded one."""

    def __init__(self, *, limit: int, ssl: Any) -> None:
        super().__init__(limit=limit, ssl=ssl)
        self._streams = aiohttp.TCPConnector(limit=0, ssl=ssl)

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109  (aiohttp's signature)
    ) -> Connection:
        if is_watch(req):
            return await self._streams.connect(req, traces, timeout)
        return await super().connect(req, traces, timeout)

    async def close(self, *, abort_ssl: bool = False) -> None:
        await self._streams.close(abort_ssl=abort_ssl)
        await super().close(abort_ssl=abort_ssl)


@kopf.on.login()
async def bounded_login(**kwargs: Any) -> kopf.AiohttpSession | None:
    info = kopf.login_via_client(**kwargs)
    if info is None:
        return None
    session = aiohttp.ClientSession(
        connector=RequestBoundConnector(limit=request_connections(), ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        auth=info.as_aiohttp_basic_auth(),
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        aiohttp_session=session,
    )
