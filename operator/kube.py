"""The operator's own API calls, made through kopf's client.

kopf already holds an authenticated aiohttp session for its watches and patches (the
bounded one from connections.py). These calls share it, and with it kopf's handling of
the API server: a new login on 401, backoff on 429 and 5xx (Retry-After obeyed), and the
request timeout from kopf's settings. So the operator has one HTTP stack on its event
loop (invariant 6: nothing waits on a socket synchronously), no worker threads, and it
never imports the `kubernetes` package, whose ~700 model classes cost ~15 MiB of RSS
(bench/fleet.py, P3; see kopf_loader.py).

`kopf._cogs.clients.api.request` is kopf's internal request function; kopf is pinned in
pyproject.toml and every cluster test goes through these calls. Bodies stay plain
camelCase dicts, the shape kopf hands the handlers too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import kopf
from kopf._cogs.clients import api, errors

from .api import models

log = logging.getLogger(__name__)

Manifest = dict[str, Any]
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
# Admission reads must answer within the webhook's timeout (10 s): a short retry, not
# kopf's default backoff of ~54 s in all.
ADMISSION_BACKOFFS = (0.2, 0.5, 1.0)

NotFound = errors.APINotFoundError
Conflict = errors.APIConflictError


def _namespaced(namespace: str, plural: str, name: str = "", *, group: str = "") -> str:
    root = f"/apis/{group}/{models.VERSION}" if group else "/api/v1"
    url = f"{root}/namespaces/{quote(namespace)}/{plural}"
    return f"{url}/{quote(name)}" if name else url


def _custom(namespace: str, plural: str, name: str = "") -> str:
    return _namespaced(namespace, plural, name, group=models.GROUP)


class Kube:
    def __init__(self, settings: kopf.OperatorSettings) -> None:
        self._settings = settings  # kopf's, as the startup handlers leave them

    def _timeout(self) -> aiohttp.ClientTimeout:
        """Limits on the connection and the answer, not on the whole call: a call first
        waits its turn for one of the bounded connections, and at a cold start with
        1,000 modules that queue is longer than any answer (bench/fleet.py, P4)."""
        networking = self._settings.networking
        return aiohttp.ClientTimeout(
            total=None,
            sock_connect=networking.connect_timeout,
            sock_read=networking.request_timeout,
        )

    async def _call(
        self,
        method: str,
        url: str,
        payload: object | None = None,
        *,
        headers: dict[str, str] | None = None,
        backoffs: Iterable[float] | None = None,
    ) -> Any:
        response = await api.request(
            method,
            url,
            payload=payload,
            headers=headers,
            timeout=self._timeout(),
            backoffs=backoffs,
            settings=self._settings,
            logger=log,
        )
        async with response:
            return await response.json()

    # -- pods -----------------------------------------------------------------------

    async def list_pods(self, namespace: str, selector: dict[str, str]) -> list[Manifest]:
        text = ",".join(f"{k}={v}" for k, v in selector.items())
        url = _namespaced(namespace, "pods") + "?" + urlencode({"labelSelector": text})
        body = await self._call("get", url)
        return list(body.get("items") or [])

    async def create_pod(self, manifest: Manifest) -> Manifest | None:
        """Create the pod; None if a pod of that name exists (never a second one)."""
        try:
            created: Manifest = await self._call(
                "post", _namespaced(manifest["metadata"]["namespace"], "pods"), manifest
            )
        except Conflict:
            return None
        return created

    async def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """Graceful delete of exactly that pod (UID precondition); gone is fine."""
        options = {"preconditions": {"uid": uid}}
        with contextlib.suppress(NotFound, Conflict):
            await self._call("delete", _namespaced(namespace, "pods", name), options)

    # -- config maps ----------------------------------------------------------------

    async def apply_config_map(self, manifest: Manifest) -> None:
        """Create the config map, or else patch its data (a patch that changes nothing
        writes nothing). Create first: the common case costs one call."""
        if await self.create_config_map(manifest):
            return
        meta = manifest["metadata"]
        url = _namespaced(meta["namespace"], "configmaps", meta["name"])
        await self._call("patch", url, {"data": manifest["data"]}, headers=MERGE_PATCH)

    async def create_config_map(self, manifest: Manifest) -> bool:
        """Create a config map; False if one of that name exists."""
        try:
            await self._call(
                "post", _namespaced(manifest["metadata"]["namespace"], "configmaps"), manifest
            )
        except Conflict:
            return False
        return True

    async def delete_config_map(self, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            await self._call("delete", _namespaced(namespace, "configmaps", name))

    # -- Tradeplane's own objects ------------------------------------------------------

    async def list_objects(self, namespace: str, plural: str) -> list[Manifest]:
        """A fresh (consistent) list, not a cache: admission decides on it."""
        body = await self._call("get", _custom(namespace, plural), backoffs=ADMISSION_BACKOFFS)
        return list(body.get("items") or [])

    async def remove_annotation(
        self, namespace: str, name: str, key: str, *, plural: str = models.PLURAL
    ) -> None:
        patch = {"metadata": {"annotations": {key: None}}}
        await self._call("patch", _custom(namespace, plural, name), patch, headers=MERGE_PATCH)

    async def patch_spec(self, namespace: str, name: str, spec: Manifest) -> None:
        """A merge patch of the spec (a promotion changes spec.mode)."""
        url = _custom(namespace, models.PLURAL, name)
        await self._call("patch", url, {"spec": spec}, headers=MERGE_PATCH)

    async def patch_status(
        self, namespace: str, name: str, status: Manifest, *, plural: str = models.PLURAL
    ) -> str:
        """The merge patch; returns the resourceVersion it made."""
        url = _custom(namespace, plural, name) + "/status"
        body = await self._call("patch", url, {"status": status}, headers=MERGE_PATCH)
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    # -- the admission webhook's registration ------------------------------------------

    async def apply_webhook_configuration(self, manifest: Manifest) -> None:
        """Create the ValidatingWebhookConfiguration, or replace its webhooks."""
        try:
            await self._call("post", WEBHOOKS, manifest)
        except Conflict:
            url = f"{WEBHOOKS}/{quote(manifest['metadata']['name'])}"
            await self._call("patch", url, {"webhooks": manifest["webhooks"]}, headers=MERGE_PATCH)
