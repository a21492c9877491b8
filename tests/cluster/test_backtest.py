"""A backtest on the real control plane: the runtime replays a candle file from a
ConfigMap, exits 0, its report reaches the status, the PNL column and a ConfigMap; the
module is Succeeded and never restarted; promotion is refused below the thresholds and
accepted above them, leaving a trail in the status."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.backtest_case import CLOSES, band_spec, by_hand, candle_file, shown
from tests.cluster.census import PodCensus
from tests.cluster.kubectl import Kubectl, events, eventually, module, runtime_pods, status

pytestmark = pytest.mark.cluster

NAME = "band-bt"
PROMOTE = "tradeplane.io/promote"


def manifest(promotion: dict[str, Any]) -> str:
    doc = {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingModule",
        "metadata": {"name": NAME},
        "spec": band_spec(
            {
                "source": "csv",
                "configMap": "candles",
                "key": "weth-usdc-1m.csv",
                "timeframe": "1m",
                "feeBps": 30,
                "slippageBps": 10,
            },
            promotion=promotion,
            health={"intervalSeconds": 2, "timeoutSeconds": 1},
        ),
    }
    doc["spec"]["strategy"]["tickSeconds"] = 1  # once promoted to paper: trade at once
    return yaml.safe_dump(doc)


def candles_config_map() -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "candles"},
            "data": {"weth-usdc-1m.csv": candle_file()},
        }
    )


def reasons(kubectl: Kubectl, namespace: str) -> list[str]:
    return [e["reason"] for e in events(kubectl, namespace, NAME)]


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c["type"] == type_), {})


def test_backtest_succeeds_reports_and_is_promoted_only_above_thresholds(
    kubectl: Kubectl, namespace: str, operator_process: Path, census: PodCensus
) -> None:
    kubectl.apply(candles_config_map(), namespace)
    strict = {"minTrades": 50, "minProfitFactor": 1.2, "maxDrawdownPercent": 10}
    kubectl.apply(manifest(strict | {"minPaperSeconds": 0}), namespace)
    try:
        done = eventually(
            lambda: (st := status(kubectl, namespace, NAME)).get("phase") == "Succeeded" and st,
            timeout=120,
            what="phase Succeeded",
        )
    except AssertionError as error:
        pods = [p.get("status") for p in runtime_pods(kubectl, namespace)]
        seen = [(e["reason"], e["message"]) for e in events(kubectl, namespace, NAME)]
        raise AssertionError(
            f"{error}\nstatus: {status(kubectl, namespace, NAME)}\npods: {pods}\nevents: {seen}"
        ) from None
    # The report equals the computation by hand (tests/runtime/test_backtest.py).
    expected = by_hand(CLOSES, allocation=Decimal(1000), fee=Decimal(30), slip=Decimal(10))
    report = done["backtest"]
    assert {k: report[k] for k in expected} == {k: shown(v) for k, v in expected.items()}
    (pod,) = runtime_pods(kubectl, namespace)
    assert pod["status"]["phase"] == "Succeeded"
    assert report["podUid"] == pod["metadata"]["uid"]
    assert done["restarts"] == 0 and done.get("breaker") is None
    assert done["metrics"]["realizedPnl"] == report["realizedPnl"]
    # kubectl get tm: the PNL column is the backtest's realized PnL.
    table = kubectl.run("get", "tm", NAME, "-n", namespace).stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert row[header.index("PNL")] == report["realizedPnl"]
    assert row[header.index("PHASE")] == "Succeeded"
    # The ConfigMap a user can `kubectl get`, owned by the module.
    cm = kubectl.json("get", "configmap", f"{NAME}-backtest", "-n", namespace)
    assert json.loads(cm["data"]["report.json"]) == report
    assert cm["metadata"]["ownerReferences"][0]["name"] == NAME
    assert {"BacktestStarted", "BacktestFinished"} <= set(reasons(kubectl, namespace))
    ready = condition(done, "PromotionReady")
    assert (ready.get("status"), ready.get("reason")) == ("False", "ThresholdsNotMet")

    # Below the thresholds: refused, with the reason in an Event; the annotation goes.
    kubectl.run("annotate", "tm", NAME, "-n", namespace, f"{PROMOTE}=carol")
    eventually(
        lambda: "PromotionRefused" in reasons(kubectl, namespace), timeout=30, what="refusal"
    )
    refusal = next(e for e in events(kubectl, namespace, NAME) if e["reason"] == "PromotionRefused")
    assert "trades 3 < minTrades 50" in refusal["message"] and refusal["type"] == "Warning"
    eventually(
        lambda: (
            PROMOTE not in (module(kubectl, namespace, NAME)["metadata"].get("annotations") or {})
        ),
        timeout=30,
        what="the annotation removed",
    )
    tm = module(kubectl, namespace, NAME)
    assert tm["spec"]["mode"] == "backtest" and not tm["status"].get("promotions")

    # Still no restart, same pod: completion is not a failure.
    (same,) = runtime_pods(kubectl, namespace)
    assert same["metadata"]["uid"] == pod["metadata"]["uid"]
    assert status(kubectl, namespace, NAME)["restarts"] == 0

    # Thresholds the run meets (spec.promotion never replaces the pod): accepted.
    kubectl.patch_spec(
        namespace,
        NAME,
        {"promotion": {"minTrades": 3, "minProfitFactor": 1.2, "maxDrawdownPercent": 10}},
    )
    eventually(
        lambda: (
            condition(status(kubectl, namespace, NAME), "PromotionReady").get("status") == "True"
        ),
        timeout=30,
        what="PromotionReady True",
    )
    kubectl.run("annotate", "tm", NAME, "-n", namespace, f"{PROMOTE}=carol")
    promoted = eventually(  # the spec patch and the status write are two writes
        lambda: (
            (tm := module(kubectl, namespace, NAME))["spec"]["mode"] == "paper"
            and (tm.get("status") or {}).get("promotions")
            and tm
        ),
        timeout=30,
        what="spec.mode paper and the promotion recorded",
    )
    (record,) = promoted["status"]["promotions"]
    assert (record["fromMode"], record["toMode"], record["by"]) == ("backtest", "paper", "carol")
    assert record["figures"]["trades"] == "3"
    assert record["figures"]["realizedPnl"] == report["realizedPnl"]
    assert "Promoted" in reasons(kubectl, namespace)
    # The paper run replaces the finished backtest pod, one pod at a time.
    eventually(
        lambda: status(kubectl, namespace, NAME).get("phase") == "Running",
        timeout=60,
        what="the paper run",
    )
    st = status(kubectl, namespace, NAME)
    assert st["paperSince"] and st["restarts"] == 0
    # paper -> live: no wallet reference, so refused.
    kubectl.run("annotate", "tm", NAME, "-n", namespace, f"{PROMOTE}=dave")
    eventually(
        lambda: sum(r == "PromotionRefused" for r in reasons(kubectl, namespace)) >= 2,
        timeout=30,
        what="the paper -> live refusal",
    )
    assert module(kubectl, namespace, NAME)["spec"]["mode"] == "paper"
    assert census.most == 1
