"""kopf's connections to the API server, bounded.

kopf's own client opens a new TLS connection for every concurrent request and keeps it
(`aiohttp.TCPConnector(limit=0)`): at 1,000 modules its start-up burst of finalizer
patches left ~700 connections open, each with a 256 KiB asyncio SSL buffer plus OpenSSL's
native state, which was most of the operator's RSS, and the burst itself overloaded the
API server into timeouts (bench/fleet.py, P3/P4; kopf#1011). This login handler logs in
as kopf would (`login_via_client`: kubeconfig or in-cluster) and hands kopf a session
whose connector is bounded; requests beyond the bound wait for a free connection.

The bound leaves room for the long-lived watch streams, which each hold a connection:
pods and TradingModules per watched namespace (one pair cluster-wide), and the peering.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import kopf

# Set by the command line before kopf starts: how many namespaces are watched (1 for -A).
WATCHED_NAMESPACES = 1
WATCHES_PER_NAMESPACE = 3  # pods, TradingModules, and KopfPeerings when peering


def connection_limit(namespaces: int) -> int:
    """Connections for requests (TRADEPLANE_API_CONNECTIONS, default 16) + the watches."""
    requests = int(os.environ.get("TRADEPLANE_API_CONNECTIONS", "16"))
    return requests + WATCHES_PER_NAMESPACE * max(namespaces, 1)


@kopf.on.login()
async def bounded_login(**kwargs: Any) -> kopf.AiohttpSession | None:
    info = kopf.login_via_client(**kwargs)
    if info is None:
        return None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=connection_limit(WATCHED_NAMESPACES), ssl=info.as_ssl_context()
        ),
        headers=info.as_http_headers(),
        auth=info.as_aiohttp_basic_auth(),
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        aiohttp_session=session,
    )
