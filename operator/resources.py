"""The objects the operator owns for a module: its config map and its runtime pod.

Pure functions from the resource to manifests. The pod's name is fixed per module, so
the API server itself refuses a second pod while the first (even a terminating one)
exists: invariant 1 does not rest on the operator's memory alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .api import models
from .settings import OperatorSettings

MANAGED_BY = "tradeplane-operator"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_MODULE = "tradeplane.io/module"
LABEL_MODULE_UID = "tradeplane.io/module-uid"
LABEL_COMPONENT = "app.kubernetes.io/component"
RUNTIME_CONFIG = "runtime-config"
ANNOTATION_CONFIG_HASH = "tradeplane.io/config-hash"
ANNOTATION_START_HALTED = "tradeplane.io/start-halted"

CONFIG_DIR = "/etc/tradeplane"
CONFIG_FILE = "module.json"
CONTAINER = "runtime"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
BACKTEST_DATA_DIR = "/etc/tradeplane-backtest"  # spec.backtest.configMap, mounted

# Spec fields that the operator acts on itself; changing them never replaces the pod.
OPERATOR_ONLY_FIELDS = {"enabled", "health", "dependsOn", "portfolio", "promotion"}
# Spec fields the runtime takes while it runs (POST /control/...): in its config, so a new
# pod starts with them, but not in the config hash, so changing them replaces no pod.
LIVE_FIELDS = {"paused"}

_MAX_NAME = 253


@dataclass(frozen=True)
class ModuleRef:
    """Identity of one TradingModule."""

    name: str
    namespace: str
    uid: str
    generation: int = 0


def _bounded(name: str, suffix: str, limit: int = _MAX_NAME) -> str:
    full = f"{name}-{suffix}"
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(suffix) - 10]}-{digest}-{suffix}"


def pod_name(module: ModuleRef) -> str:
    return _bounded(module.name, "runtime")


def config_map_selector(module: ModuleRef) -> dict[str, str]:
    """The module's runtime-config maps (not its backtest report)."""
    return {**selector(module), LABEL_COMPONENT: RUNTIME_CONFIG}


def label_value(text: str) -> str:
    """Label values are at most 63 characters."""
    if len(text) <= 63:
        return text
    return f"{text[:54]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def selector(module: ModuleRef) -> dict[str, str]:
    return {LABEL_MODULE_UID: module.uid}


def labels(module: ModuleRef) -> dict[str, str]:
    return {
        LABEL_NAME: "tradeplane-runtime",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_MODULE: label_value(module.name),
        LABEL_MODULE_UID: module.uid,
    }


