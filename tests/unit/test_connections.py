"""The operator's API connections: requests are bounded, watch streams are not counted
against the bound (with a namespace pattern their number grows with the namespaces);
the login reads plain kubeconfigs without the `kubernetes` package."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import kopf
import pytest
import yaml
from aiohttp import web

from tradeplane_operator.connections import RequestBoundConnector, in_cluster, plain_kubeconfig


async def test_open_watches_leave_the_request_pool_free() -> None:
    release = asyncio.Event()
    concurrent = 0
    peak = 0

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal concurrent, peak
        if request.query.get("watch") == "true":  # a watch: holds its connection open
            stream = web.StreamResponse()
            await stream.prepare(request)
            await stream.write(b'{"type":"ADDED"}\n')
            await release.wait()
            return stream
        concurrent += 1
        peak = max(peak, concurrent)
        await asyncio.sleep(0.05)
        concurrent -= 1
        return web.json_response({"kind": "Pod"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    connector = RequestBoundConnector(limit=2, ssl=False)
    try:
        # With watches counted against the bound, the third watch would wait forever.
        async with asyncio.timeout(10), aiohttp.ClientSession(connector=connector) as session:
            watches = [
                await session.get(f"{base}/api/v1/namespaces/t-{i}/pods", params={"watch": "true"})
                for i in range(5)  # more watches than the bound
            ]
            for watch in watches:
                assert await watch.content.readline() == b'{"type":"ADDED"}\n'

            async def get(i: int) -> str:
                async with session.get(f"{base}/api/v1/pods/{i}") as answer:
                    return str((await answer.json())["kind"])

            kinds = await asyncio.gather(*(get(i) for i in range(8)))
            assert kinds == ["Pod"] * 8
            assert peak <= 2  # requests beyond the bound waited for a free connection
            release.set()
            for watch in watches:
                watch.release()
    finally:
        release.set()
        await runner.cleanup()
    assert connector.closed


def kubeconfig(tmp_path: Path, user: Mapping[str, object], cluster: Mapping[str, object]) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [
                    {"name": "k", "cluster": {"server": "https://127.0.0.1:1", **cluster}}
                ],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def test_static_credentials_are_read_without_the_client_library(tmp_path: Path) -> None:
    certs = {"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5"}
    assert plain_kubeconfig([kubeconfig(tmp_path, certs, {"certificate-authority-data": "Y2E="})])
    assert plain_kubeconfig(
        [kubeconfig(tmp_path, {"token": "t"}, {"insecure-skip-tls-verify": True})]
    )
    absolute = {
        "client-certificate": str(tmp_path / "c.crt"),
        "client-key": str(tmp_path / "c.key"),
    }
    assert plain_kubeconfig([kubeconfig(tmp_path, absolute, {})])


def test_kubeconfigs_kopf_cannot_read_go_to_the_client_library(tmp_path: Path) -> None:
    exec_plugin = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws"}}
    assert not plain_kubeconfig([kubeconfig(tmp_path, exec_plugin, {})])
    provider = {"auth-provider": {"name": "oidc", "config": {}}}
    assert not plain_kubeconfig([kubeconfig(tmp_path, provider, {})])
    relative = {"client-certificate": "c.crt", "client-key": "c.key"}  # relative to the file
    assert not plain_kubeconfig([kubeconfig(tmp_path, relative, {})])
    assert not plain_kubeconfig(
        [kubeconfig(tmp_path, {"token": "t"}, {"certificate-authority": "ca"})]
    )
    one = kubeconfig(tmp_path, {"token": "t"}, {})
    assert not plain_kubeconfig([one, one])  # merged files: kopf reads no merge
    assert not plain_kubeconfig([tmp_path / "absent"])


def test_in_cluster_the_server_comes_from_the_pod_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = kopf.ConnectionInfo(server="https://kubernetes.default.svc", token="t")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    assert in_cluster(info).server == "https://10.96.0.1:6443"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert in_cluster(info).server == "https://[fd00::1]:6443"
    assert in_cluster(info).token == "t"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert in_cluster(info) == info


def test_the_operator_process_never_imports_the_kubernetes_package() -> None:
    """What `tradeplane-operator` loads (cli.main): kopf through the loader, then every
    module that registers handlers. The client library is importable again afterwards."""
    script = """
import sys
from collections.abc import Mapping
from tradeplane_operator import kopf_loader
kopf_loader.import_kopf()
from tradeplane_operator import connections, handlers, portfolio_handlers, webhook
loaded = sorted(m for m in sys.modules if m.split(".")[0] in kopf_loader.CLIENT_LIBRARIES)
print(loaded)
import kubernetes.config
"""
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
