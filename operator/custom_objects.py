"""Reads and writes of Tradeplane's custom objects for the portfolio code, off the loop.

Like `kube.Kube`: the official client in worker threads, raw JSON responses. Also the
ValidatingWebhookConfiguration, when the operator manages it (`--webhook-configuration`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .api import models

Manifest = dict[str, Any]


class CustomObjects:
    def __init__(self, api: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._admission = client.AdmissionregistrationV1Api(api)

    async def _json(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        response = await asyncio.to_thread(fn, *args, _preload_content=False, **kwargs)
        return json.loads(response.data)

    async def list(self, namespace: str, plural: str) -> list[Manifest]:
        """A fresh (consistent) list, not a cache: admission decides on it."""
        body = await self._json(
            self._custom.list_namespaced_custom_object,
            models.GROUP,
            models.VERSION,
            namespace,
            plural,
        )
        return list(body.get("items") or [])

    async def get(self, namespace: str, plural: str, name: str) -> Manifest | None:
        try:
            found: Manifest = await self._json(
                self._custom.get_namespaced_custom_object,
                models.GROUP,
                models.VERSION,
                namespace,
                plural,
                name,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    async def patch_status(self, namespace: str, plural: str, name: str, status: Manifest) -> None:
        await asyncio.to_thread(
            self._custom.patch_namespaced_custom_object_status,
            models.GROUP,
            models.VERSION,
            namespace,
            plural,
            name,
            {"status": status},
        )

    async def remove_annotation(self, namespace: str, plural: str, name: str, key: str) -> None:
        await asyncio.to_thread(
            self._custom.patch_namespaced_custom_object,
            models.GROUP,
            models.VERSION,
            namespace,
            plural,
            name,
            {"metadata": {"annotations": {key: None}}},
        )

    async def apply_webhook_configuration(self, manifest: Manifest) -> None:
        """Create the ValidatingWebhookConfiguration, or replace its webhooks."""
        name = manifest["metadata"]["name"]
        try:
            create: Callable[..., Any] = self._admission.create_validating_webhook_configuration
            await asyncio.to_thread(create, manifest)
        except ApiException as error:
            if error.status != 409:
                raise
            await asyncio.to_thread(
                self._admission.patch_validating_webhook_configuration,
                name,
                {"webhooks": manifest["webhooks"]},
            )