def owner_reference(module: ModuleRef) -> dict[str, Any]:
    return {
        "apiVersion": f"{models.GROUP}/{models.VERSION}",
        "kind": models.KIND,
        "name": module.name,
        "uid": module.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def runtime_config(module: ModuleRef, spec: models.TradingModuleSpec) -> dict[str, Any]:
    """The document mounted into the pod: what the runtime needs and nothing else."""
    spec_doc = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    for key in OPERATOR_ONLY_FIELDS:
        spec_doc.pop(key, None)
    return {
        "apiVersion": f"{models.GROUP}/{models.VERSION}",
        "kind": models.KIND,
        "metadata": {"name": module.name, "namespace": module.namespace, "uid": module.uid},
        "spec": spec_doc,
    }


def image_for(spec: models.TradingModuleSpec, settings: OperatorSettings) -> str:
    if spec.image:
        return spec.image
    if spec.version:
        return f"{settings.runtime_image.rsplit(':', 1)[0]}:{spec.version}"
    return settings.runtime_image


def config_hash(
    module: ModuleRef, spec: models.TradingModuleSpec, settings: OperatorSettings
) -> str:
    """Everything that, when it changes, needs a new pod. A recorded risk halt is not
    part of it: a pod that halts must not be replaced for having halted."""
    config = runtime_config(module, spec)
    config["spec"] = {k: v for k, v in config["spec"].items() if k not in LIVE_FIELDS}
    material = {
        "config": config,
        "image": image_for(spec, settings),
        "resources": spec.resources.model_dump(mode="json"),
        "database": settings.database_secret_name,
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def backtest_config_map_name(module: ModuleRef) -> str:
    return _bounded(module.name, "backtest")


def backtest_config_map(module: ModuleRef, report: dict[str, Any]) -> dict[str, Any]:
    """The report as users `kubectl get cm NAME-backtest -o yaml` it; owned by the module."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": backtest_config_map_name(module),
            "namespace": module.namespace,
            "labels": labels(module),
            "ownerReferences": [owner_reference(module)],
        },
        "data": {"report.json": json.dumps(report, indent=2, sort_keys=True)},
    }


def config_map(module: ModuleRef, spec: models.TradingModuleSpec) -> dict[str, Any]:
    """The runtime's config, immutable and named for its content.

    A pod mounts the map of exactly its own config, so the map can be created together
    with the pod (the kubelet waits for a volume's source): a new module costs one round
    trip, and a replacement pod can never read a config that is still being updated.
    The module's uid is in the content, so a re-created module never meets an old map.
    """
    text = json.dumps(runtime_config(module, spec), indent=2, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": _bounded(module.name, f"config-{digest}"),
            "namespace": module.namespace,
            "labels": {**labels(module), LABEL_COMPONENT: RUNTIME_CONFIG},
            "ownerReferences": [owner_reference(module)],
        },
        "immutable": True,
        "data": {CONFIG_FILE: text},
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def runtime_pod(
    module: ModuleRef,
    spec: models.TradingModuleSpec,
    settings: OperatorSettings,
    *,
    config_map_name: str | None = None,
    start_halted: str | None = None,
    portfolio_halt: str | None = None,
) -> dict[str, Any]:
    """The one runtime pod of a module. Restarts are the operator's, so restartPolicy
    is Never: a kubelet restart would bypass the backoff and the circuit breaker."""
    env: list[dict[str, Any]] = [
        {"name": "TRADEPLANE_CONFIG_FILE", "value": f"{CONFIG_DIR}/{CONFIG_FILE}"},
        {"name": "TRADEPLANE_MODULE_NAME", "value": module.name},
        {
            "name": "TRADEPLANE_MODULE_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {"name": "TRADEPLANE_PORT", "value": str(settings.runtime_port)},
    ]
    if spec.wallet_secret_ref is not None:
        ref = spec.wallet_secret_ref
        env.append(_secret_env("TRADEPLANE_WALLET_KEY", ref.name, ref.key))
    if spec.exchange_secret_ref is not None:
        exchange = spec.exchange_secret_ref
        env.append(_secret_env("TRADEPLANE_EXCHANGE_API_KEY", exchange.name, exchange.api_key_key))
        env.append(_secret_env("TRADEPLANE_EXCHANGE_SECRET", exchange.name, exchange.secret_key))
    if settings.database_secret_name:
        env.append(
            _secret_env(
                "TRADEPLANE_DATABASE_URL",
                settings.database_secret_name,
                settings.database_secret_key,
            )
        )
    if start_halted and spec.mode is not models.Mode.BACKTEST:
        env.append({"name": "TRADEPLANE_START_HALTED", "value": start_halted})
    if portfolio_halt:  # a pod created while its portfolio is halted starts halted
        env.append({"name": "TRADEPLANE_PORTFOLIO_HALT", "value": portfolio_halt})
    volumes: list[dict[str, Any]] = [
        {
            "name": "config",
            "configMap": {"name": config_map_name or config_map(module, spec)["metadata"]["name"]},
        }
    ]
    mounts: list[dict[str, Any]] = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}]
    if spec.mode is models.Mode.BACKTEST:
        # The report leaves the pod as its termination message (no API credentials).
        env.append(
            {"name": "TRADEPLANE_TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH}
        )
        if spec.backtest is not None and spec.backtest.config_map:
            env.append({"name": "TRADEPLANE_BACKTEST_DATA_DIR", "value": BACKTEST_DATA_DIR})
            volumes.append(
                {"name": "backtest-data", "configMap": {"name": spec.backtest.config_map}}
            )
            mounts.append(
                {"name": "backtest-data", "mountPath": BACKTEST_DATA_DIR, "readOnly": True}
            )
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image_for(spec, settings),
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["tradeplane-runtime", "run"],
        # The runtime's last words (an invalid config names its field) become the
        # termination message, which the operator copies into status and events.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "env": env,
        "ports": [{"name": "http", "containerPort": settings.runtime_port}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 2,
            "timeoutSeconds": 1,
            "failureThreshold": 3,
        },
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    init_containers: list[dict[str, Any]] = []
    if settings.database_secret_name:
        # Migrations run before the module, under an advisory lock (safe when many pods
        # start at once); the runtime then refuses an older schema anyway.
        init_containers.append(
            {
                "name": "migrate",
                "image": container["image"],
                "imagePullPolicy": settings.image_pull_policy,
                "command": ["tradeplane-runtime", "migrate"],
                "env": [e for e in env if e["name"] == "TRADEPLANE_DATABASE_URL"],
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "securityContext": container["securityContext"],
            }
        )
    resources = spec.resources.model_dump(mode="json", exclude_defaults=False)
    if resources["requests"] or resources["limits"]:
        container["resources"] = {k: v for k, v in resources.items() if v}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(module),
            "namespace": module.namespace,
            "labels": labels(module),
            "annotations": {ANNOTATION_CONFIG_HASH: config_hash(module, spec, settings)},
            "ownerReferences": [owner_reference(module)],
        },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": settings.termination_grace_seconds,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            **({"initContainers": init_containers} if init_containers else {}),
            "containers": [container],
            "volumes": volumes,
        },
    }
