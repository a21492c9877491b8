"""kubectl as users run it, against the test cluster."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> Result:
        proc = subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, manifest: str, namespace: str, check: bool = True) -> Result:
        return self.run("apply", "-n", namespace, "-f", "-", stdin=manifest, check=check)

    def patch_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> Result:
        """A merge patch of a TradingModule's spec, as `kubectl patch --type=merge`."""
        return self.run(
            "patch", "tm", name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec})
        )

    def pods(self, namespace: str, selector: str = "app.kubernetes.io/managed-by") -> list[Any]:
        items: list[Any] = self.json("get", "pods", "-n", namespace, "-l", selector)["items"]
        return items


def eventually(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.25, what: str = ""
) -> T:
    """Poll until `probe` returns a truthy value; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}: last={last!r}")


RUNTIME_PODS = "app.kubernetes.io/managed-by=tradeplane-operator"


def module(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = kubectl.json("get", "tradingmodule", name, "-n", namespace)
    return doc


def status(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    return module(kubectl, namespace, name).get("status") or {}


def condition(kubectl: Kubectl, namespace: str, name: str, type_: str) -> dict[str, Any]:
    """A module's condition of that type; {} when it has none."""
    conditions = status(kubectl, namespace, name).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def runtime_pods(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    return kubectl.pods(namespace, RUNTIME_PODS)


def runtime_configs(kubectl: Kubectl, namespace: str) -> list[str]:
    """The names of the runtime-config maps in the namespace."""
    found = kubectl.json(
        "get", "configmap", "-n", namespace, "-l", "app.kubernetes.io/component=runtime-config"
    )
    return sorted(item["metadata"]["name"] for item in found["items"])


def mounted_config(kubectl: Kubectl, pod: dict[str, Any]) -> dict[str, Any]:
    """The runtime config that `pod` mounts (its map is named for its content)."""
    name = next(v["configMap"]["name"] for v in pod["spec"]["volumes"] if v["name"] == "config")
    found = kubectl.json("get", "configmap", name, "-n", pod["metadata"]["namespace"])
    config: dict[str, Any] = json.loads(found["data"]["module.json"])
    return config


def runtime_health(pod: dict[str, Any]) -> dict[str, Any]:
    """What the runtime in `pod` says on /healthz (the port the operator probes)."""
    url = f"http://{pod['status']['podIP']}:8080/healthz"
    with urllib.request.urlopen(url, timeout=5) as answer:
        body: dict[str, Any] = json.load(answer)
        return body


def events(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return items
