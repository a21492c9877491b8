"""From a Pod's first container to a process: argv, environment, materialized volumes.

Kubelet rules implemented: `envFrom` then `env` (later wins); `$(VAR)` references in
env values (to variables defined before), command and args (to the whole env) are
expanded, `$$` escapes a `$`, unknown references stay as written; `valueFrom` with
secretKeyRef / configMapKeyRef / fieldRef; `configMap` and `secret` volumes
(`items`, `defaultMode`, `optional`); `emptyDir` is an empty directory.

Stand-in rules (no container, so no mounts): volumes live under `<pod dir>/volumes/`
and env values and command/args elements naming a path under a volumeMount's
`mountPath` are rewritten to it (see the package docstring). The injected
`TRADEPLANE_LISTEN_ADDRESS`, `PATH` and `HOSTNAME` override the pod's own values.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from tests.kubelet_standin.kube import JSON, raw, status_of

log = logging.getLogger(__name__)

_REF = re.compile(r"\$\$|\$\(([^)]*)\)")


class ConfigError(Exception):
    """The container cannot be started yet (the kubelet's CreateContainerConfigError)."""


@dataclass(frozen=True)
class ProcessSpec:
    argv: list[str]
    env: dict[str, str]


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _REF.sub(sub, text)


class _Refs:
    """Reads referenced Secrets/ConfigMaps once per build: the kubelet's job here."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.core, self.namespace, self.cache = core, namespace, dict[tuple[str, str], JSON]()

    def data(self, kind: str, name: str, optional: bool) -> dict[str, bytes] | None:
        if (kind, name) not in self.cache:
            read = (
                self.core.read_namespaced_secret
                if kind == "secret"
                else self.core.read_namespaced_config_map
            )
            try:
                self.cache[kind, name] = raw(read, name, self.namespace)
            except Exception as exc:
                if status_of(exc) != 404:
                    raise
                if optional:
                    return None
                raise ConfigError(f'{kind} "{name}" not found') from None
        obj = self.cache[kind, name]
        if kind == "secret":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return out

    def key(self, kind: str, ref: JSON) -> str | None:
        data = self.data(kind, ref["name"], bool(ref.get("optional")))
        if data is None:
            return None
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise ConfigError(f'key "{ref["key"]}" not in {kind} "{ref["name"]}"')
        return data[ref["key"]].decode(errors="replace")


def _field(pod: JSON, path: str, pod_ip: str) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "status.podIP": pod_ip,
        "status.hostIP": "127.0.0.1",
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
    }
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ConfigError(f"fieldRef {path!r} is not supported by the kubelet stand-in")


def _volume_files(refs: _Refs, vol: JSON) -> dict[str, tuple[bytes, int]] | None:
    """relative path -> (content, mode) for a configMap/secret volume; None: not one."""
    if "configMap" in vol:
        src, kind, name = vol["configMap"], "configmap", vol["configMap"]["name"]
    elif "secret" in vol:
        src, kind, name = vol["secret"], "secret", vol["secret"]["secretName"]
    else:
        return None
    data = refs.data(kind, name, bool(src.get("optional"))) or {}
    mode = src.get("defaultMode", 0o644)
    if not src.get("items"):
        return {k: (v, mode) for k, v in data.items()}
    files = {}
    for item in src["items"]:
        if item["key"] in data:
            files[item["path"]] = (data[item["key"]], item.get("mode", mode))
        elif not src.get("optional"):
            raise ConfigError(f'key "{item["key"]}" not in {kind} "{name}"')
    return files


def materialize_volumes(refs: _Refs, pod: JSON, pod_dir: Path) -> dict[str, Path]:
    """(Re)write every volume under `<pod dir>/volumes/<name>/`; volume name -> dir."""
    dirs = {}
    for vol in pod["spec"].get("volumes") or []:
        vdir = pod_dir / "volumes" / vol["name"]
        files = _volume_files(refs, vol)
        if files is None and "emptyDir" not in vol:
            log.warning("volume %s: type not supported, left empty", vol["name"])
        if files is not None:
            shutil.rmtree(vdir, ignore_errors=True)
        vdir.mkdir(parents=True, exist_ok=True)
        for rel, (content, mode) in (files or {}).items():
            path = vdir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(mode | 0o600)  # the stand-in itself must be able to rewrite it
        dirs[vol["name"]] = vdir
    return dirs


TERMINATION_LOG = "termination-log"


def termination_message_file(pod_dir: Path) -> Path:
    """Where the process finds the container's `terminationMessagePath` (stand-in rule:
    the kubelet bind-mounts a file there; here the path is rewritten to this file)."""
    return pod_dir / TERMINATION_LOG


def path_translator(
    container: JSON, volume_dirs: dict[str, Path], pod_dir: Path | None = None
) -> Callable[[str], str]:
    """A function rewriting `mountPath[/rest]` to `<volume dir>[/subPath][/rest]`, and the
    container's `terminationMessagePath` to `<pod dir>/termination-log`."""
    extra = []
    if pod_dir is not None:
        path = container.get("terminationMessagePath") or "/dev/termination-log"
        extra.append((path, termination_message_file(pod_dir)))
    mounts = sorted(
        [
            *(
                (m["mountPath"].rstrip("/") or "/", volume_dirs[m["name"]] / m.get("subPath", ""))
                for m in container.get("volumeMounts") or []
                if m["name"] in volume_dirs
            ),
            *extra,
        ],
        key=lambda mount: len(mount[0]),
        reverse=True,
    )

    def translate(value: str) -> str:
        for mount_path, real in mounts:
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(real).rstrip("/") + value[len(mount_path) :]
        return value

    return translate


