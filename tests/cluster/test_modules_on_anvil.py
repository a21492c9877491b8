"""The DEX, arbitrage and liquidity modules in runtime pods, in paper mode, on anvil.

The whole path as users run it: TradingModules applied with kubectl, the operator
creating the pods, the kubelet stand-in running the real runtime, each runtime quoting
real pools over JSON-RPC (paper: nothing is sent), and the status showing their numbers.
"""

from __future__ import annotations

import copy
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chain.anvil import AnvilNode
from tests.chain.conftest import Dex, anvil, dex_deployed, other, trader, w3
from tests.cluster.kubectl import Kubectl, eventually, runtime_pods, status

pytestmark = [pytest.mark.cluster, pytest.mark.anvil]
__all__ = ["anvil", "dex_deployed", "other", "trader", "w3"]  # fixtures used here

ROOT = Path(__file__).resolve().parents[2]
RISK = {"maxPositionSize": "5000", "maxDailyLoss": "1000", "maxOpenPositions": 2}


def module(name: str, type: str, strategy: dict[str, Any], rpc_url: str) -> str:
    doc: dict[str, Any] = {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingModule",
        "metadata": {"name": name},
        "spec": {
            "type": type,
            "mode": "paper",
            "capital": {"allocation": "50000"},
            "risk": copy.deepcopy(RISK),
            "strategy": {"base": "WETH", "quote": "USDC", "tickSeconds": 1, **strategy},
            "marketData": {"source": "evm", "rpcUrl": rpc_url},
            "health": {"intervalSeconds": 2, "timeoutSeconds": 1},
        },
    }
    return yaml.safe_dump(doc)


def health(pod: dict[str, Any]) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/healthz", timeout=5) as r:
        body: dict[str, Any] = json.load(r)
        return body


async def test_modules_run_in_pods_against_real_pools(
    kubectl: Kubectl,
    namespace: str,
    operator_process: Path,
    anvil: AnvilNode,
    dex_deployed: Dex,
) -> None:
    dex = dex_deployed
    nonces_before = {a.address: nonce_of(anvil, a.address) for a in (dex.trader, dex.other)}
    manifests = [
        module(
            "dex",
            "dex_trading",
            {"pool": dex.venue_a.pair, "orderSize": "1000", "emaPeriod": 3, "bandPercent": 0.5},
            anvil.rpc_url,
        ),
        module(
            "arb",
            "arbitrage",
            {"poolA": dex.venue_a.pair, "poolB": dex.venue_b.pair, "orderSize": "2000"},
            anvil.rpc_url,
        ),
        module(
            "lp",
            "liquidity_provision",
            {"pool": dex.venue_a.pair, "depositValue": "3000", "bandPercent": 10},
            anvil.rpc_url,
        ),
    ]
    kubectl.apply("---\n".join(manifests), namespace)

    def running() -> bool:
        return all(
            status(kubectl, namespace, n).get("health") == "Healthy" for n in ("dex", "arb", "lp")
        )

    eventually(running, timeout=90, what="three healthy modules")
    # The pools disagree (3000 vs 3100 USDC/WETH): the arbitrage module trades it, in
    # paper, and its status says so; the LP module deposits within its band.
    arb = eventually(
        lambda: (m := (status(kubectl, namespace, "arb").get("metrics") or {})).get("trades") and m,
        timeout=60,
        what="arbitrage trades reported in the status",
    )
    assert arb["trades"] >= 1
    assert not arb["realizedPnl"].startswith("-"), arb  # a spread beyond both fees
    eventually(
        lambda: (
            (status(kubectl, namespace, "lp").get("metrics") or {}).get("capitalInUse")
            not in (None, "0")
        ),
        timeout=60,
        what="liquidity deposited (paper)",
    )
    pods = {p["metadata"]["name"]: p for p in runtime_pods(kubectl, namespace)}
    assert set(pods) == {"dex-runtime", "arb-runtime", "lp-runtime"}
    for pod in pods.values():
        assert health(pod)["mode"] == "paper"
    # Paper mode sends nothing: no account's nonce moved.
    assert {a.address: nonce_of(anvil, a.address) for a in (dex.trader, dex.other)} == nonces_before


def nonce_of(anvil: AnvilNode, address: str) -> int:
    """The account's transaction count, over plain JSON-RPC (no event loop needed)."""
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_getTransactionCount",
            "params": [address, "latest"],
        }
    ).encode()
    request = urllib.request.Request(
        anvil.rpc_url, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return int(json.load(answer)["result"], 16)
