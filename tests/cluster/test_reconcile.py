"""The operator reconciles a TradingModule into exactly one runtime pod.

Real kube-apiserver, the operator as its own process, the kubelet stand-in running the
real runtime, `kubectl` as users run it.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.census import PodCensus
from tests.cluster.kubectl import (
    Kubectl,
    condition,
    eventually,
    mounted_config,
    runtime_configs,
    runtime_pods,
)
from tests.cluster.kubectl import status as module_status

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "samples" / "dex_trading.yaml"
POD = "dex-trading-runtime"


def module(kubectl: Kubectl, namespace: str, name: str = "dex-trading") -> dict[str, Any]:
    doc: dict[str, Any] = kubectl.json("get", "tradingmodule", name, "-n", namespace)
    return doc


def phase(kubectl: Kubectl, namespace: str, name: str = "dex-trading") -> str | None:
    return (module(kubectl, namespace, name).get("status") or {}).get("phase")


def ready_since(pod: dict[str, Any]) -> datetime | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready" and c["status"] == "True":
            return datetime.fromisoformat(c["lastTransitionTime"].replace("Z", "+00:00"))
    return None


@pytest.fixture
def running(
    kubectl: Kubectl, namespace: str, operator_process: Path, census: PodCensus
) -> dict[str, Any]:
    kubectl.run("apply", "-n", namespace, "-f", str(SAMPLE))
    eventually(lambda: phase(kubectl, namespace) == "Running", timeout=60, what="phase Running")
    pods = runtime_pods(kubectl, namespace)
    assert len(pods) == 1
    return pods[0]


def test_sample_yields_one_owned_pod_and_running(
    kubectl: Kubectl, namespace: str, running: dict[str, Any], census: PodCensus
) -> None:
    tm = module(kubectl, namespace)
    owner = running["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "TradingModule",
        tm["metadata"]["uid"],
        True,
    )
    assert running["metadata"]["name"] == POD
    status = tm["status"]
    assert status["podName"] == POD
    assert status["observedGeneration"] == tm["metadata"]["generation"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "RuntimeReady"
    pod_ready = ready_since(running)
    assert pod_ready is not None
    module_ready = datetime.fromisoformat(ready["lastTransitionTime"].replace("Z", "+00:00"))
    assert (module_ready - pod_ready).total_seconds() <= 10
    # The runtime answers on its pod address.
    ip = running["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:8080/healthz", timeout=5) as answer:
        health = json.load(answer)
    assert health["status"] == "ok" and health["mode"] == "paper"
    assert census.most == 1


def test_printer_columns(kubectl: Kubectl, namespace: str, running: dict[str, Any]) -> None:
    out = kubectl.run("get", "tradingmodules", "-n", namespace).stdout
    header, row = out.splitlines()[:2]
    for column in ["NAME", "TYPE", "MODE", "PHASE", "HEALTH", "CAPITAL", "PNL", "RESTARTS", "AGE"]:
        assert column in header.split()
    assert row.split()[:4] == ["dex-trading", "dex_trading", "paper", "Running"]
    assert "10000" in row.split()
    short = kubectl.run("get", "tm", "-n", namespace).stdout
    assert "dex-trading" in short


def test_spec_change_replaces_the_pod_without_overlap(
    kubectl: Kubectl, namespace: str, running: dict[str, Any], census: PodCensus
) -> None:
    old_uid = running["metadata"]["uid"]
    kubectl.patch_spec(namespace, "dex-trading", {"risk": {"maxPositionSize": "1500"}})

    def replaced() -> bool:
        pods = runtime_pods(kubectl, namespace)
        return (
            len(pods) == 1
            and pods[0]["metadata"]["uid"] != old_uid
            and phase(kubectl, namespace) == "Running"
        )

    eventually(replaced, timeout=90, what="a new ready pod")
    assert census.most == 1, "two runtime pods existed at once"
    assert len(census.created) == 2
    config = mounted_config(kubectl, runtime_pods(kubectl, namespace)[0])
    assert config["spec"]["risk"]["maxPositionSize"] == "1500"
    # The old config's map is gone once its replacement runs: one map per module.
    assert runtime_configs(kubectl, namespace) == [
        v["configMap"]["name"]
        for v in runtime_pods(kubectl, namespace)[0]["spec"]["volumes"]
        if v["name"] == "config"
    ]


def test_health_settings_change_keeps_the_pod(
    kubectl: Kubectl, namespace: str, running: dict[str, Any], census: PodCensus
) -> None:
    kubectl.patch_spec(namespace, "dex-trading", {"health": {"intervalSeconds": 7}})
    tm = eventually(
        lambda: (
            (m := module(kubectl, namespace))["status"]["observedGeneration"]
            == m["metadata"]["generation"]
            and m
        ),
        what="status observes the new generation",
    )
    assert tm["status"]["phase"] == "Running"
    assert [p["metadata"]["uid"] for p in runtime_pods(kubectl, namespace)] == [
        running["metadata"]["uid"]
    ]


def test_disable_removes_the_pod_and_enable_restores_it(
    kubectl: Kubectl, namespace: str, running: dict[str, Any], census: PodCensus
) -> None:
    kubectl.patch_spec(namespace, "dex-trading", {"enabled": False})
    eventually(lambda: not runtime_pods(kubectl, namespace), timeout=60, what="pod removed")
    assert phase(kubectl, namespace) == "Disabled"
    kubectl.patch_spec(namespace, "dex-trading", {"enabled": True})
    eventually(lambda: phase(kubectl, namespace) == "Running", timeout=60, what="running again")
    assert census.most == 1


def test_delete_leaves_nothing_behind(
    kubectl: Kubectl, namespace: str, running: dict[str, Any]
) -> None:
    kubectl.run("delete", "tm", "dex-trading", "-n", namespace, "--timeout=60s")
    assert not runtime_pods(kubectl, namespace)
    left = kubectl.run(
        "get",
        "configmaps,pods",
        "-n",
        namespace,
        "-l",
        "app.kubernetes.io/managed-by=tradeplane-operator",
        "-o",
        "name",
    ).stdout
    assert left.strip() == ""


def create_wallet(kubectl: Kubectl, namespace: str, key: str) -> None:
    literal = f"--from-literal=private-key={key}"
    kubectl.run("create", "secret", "generic", "dex-wallet", "-n", namespace, literal)


def test_wallet_key_reaches_only_the_runtime(
    kubectl: Kubectl, namespace: str, operator_process: Path, local_pods: Path
) -> None:
    key = "0x" + "5eed" * 16
    create_wallet(kubectl, namespace, key)
    doc = yaml.safe_load(SAMPLE.read_text())
    doc["spec"]["walletSecretRef"] = {"name": "dex-wallet", "key": "private-key"}
    kubectl.apply(yaml.safe_dump(doc), namespace)
    eventually(lambda: phase(kubectl, namespace) == "Running", timeout=60, what="phase Running")
    pod = runtime_pods(kubectl, namespace)[0]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["TRADEPLANE_WALLET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "dex-wallet",
        "key": "private-key",
    }
    everything = "\n".join(
        [
            json.dumps(module(kubectl, namespace)),
            json.dumps(pod),
            kubectl.run("get", "events", "-n", namespace, "-o", "json").stdout,
            operator_process.read_text(),
            *(p.read_text() for p in local_pods.rglob("container.log")),
        ]
    )
    assert key not in everything
    assert key[2:] not in everything


def test_a_missing_wallet_secret_is_named_and_then_runs(
    kubectl: Kubectl, namespace: str, operator_process: Path, census: PodCensus
) -> None:
    """The kubelet cannot start the container without its secret: the module says so
    (not a failure to restart), and runs once the secret exists, in the same pod."""
    doc = yaml.safe_load(SAMPLE.read_text())
    doc["spec"]["walletSecretRef"] = {"name": "dex-wallet", "key": "private-key"}
    kubectl.apply(yaml.safe_dump(doc), namespace)

    def ready() -> dict[str, Any]:
        return condition(kubectl, namespace, "dex-trading", "Ready")

    eventually(lambda: ready().get("reason") == "PodNotStarting", what="PodNotStarting")
    message = ready()["message"]
    assert 'CreateContainerConfigError: secret "dex-wallet" not found' in message, message
    status = module_status(kubectl, namespace, "dex-trading")
    assert (status["phase"], status.get("restarts", 0)) == ("Pending", 0)
    [pod] = runtime_pods(kubectl, namespace)
    create_wallet(kubectl, namespace, "0x" + "5eed" * 16)
    eventually(lambda: phase(kubectl, namespace) == "Running", timeout=60, what="phase Running")
    [running] = runtime_pods(kubectl, namespace)
    assert running["metadata"]["uid"] == pod["metadata"]["uid"]
    assert module_status(kubectl, namespace, "dex-trading").get("restarts", 0) == 0
    assert census.most == 1


def test_depends_on_waits_for_the_dependency(
    kubectl: Kubectl, namespace: str, operator_process: Path
) -> None:
    doc = yaml.safe_load(SAMPLE.read_text())
    doc["metadata"]["name"] = "follower"
    doc["spec"]["dependsOn"] = ["dex-trading"]
    kubectl.apply(yaml.safe_dump(doc), namespace)
    eventually(
        lambda: (
            (module_status(kubectl, namespace, "follower").get("message") or "")
            == "waiting for dex-trading (not found)"
        ),
        what="follower waits",
    )
    assert not runtime_pods(kubectl, namespace)
    kubectl.run("apply", "-n", namespace, "-f", str(SAMPLE))
    eventually(
        lambda: phase(kubectl, namespace, "follower") == "Running",
        timeout=60,
        what="follower runs once its dependency runs",
    )
    assert len(runtime_pods(kubectl, namespace)) == 2
