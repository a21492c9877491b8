"""Small helpers over the kubernetes client.

Pods, Secrets and ConfigMaps are handled as the raw JSON dicts the API server sends
(camelCase, as in the Kubernetes docs) rather than as client models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


def core_api(kubeconfig: str) -> client.CoreV1Api:
    """A CoreV1Api of its own (ApiClient per caller: no shared default configuration)."""
    api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return client.CoreV1Api(api_client)


def raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> JSON:
    """Call an API method and return the response body as a JSON dict."""
    resp = call(*args, _preload_content=False, **kwargs)
    body: JSON = json.loads(resp.data)
    return body


def now() -> str:
    """An RFC 3339 timestamp with second precision, as Kubernetes stores them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an ApiException, None for anything else."""
    return exc.status if isinstance(exc, ApiException) else None


def pod_key(pod: JSON) -> str:
    meta = pod["metadata"]
    return f"{meta['namespace']}/{meta['name']}"
