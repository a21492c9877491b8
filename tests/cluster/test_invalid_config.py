"""A runtime that refuses its config (exit code 2) is not restarted in a loop.

A real runtime process (the kubelet stand-in) exits 2 naming the bad field; the module is
Failed with reason InvalidConfig, the message in its status and an Event, one pod ever;
a new generation of the spec retries.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.census import PodCensus
from tests.cluster.kubectl import Kubectl, condition, events, eventually, status

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = yaml.safe_load((ROOT / "config/samples/dex_trading.yaml").read_text())
NAME = "dex-trading"
HEALTH = {
    "intervalSeconds": 2,
    "timeoutSeconds": 1,
    "failureThreshold": 3,
    "maxRestarts": 2,
    "backoff": {"initialSeconds": 1, "maxSeconds": 2, "multiplier": 2},
}


def manifest(**strategy: Any) -> str:
    doc = copy.deepcopy(BASE)
    doc["spec"]["health"] = HEALTH
    doc["spec"]["strategy"].update(strategy)
    return yaml.safe_dump(doc)


def test_exit_2_is_failed_invalid_config_not_restarted_and_a_new_generation_retries(
    kubectl: Kubectl, namespace: str, operator_process: Path, census: PodCensus
) -> None:
    kubectl.apply(manifest(emaPeriod=1), namespace)  # the runtime refuses it: exit 2
    eventually(
        lambda: condition(kubectl, namespace, NAME, "Ready").get("reason") == "InvalidConfig",
        timeout=60,
        what="InvalidConfig",
    )
    st = status(kubectl, namespace, NAME)
    assert st["phase"] == "Failed"
    assert "exit code 2" in st["message"] and "strategy.emaPeriod" in st["message"]
    time.sleep(HEALTH["backoff"]["maxSeconds"] * 3)  # longer than any backoff: no restart
    assert len(census.created) == 1
    st = status(kubectl, namespace, NAME)
    assert st["restarts"] == 0 and st["phase"] == "Failed"
    invalid = [e for e in events(kubectl, namespace, NAME) if e["reason"] == "InvalidConfig"]
    assert len(invalid) == 1 and invalid[0].get("count") in (None, 1)
    assert "strategy.emaPeriod" in invalid[0]["message"]
    # A fixed spec is a new generation: it runs.
    kubectl.apply(manifest(emaPeriod=12), namespace)
    eventually(
        lambda: status(kubectl, namespace, NAME).get("phase") == "Running",
        timeout=60,
        what="the fixed module runs",
    )
    assert len(census.created) == 2 and census.most == 1
