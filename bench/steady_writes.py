"""API writes per module per minute at steady state, for many modules.

    python -m bench.steady_writes [--modules 100] [--minutes 2]

Starts a control plane (hack/testenv), the kubelet stand-in and the operator with its
default settings, applies N paper modules, waits until all are Running and Healthy, then
counts the writes the API server served (`apiserver_request_total`, write verbs, to
tradingmodules, events, pods and config maps) over the window. The ratio to report is
writes / modules / minutes; the target is at most 1.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.kubectl import Kubectl
from tests.cluster.test_operator import api_writes
from tests.kubelet_standin import start_standin, stop_standin

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modules", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=2.0)
    args = parser.parse_args()
    base: dict[str, Any] = yaml.safe_load((ROOT / "config/samples/dex_trading.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        testenv = str(ROOT / "hack/testenv")
        up = subprocess.run([testenv, "up", str(state / "cluster")], capture_output=True, text=True)
        kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        binary = subprocess.run([testenv, "kubectl"], capture_output=True, text=True)
        kubectl = Kubectl(binary.stdout.strip().splitlines()[-1], kubeconfig)
        standin = start_standin(kubeconfig, state / "standin")
        operator = None
        try:
            kubectl.run("apply", "--server-side", "-f", str(ROOT / "crds"))
            kubectl.run("wait", "--for=condition=Established", "crd/tradingmodules.tradeplane.io")
            kubectl.run("create", "namespace", "bench")
            env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
            script = Path(sys.executable).parent / "tradeplane-operator"
            with (state / "operator.log").open("wb") as log:
                operator = subprocess.Popen(
                    [str(script), "--namespace", "bench", "--metrics-bind", ""],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            docs = []
            for i in range(args.modules):
                doc = copy.deepcopy(base)
                doc["metadata"]["name"] = f"m{i:03d}"
                doc["spec"]["strategy"]["tickSeconds"] = 10
                doc["spec"]["marketData"]["seed"] = i
                docs.append(yaml.safe_dump(doc))
            kubectl.apply("---\n".join(docs), "bench")
            start = time.monotonic()
            while True:
                items = kubectl.json("get", "tm", "-n", "bench")["items"]
                healthy = sum((i.get("status") or {}).get("health") == "Healthy" for i in items)
                print(f"\r{healthy}/{args.modules} healthy", end="", flush=True)
                if healthy == args.modules:
                    break
                if time.monotonic() - start > 900:
                    raise SystemExit("\nmodules did not all become healthy in 15 minutes")
                time.sleep(5)
            print(f"\nall healthy after {time.monotonic() - start:.0f}s; settling 30s")
            time.sleep(30)
            before, t0 = api_writes(kubectl), time.monotonic()
            time.sleep(args.minutes * 60)
            writes = api_writes(kubectl) - before
            minutes = (time.monotonic() - t0) / 60
            print(
                f"{args.modules} modules, {minutes:.2f} min: {writes:.0f} API writes = "
                f"{writes / args.modules / minutes:.3f} per module per minute (target <= 1)"
            )
        finally:
            if operator is not None:
                operator.terminate()
                operator.wait(timeout=30)
            stop_standin(standin)
            subprocess.run([testenv, "down", str(state / "cluster")], capture_output=True)


if __name__ == "__main__":
    main()
