"""A bare pod-status writer: pods Running and Ready without any runtime process.

    python -m tests.pod_status_writer KUBECONFIG NAMESPACE IP PORT

Instead of the kubelet stand-in (which starts a runtime process per pod), this marks
every new pod of NAMESPACE Running and Ready with pod IP `IP`, once, and serves one tiny
shared `/healthz` on IP:PORT that answers for all of them. So the operator's probes are
cheap and what the benchmark measures is the operator, not 1,000 runtimes on two cores.

The health body changes on every answer (the trade count goes up), as a trading
module's PnL does: the operator's status-write pacing is exercised, not bypassed.
A stand-in (under tests/, never shipped) for the fleet benchmark and the control-plane
fault test. It is no kubelet: pods are never stopped, and deleted pods simply go away
(they are bound to no node).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from kubernetes import client, config, watch

log = logging.getLogger("tests.pod_status_writer")
MERGE_PATCH = "application/merge-patch+json"


def running_status(ip: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = {"status": "True", "lastTransitionTime": now}
    return {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": ip,
            "startTime": now,
            "conditions": [
                {"type": t, **ready}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
        }
    }


def mark_pods(kubeconfig: str, namespace: str, ip: str) -> None:
    """Watch the namespace; patch each pod that is not yet Running (a pool of 4 writers)."""
    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    api.configuration.connection_pool_maxsize = 8
    core = client.CoreV1Api(api)
    pool = ThreadPoolExecutor(4)
    done: set[str] = set()

    def patch(name: str) -> None:
        try:
            core.patch_namespaced_pod_status(
                name,
                namespace,
                running_status(ip),
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
        except Exception as error:  # a deleted pod is fine; others are logged
            log.warning("status of %s: %s", name, error)

    version = ""
    while True:
        try:
            # Plain dicts (deserialize=False): the client's models cost ~ms per event, on
            # the two cores the operator under test needs.
            for event in watch.Watch().stream(
                core.list_namespaced_pod,
                namespace,
                resource_version=version,
                timeout_seconds=300,
                deserialize=False,
            ):
                meta = event["object"]["metadata"]
                version = meta["resourceVersion"]
                if event["type"] == "DELETED":
                    done.discard(meta["uid"])
                    continue
                if meta["uid"] in done or meta.get("deletionTimestamp") is not None:
                    continue
                done.add(meta["uid"])
                if (event["object"].get("status") or {}).get("phase") != "Running":
                    pool.submit(patch, meta["name"])
        except Exception as error:
            log.warning("watch: %s; again", error)
            version = ""


async def serve_health(ip: str, port: int) -> None:
    count = itertools.count()

    async def healthz(_: web.Request) -> web.Response:
        trades = next(count)
        body = {
            "status": "ok",
            "metrics": {
                "trades": trades,
                "realizedPnl": str(trades % 97),
                "unrealizedPnl": "0",
                "maxDrawdown": "0",
                "capitalInUse": "1000",
            },
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, ip, port, reuse_address=True).start()
    print(f"serving /healthz on {ip}:{port}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    kubeconfig, namespace, ip, port = argv
    logging.basicConfig(level=logging.WARNING)
    threading.Thread(target=mark_pods, args=(kubeconfig, namespace, ip), daemon=True).start()
    asyncio.run(serve_health(ip, int(port)))


if __name__ == "__main__":
    main(sys.argv[1:])
