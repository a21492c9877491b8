"""`solana_strategies` in runtime pods on the real control plane (operator + kubelet
stand-in): the sample as shipped (synthetic market, paper) and a paper module quoting a
real pool on the LiteSVM stand-in over JSON-RPC. Both Running and Healthy."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kubectl import Kubectl, eventually, runtime_pods, status
from tests.solana.conftest import Market, market, solana_url
from tests.solana.demo_pool import pool_module

pytestmark = pytest.mark.cluster
__all__ = ["market", "solana_url"]  # fixtures used here

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "samples" / "solana_strategies.yaml"


def on_pool(market: Market) -> str:
    c = market.config
    doc = pool_module(
        "sol-pool",
        rpc_url=market.rpc.url,
        program_id=str(c.program_id),
        pool=str(c.pool),
        base_mint=str(c.base_mint),
        quote_mint=str(c.quote_mint),
        health={"intervalSeconds": 2, "timeoutSeconds": 1},
    )
    doc["spec"]["strategy"] |= {"tickSeconds": 1, "emaPeriod": 2}
    return yaml.safe_dump(doc)


async def test_solana_modules_run_healthy(
    kubectl: Kubectl, namespace: str, operator_process: Path, market: Market
) -> None:
    touched = await market.rpc.signatures_for(market.pool.vault_a)
    kubectl.apply(SAMPLE.read_text(), namespace)
    kubectl.apply(on_pool(market), namespace)

    def healthy() -> bool:
        return all(
            status(kubectl, namespace, n).get("phase") == "Running"
            and status(kubectl, namespace, n).get("health") == "Healthy"
            for n in ("solana-strategies", "sol-pool")
        )

    eventually(healthy, timeout=90, what="both solana modules Running and Healthy")
    pods = {p["metadata"]["name"]: p for p in runtime_pods(kubectl, namespace)}
    assert set(pods) == {"solana-strategies-runtime", "sol-pool-runtime"}

    def ticked(pod: dict[str, Any]) -> dict[str, Any] | None:
        url = f"http://{pod['status']['podIP']}:8080/healthz"
        with urllib.request.urlopen(url, timeout=5) as r:
            body: dict[str, Any] = json.load(r)
        return body if body["ticks"] >= 3 else None

    body = eventually(lambda: ticked(pods["sol-pool-runtime"]), timeout=60, what="3 ticks")
    assert body["status"] == "ok" and "problems" not in body, body  # every pool read worked
    # Healthy means its ticks succeed: it read the pool's accounts over JSON-RPC; and
    # paper on the real pool sent nothing: no transaction touched the pool's vault
    assert await market.rpc.signatures_for(market.pool.vault_a) == touched
