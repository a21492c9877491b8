"""kopf's connections to the API server, bounded.

kopf's own client opens a new TLS connection for every concurrent request and keeps it
(`aiohttp.TCPConnector(limit=0)`): at 1,000 modules its start-up burst of finalizer
patches left ~700 connections open, each with a 256 KiB asyncio SSL buffer plus OpenSSL's
native state, which was most of the operator's RSS, and the burst itself overloaded the
API server into timeouts (bench/fleet.py, P3/P4; kopf#1011). This login handler hands
kopf a session whose connector is bounded; requests beyond the bound wait for a free
connection. The operator's own calls (kube.py) go through the same session.

It logs in with kopf's plain readers of the service account and of the kubeconfig, so
the `kubernetes` package is never imported (kopf_loader.py); only a kubeconfig whose
user needs more (an exec plugin, an auth provider, relative paths) is handed to the
official client's loader, as kopf's own default login would.

Watch streams each hold a connection for as long as the watch lasts, and with a
namespace pattern (`--namespace 't-*'`) their number grows with the namespaces that
match: counted against the bound they would starve every request (the operator then
stalls for good). So they get a pool of their own, unbounded, and the bound is for
requests alone.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import yaml
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

# The user fields kopf's own kubeconfig reader understands; anything else needs the
# official client's loader.
PLAIN_USER_FIELDS = frozenset(
    {
        "client-certificate",
        "client-certificate-data",
        "client-key",
        "client-key-data",
        "token",
        "username",
        "password",
    }
)
PATH_FIELDS = ("certificate-authority", "client-certificate", "client-key")


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


def kubeconfig_paths() -> list[Path]:
    listed = os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [Path(p).expanduser() for p in listed.split(os.pathsep) if p.strip()]


def _named(config: dict[str, Any], section: str, name: object) -> dict[str, Any] | None:
    """`contexts`, `clusters` or `users`: the entry of that name, as kubeconfig lists them."""
    entry = section[:-1]  # "contexts" -> "context"
    found = (i.get(entry) or {} for i in config.get(section) or [] if i.get("name") == name)
    return next(found, None)


def plain_kubeconfig(paths: list[Path]) -> bool:
    """True when kopf's own reader can log in with this kubeconfig: one file (kopf reads
    no merged contexts), a user with static credentials, and absolute paths."""
    if len(paths) != 1 or not paths[0].is_file():
        return False
    config = yaml.safe_load(paths[0].read_text()) or {}
    context = _named(config, "contexts", config.get("current-context"))
    if context is None:
        return False
    cluster = _named(config, "clusters", context.get("cluster")) or {}
    user = _named(config, "users", context.get("user")) or {}
    if not set(user) <= PLAIN_USER_FIELDS:
        return False
    files = [str(f[k]) for f in (cluster, user) for k in PATH_FIELDS if f.get(k)]
    return all(Path(name).is_absolute() for name in files)


def in_cluster(info: kopf.ConnectionInfo) -> kopf.ConnectionInfo:
    """The API server's address from the pod's environment, as the official client
    takes it (kopf's reader assumes cluster DNS for kubernetes.default.svc)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        return info
    host = f"[{host}]" if ":" in host else host
    return dataclasses.replace(info, server=f"https://{host}:{port}")


def connection_info(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster credentials, else the kubeconfig's (see the module's docstring)."""
    if (info := kopf.login_with_service_account(**kwargs)) is not None:
        return in_cluster(info)
    if plain_kubeconfig(kubeconfig_paths()):
        return kopf.login_with_kubeconfig(**kwargs)
    return kopf.login_via_client(**kwargs)


@kopf.on.login()
async def bounded_login(**kwargs: Any) -> kopf.AiohttpSession | None:
    info = connection_info(**kwargs)
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
