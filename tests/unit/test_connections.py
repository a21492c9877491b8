"""The operator's API connections: requests are bounded, watch streams are not counted
against the bound (with a namespace pattern their number grows with the namespaces)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from tradeplane_operator.connections import RequestBoundConnector


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
