"""The operator's writes to the API server, off the event loop.

The official `kubernetes` client is synchronous, so every call runs in a worker thread
(`asyncio.to_thread`): kopf's event loop never waits on a socket (invariant 6). Responses
are read raw (`_preload_content=False`) so they stay plain camelCase dicts, the shape
kopf hands the handlers too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .api import models

log = logging.getLogger(__name__)
T = TypeVar("T")

Manifest = dict[str, Any]
# Concurrent API calls: worker threads, and as many pooled HTTPS connections (urllib3's
# default of 4 makes every further concurrent call a fresh TLS handshake). The loop's
# default executor has only cpu+4 threads and is shared with everything else; at 1,000
# modules calls queued there for seconds (bench/fleet.py).
API_CONCURRENCY = 16


def load_config() -> client.ApiClient:
    """In-cluster when running in a pod, else the current kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = API_CONCURRENCY
    return client.ApiClient(configuration)


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._threads = ThreadPoolExecutor(API_CONCURRENCY, thread_name_prefix="kube")

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, lambda: fn(*args, **kwargs)
        )

    async def _json(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        response = await self._call(fn, *args, _preload_content=False, **kwargs)
        return json.loads(response.data)

    # -- pods -----------------------------------------------------------------------

    async def list_pods(self, namespace: str, selector: dict[str, str]) -> list[Manifest]:
        text = ",".join(f"{k}={v}" for k, v in selector.items())
        body = await self._json(self._core.list_namespaced_pod, namespace, label_selector=text)
        return list(body.get("items") or [])

    async def create_pod(self, manifest: Manifest) -> Manifest | None:
        """Create the pod; None if a pod of that name exists (never a second one)."""
        try:
            created: Manifest = await self._json(
                self._core.create_namespaced_pod, manifest["metadata"]["namespace"], manifest
            )
        except ApiException as error:
            if error.status == 409:
                return None
            raise
        return created

    async def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """Graceful delete of exactly that pod (UID precondition); gone is fine."""
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            await self._call(self._core.delete_namespaced_pod, name, namespace, body=options)
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    # -- config maps ----------------------------------------------------------------

    async def apply_config_map(self, manifest: Manifest) -> None:
        """Create the config map, or else patch its data (a patch that changes nothing
        writes nothing). Create first: the common case costs one call."""
        meta = manifest["metadata"]
        try:
            await self._call(
                self._core.create_namespaced_config_map,
                meta["namespace"],
                manifest,
                _preload_content=False,
            )
            return
        except ApiException as error:
            if error.status != 409:
                raise
        await self._call(
            self._core.patch_namespaced_config_map,
            meta["name"],
            meta["namespace"],
            {"data": manifest["data"]},
            _preload_content=False,
        )

    async def create_config_map(self, manifest: Manifest) -> bool:
        """Create an immutable config map; False if it exists (same name, same content)."""
        try:
            await self._call(
                self._core.create_namespaced_config_map,
                manifest["metadata"]["namespace"],
                manifest,
                _preload_content=False,
            )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    async def delete_config_map(self, namespace: str, name: str) -> None:
        try:
            await self._call(self._core.delete_namespaced_config_map, name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    # -- the TradingModule's status ---------------------------------------------------

    async def remove_annotation(self, namespace: str, name: str, key: str) -> None:
        await self._patch_module(namespace, name, {"metadata": {"annotations": {key: None}}})

    async def patch_spec(self, namespace: str, name: str, spec: Manifest) -> None:
        """A merge patch of the spec (a promotion changes spec.mode)."""
        await self._patch_module(namespace, name, {"spec": spec})

    async def _patch_module(self, namespace: str, name: str, patch: Manifest) -> None:
        await self._call(
            self._custom.patch_namespaced_custom_object,
            models.GROUP,
            models.VERSION,
            namespace,
            models.PLURAL,
            name,
            patch,
        )

    async def patch_status(self, namespace: str, name: str, status: Manifest) -> None:
        await self._call(
            self._custom.patch_namespaced_custom_object_status,
            models.GROUP,
            models.VERSION,
            namespace,
            models.PLURAL,
            name,
            {"status": status},
        )