def build(core: client.CoreV1Api, pod: JSON, pod_dir: Path, pod_ip: str) -> ProcessSpec:
    """The argv and environment of the pod's first container; writes its volumes."""
    container = pod["spec"]["containers"][0]
    refs = _Refs(core, pod["metadata"]["namespace"])
    translate = path_translator(container, materialize_volumes(refs, pod, pod_dir), pod_dir)
    termination_message_file(pod_dir).unlink(missing_ok=True)
    injected = {
        "TRADEPLANE_LISTEN_ADDRESS": pod_ip,
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        "HOSTNAME": pod["metadata"]["name"],
    }
    env = dict(injected)
    for src in container.get("envFrom") or []:
        kind = "secret" if "secretRef" in src else "configmap"
        ref = src.get("secretRef") or src.get("configMapRef") or {}
        data = refs.data(kind, ref["name"], bool(ref.get("optional"))) or {}
        env.update({src.get("prefix", "") + k: v.decode(errors="replace") for k, v in data.items()})
    for var in container.get("env") or []:
        value: str | None
        if "valueFrom" not in var:
            value = expand(var.get("value", ""), env)
        elif "secretKeyRef" in var["valueFrom"]:
            value = refs.key("secret", var["valueFrom"]["secretKeyRef"])
        elif "configMapKeyRef" in var["valueFrom"]:
            value = refs.key("configmap", var["valueFrom"]["configMapKeyRef"])
        elif "fieldRef" in var["valueFrom"]:
            value = _field(pod, var["valueFrom"]["fieldRef"]["fieldPath"], pod_ip)
        else:
            raise ConfigError(f"env {var['name']}: valueFrom not supported by the stand-in")
        if value is not None:
            env[var["name"]] = value
    env = {k: translate(v) for k, v in {**env, **injected}.items()}
    argv = [
        translate(expand(a, env))
        for a in (container.get("command") or []) + (container.get("args") or [])
    ]
    if not argv:
        raise ConfigError("no command/args: the stand-in runs no images, so no entrypoint")
    log.info(
        "%s/%s: image %s ignored; running %s",
        pod["metadata"]["namespace"],
        pod["metadata"]["name"],
        container.get("image"),
        argv,
    )
    return ProcessSpec(argv=argv, env=env)
