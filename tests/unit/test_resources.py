"""The runtime pod and config map the operator writes."""

from __future__ import annotations

import json

from tradeplane_operator import decisions, resources
from tradeplane_operator.api.models import TradingModuleSpec
from tradeplane_operator.resources import ModuleRef
from tradeplane_operator.settings import OperatorSettings

MODULE = ModuleRef(name="dex", namespace="ns", uid="u-1", generation=1)
SETTINGS = OperatorSettings(database_secret_name="tradeplane-db")


def live_spec(**overrides: object) -> TradingModuleSpec:
    doc: dict[str, object] = {
        "type": "dex_trading",
        "mode": "live",
        "capital": {"allocation": "1000"},
        "risk": {"maxPositionSize": "100", "maxDailyLoss": "50"},
        "walletSecretRef": {"name": "wallet", "key": "private-key"},
    }
    doc.update(overrides)
    return TradingModuleSpec.model_validate(doc)


def test_wallet_reaches_the_pod_only_by_secret_key_ref() -> None:
    pod = resources.runtime_pod(MODULE, live_spec(), SETTINGS)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["TRADEPLANE_WALLET_KEY"] == {
        "name": "TRADEPLANE_WALLET_KEY",
        "valueFrom": {"secretKeyRef": {"name": "wallet", "key": "private-key"}},
    }
    assert "value" not in env["TRADEPLANE_DATABASE_URL"]
    assert env["TRADEPLANE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "tradeplane-db"


def test_pod_is_owned_labelled_and_never_restarted_by_the_kubelet() -> None:
    pod = resources.runtime_pod(MODULE, live_spec(), SETTINGS)
    meta = pod["metadata"]
    assert meta["name"] == "dex-runtime"
    assert meta["ownerReferences"][0]["uid"] == "u-1"
    assert meta["ownerReferences"][0]["controller"] is True
    assert meta["labels"][resources.LABEL_MODULE_UID] == "u-1"
    assert pod["spec"]["restartPolicy"] == "Never"
    config = resources.config_map(MODULE, live_spec())
    assert pod["spec"]["volumes"][0]["configMap"]["name"] == config["metadata"]["name"]


def test_config_map_is_immutable_and_named_for_its_content() -> None:
    """So it can be created together with its pod, and an old pod's map never changes."""
    first = resources.config_map(MODULE, live_spec())
    again = resources.config_map(MODULE, live_spec())
    changed = resources.config_map(
        MODULE, live_spec(risk={"maxPositionSize": "90", "maxDailyLoss": "50"})
    )
    other_uid = resources.config_map(ModuleRef("dex", "ns", "u-2"), live_spec())
    assert first["immutable"] is True
    assert first["metadata"]["name"] == again["metadata"]["name"]
    assert first["metadata"]["name"].startswith("dex-config-")
    assert changed["metadata"]["name"] != first["metadata"]["name"]
    assert other_uid["metadata"]["name"] != first["metadata"]["name"]  # a re-created module
    labels = first["metadata"]["labels"]
    assert resources.config_map_selector(MODULE).items() <= labels.items()
    backtest = resources.backtest_config_map(MODULE, {})["metadata"]["labels"]
    assert not resources.config_map_selector(MODULE).items() <= backtest.items()


def test_config_map_carries_the_runtime_spec_only() -> None:
    cm = resources.config_map(MODULE, live_spec())
    doc = json.loads(cm["data"]["module.json"])
    assert doc["metadata"] == {"name": "dex", "namespace": "ns", "uid": "u-1"}
    assert "health" not in doc["spec"] and "enabled" not in doc["spec"]
    assert doc["spec"]["capital"]["allocation"] == "1000"


def test_hash_ignores_operator_only_fields() -> None:
    base = resources.config_hash(MODULE, live_spec(), SETTINGS)
    health = live_spec(health={"intervalSeconds": 30, "timeoutSeconds": 5})
    assert resources.config_hash(MODULE, health, SETTINGS) == base
    risk = live_spec(risk={"maxPositionSize": "90", "maxDailyLoss": "50"})
    assert resources.config_hash(MODULE, risk, SETTINGS) != base


def test_pause_replaces_no_pod_but_a_new_pod_starts_paused() -> None:
    paused = live_spec(paused=True)
    assert resources.config_hash(MODULE, paused, SETTINGS) == resources.config_hash(
        MODULE, live_spec(), SETTINGS
    )
    assert resources.runtime_config(MODULE, paused)["spec"]["paused"] is True


def test_pause_is_relayed_only_when_the_runtime_disagrees() -> None:
    assert decisions.pause_control(True, False) is True
    assert decisions.pause_control(False, True) is False
    assert decisions.pause_control(True, True) is None
    assert decisions.pause_control(True, None) is None  # not heard yet: its config says


def test_long_names_stay_within_limits() -> None:
    module = ModuleRef(name="m" * 250, namespace="ns", uid="u")
    assert len(resources.pod_name(module)) <= 253
    assert len(resources.labels(module)[resources.LABEL_MODULE]) <= 63


def test_migrations_run_in_an_init_container_when_there_is_a_database() -> None:
    pod = resources.runtime_pod(MODULE, live_spec(), SETTINGS)
    (init,) = pod["spec"]["initContainers"]
    assert init["command"] == ["tradeplane-runtime", "migrate"]
    assert [e["name"] for e in init["env"]] == ["TRADEPLANE_DATABASE_URL"]
    assert "value" not in init["env"][0]  # by secretKeyRef only
    without = resources.runtime_pod(MODULE, live_spec(), OperatorSettings())
    assert "initContainers" not in without["spec"]
