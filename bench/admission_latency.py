"""Admission latency: what the fleet-budget webhook adds to a TradingModule create.

    python -m bench.admission_latency [--requests 200]

Starts a control plane (hack/testenv) and the operator serving its validating webhook
(self-signed certificate, the configuration it writes itself), applies a portfolio, then
creates modules one after another: members of the portfolio (through the webhook) and,
as the baseline measured in the same run, modules outside any portfolio (which the
webhook's matchConditions skip). Prints p50/p99 of both and their ratio. The modules are
disabled, so no pod (and no kubelet stand-in) is involved: this is the API path alone.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from tests.cluster.kubectl import Kubectl
from tests.cluster.webhook_certs import make_certs

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def module(name: str, portfolio: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "config/samples/dex_trading.yaml").read_text())
    doc = copy.deepcopy(doc)
    doc["metadata"] = {"name": name}
    doc["spec"]["enabled"] = False
    doc["spec"]["capital"]["allocation"] = "10000"
    if portfolio:
        doc["spec"]["portfolio"] = portfolio
    return doc


def timed_creates(
    api: client.CustomObjectsApi, prefix: str, n: int, portfolio: str | None
) -> list[float]:
    samples = []
    for i in range(n):
        body = module(f"{prefix}{i:04d}", portfolio)
        start = time.perf_counter()
        api.create_namespaced_custom_object(
            "tradeplane.io", "v1alpha1", NAMESPACE, "tradingmodules", body
        )
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        testenv = str(ROOT / "hack/testenv")
        up = subprocess.run([testenv, "up", str(state / "cluster")], capture_output=True, text=True)
        kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        binary = subprocess.run([testenv, "kubectl"], capture_output=True, text=True)
        kubectl = Kubectl(binary.stdout.strip().splitlines()[-1], kubeconfig)
        operator = None
        try:
            kubectl.run("apply", "--server-side", "-f", str(ROOT / "crds"))
            for crd in ("tradingmodules", "tradingportfolios"):
                kubectl.run("wait", "--for=condition=Established", f"crd/{crd}.tradeplane.io")
            kubectl.run("create", "namespace", NAMESPACE)
            certs = make_certs(state / "certs")
            env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
            script = Path(sys.executable).parent / "tradeplane-operator"
            log_path = state / "operator.log"
            with log_path.open("wb") as log:
                operator = subprocess.Popen(
                    [
                        str(script), "--namespace", NAMESPACE, "--metrics-bind", "",
                        "--webhook-listen", "127.0.0.1:19443", "--webhook-cert-dir", str(certs),
                        "--webhook-configuration", "tradeplane-bench",
                    ],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            deadline = time.monotonic() + 60
            while b"admission webhook ready" not in log_path.read_bytes():
                if time.monotonic() > deadline or operator.poll() is not None:
                    raise SystemExit(f"operator not ready:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            budget = str(10000 * (args.requests + 100))
            portfolio = {
                "apiVersion": "tradeplane.io/v1alpha1",
                "kind": "TradingPortfolio",
                "metadata": {"name": "fleet"},
                "spec": {"budget": budget},
            }
            kubectl.apply(yaml.safe_dump(portfolio), NAMESPACE)
            api = client.CustomObjectsApi(config.new_client_from_config(str(kubeconfig)))
            timed_creates(api, "warm", 10, "fleet")  # connections, caches
            baseline = timed_creates(api, "free", args.requests, None)
            admitted = timed_creates(api, "member", args.requests, "fleet")
            for label, samples in (("no webhook (baseline)", baseline), ("webhook", admitted)):
                print(
                    f"{label:22s} n={len(samples)} p50={percentile(samples, 0.5) * 1000:.1f} ms "
                    f"p99={percentile(samples, 0.99) * 1000:.1f} ms "
                    f"mean={statistics.fmean(samples) * 1000:.1f} ms"
                )
            for q in (0.5, 0.99):
                ratio = percentile(admitted, q) / percentile(baseline, q)
                print(f"ratio webhook/baseline p{int(q * 100)}: {ratio:.2f}")
        finally:
            if operator is not None:
                operator.terminate()
                operator.wait(timeout=30)
            subprocess.run([testenv, "down", str(state / "cluster")], capture_output=True)


if __name__ == "__main__":
    main()
