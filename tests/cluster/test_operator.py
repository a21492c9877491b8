"""The operator process itself: bounded API writes, metrics, and two replicas.

Write counts come from the API server's own `apiserver_request_total`, not from the
operator's word about itself.
"""

from __future__ import annotations

import copy
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.census import PodCensus
from tests.cluster.conftest import OperatorProcess, release_modules
from tests.cluster.kubectl import Kubectl, eventually, runtime_pods, status

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = yaml.safe_load((ROOT / "config/samples/dex_trading.yaml").read_text())
WRITES = {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION"}
WATCHED = {"tradingmodules", "events", "pods", "configmaps"}
LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def api_write_counts(kubectl: Kubectl) -> Counter[str]:
    """Writes the API server has served to what the operator touches, by verb/resource."""
    counts: Counter[str] = Counter()
    for line in kubectl.run("get", "--raw", "/metrics").stdout.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("verb") in WRITES and labels.get("resource") in WATCHED:
            key = f"{labels['verb']} {labels['resource']}/{labels.get('subresource', '')}"
            counts[key] += int(float(match["value"]))
    return counts


def api_writes(kubectl: Kubectl) -> float:
    return float(sum(api_write_counts(kubectl).values()))


def quiet(kubectl: Kubectl, mine: str) -> bool:
    """No other modules, and no namespace still being torn down (its controllers write).
    Modules left in a namespace no operator watches any more lose their finalizers."""
    terminating = [
        ns["metadata"]["name"]
        for ns in kubectl.json("get", "namespaces")["items"]
        if ns["status"].get("phase") == "Terminating"
    ]
    for namespace in terminating:
        if not namespace.startswith("t-"):  # t-*: the session operator finishes those
            release_modules(kubectl, namespace)
    others = {i["metadata"]["namespace"] for i in kubectl.json("get", "tm", "-A")["items"]}
    return not terminating and others <= {mine}


def named(name: str, **spec: Any) -> str:
    doc = copy.deepcopy(BASE)
    doc["metadata"]["name"] = name
    doc["spec"].update(spec)
    return yaml.safe_dump(doc)


def test_steady_state_writes_at_most_one_per_module_per_minute(
    kubectl: Kubectl,
    own_namespace: str,
    start_operator: Callable[..., OperatorProcess],
    record_property: Callable[[str, object], None],
) -> None:
    modules = 10
    start_operator(own_namespace)  # default settings: status volatile fields every 60s
    names = [f"m{i}" for i in range(modules)]
    for name in names:
        kubectl.apply(
            named(name, health={"intervalSeconds": 5, "timeoutSeconds": 2}), own_namespace
        )

    def settled() -> bool:
        items = kubectl.json("get", "tm", "-n", own_namespace)["items"]
        return len(items) == modules and all(
            (i.get("status") or {}).get("health") == "Healthy" for i in items
        )

    eventually(settled, timeout=180, interval=1, what="all modules running and healthy")
    # Nothing else in the cluster may write meanwhile: earlier tests' namespaces are gone.
    eventually(
        lambda: quiet(kubectl, own_namespace), timeout=180, interval=2, what="a quiet cluster"
    )
    time.sleep(5)
    before, started = api_write_counts(kubectl), time.monotonic()
    time.sleep(61)
    delta = api_write_counts(kubectl) - before
    writes = sum(delta.values())
    minutes = (time.monotonic() - started) / 60
    per_module_per_minute = writes / modules / minutes
    record_property("api_writes_per_module_per_minute", round(per_module_per_minute, 3))
    assert per_module_per_minute <= 1.0, (
        f"{writes} writes for {modules} modules in {minutes:.2f} min"
    )
    # and the status is still being kept current: probes are running.
    assert all(status(kubectl, own_namespace, n).get("lastProbeTime") for n in names)


def test_operator_metrics(
    kubectl: Kubectl, own_namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    op = start_operator(own_namespace, {"TRADEPLANE_STATUS_MIN_INTERVAL": "2"})
    kubectl.apply(named("dex", health={"intervalSeconds": 1, "timeoutSeconds": 1}), own_namespace)
    eventually(lambda: status(kubectl, own_namespace, "dex").get("health") == "Healthy", timeout=60)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5) as r:
            text: str = r.read().decode()
            return text

    text = eventually(
        lambda: (t := scrape()) and 'tradeplane_operator_probes_total{result="ok"}' in t and t,
        what="probe counter",
    )
    assert "tradeplane_operator_reconcile_duration_seconds_bucket" in text
    assert 'tradeplane_operator_modules{health="Healthy",phase="Running"} 1.0' in text
    assert "tradeplane_operator_status_writes_total" in text


def test_two_replicas_only_one_acts_and_the_other_takes_over(
    kubectl: Kubectl,
    own_namespace: str,
    start_operator: Callable[..., OperatorProcess],
    kubeconfig: Path,
    record_property: Callable[[str, object], None],
) -> None:
    kubectl.run("apply", "-f", str(ROOT / "charts/tradeplane/crds/kopfpeerings.yaml"))
    kubectl.run("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")
    kubectl.apply(
        yaml.safe_dump(
            {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "tradeplane"}}
        ),
        own_namespace,
    )
    census = PodCensus(kubeconfig, own_namespace)
    time.sleep(0.3)
    env = {"TRADEPLANE_STATUS_MIN_INTERVAL": "2", "TRADEPLANE_TERMINATION_GRACE_SECONDS": "2"}
    active = start_operator(own_namespace, env, "--peering", "tradeplane", "--priority", "200")
    standby = start_operator(own_namespace, env, "--peering", "tradeplane", "--priority", "100")

    def peers() -> dict[str, Any]:
        doc = kubectl.json("get", "kopfpeering", "tradeplane", "-n", own_namespace)
        found: dict[str, Any] = doc.get("status") or {}
        return found

    seen = eventually(lambda: len(p := peers()) == 2 and p, timeout=60, what="both replicas peer")
    assert sorted(peer["priority"] for peer in seen.values()) == [100, 200]
    assert {peer["lifetime"] for peer in seen.values()} == {15}
    kubectl.apply(named("dex"), own_namespace)
    eventually(lambda: status(kubectl, own_namespace, "dex").get("phase") == "Running", timeout=60)
    assert "runtime pod dex-runtime created" in active.log.read_text()
    assert "runtime pod" not in standby.log.read_text()
    restarts_before = status(kubectl, own_namespace, "dex")["restarts"]

    active.kill()
    killed = time.monotonic()
    kubectl.patch_spec(own_namespace, "dex", {"risk": {"maxPositionSize": "1234"}})

    def applied() -> bool:
        pods = runtime_pods(kubectl, own_namespace)
        st = status(kubectl, own_namespace, "dex")
        gen = kubectl.json("get", "tm", "dex", "-n", own_namespace)["metadata"]["generation"]
        return (
            len(pods) == 1 and st.get("phase") == "Running" and st.get("observedGeneration") == gen
        )

    eventually(applied, timeout=120, interval=0.5, what="the standby applies the change")
    record_property(
        "seconds_from_active_killed_to_change_applied", round(time.monotonic() - killed, 1)
    )
    assert "Resuming operations" in standby.log.read_text()
    census.stop()
    assert census.most == 1
    assert status(kubectl, own_namespace, "dex")["restarts"] == restarts_before  # status kept
