"""`kubectl trading`: every command, run as users run it — kubectl finding the plugin on
PATH — against the real control plane and the session operator (which serves admission
and acts on the annotations the plugin writes)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kubectl import (
    Kubectl,
    condition,
    events,
    eventually,
    module,
    runtime_health,
    runtime_pods,
    status,
)

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = yaml.safe_load((ROOT / "config/samples/dex_trading.yaml").read_text())
COMMANDS = [
    "status",
    "pause",
    "resume",
    "halt",
    "resume-halt",
    "reset-breaker",
    "allocate",
    "promote",
    "logs",
]


class Plugin:
    def __init__(self, kubectl: Kubectl, namespace: str) -> None:
        self.kubectl, self.namespace = kubectl, namespace
        path = os.pathsep.join(
            [str(Path(sys.executable).parent), str(Path(kubectl.binary).parent), os.environ["PATH"]]
        )
        self.env = {**os.environ, "PATH": path, "KUBECONFIG": str(kubectl.kubeconfig)}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.kubectl.binary, "trading", *args, "-n", self.namespace],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl trading {' '.join(args)}: {proc.stderr}")
        return proc


def manifest(name: str, allocation: str, **spec: Any) -> str:
    doc = copy.deepcopy(BASE)
    doc["metadata"] = {"name": name}
    doc["spec"]["portfolio"] = "fleet"
    doc["spec"]["capital"]["allocation"] = allocation
    doc["spec"]["health"] = {"intervalSeconds": 2, "timeoutSeconds": 1}
    doc["spec"].update(spec)
    return yaml.safe_dump(doc)


def annotations(kubectl: Kubectl, namespace: str, resource: str, name: str) -> dict[str, str]:
    doc = kubectl.json("get", resource, name, "-n", namespace)
    return dict(doc["metadata"].get("annotations") or {})


def test_help_lists_every_command(kubectl: Kubectl, namespace: str) -> None:
    out = Plugin(kubectl, namespace)("--help").stdout
    for command in COMMANDS:
        assert command in out, command


def test_every_command_through_kubectl_trading(
    kubectl: Kubectl, namespace: str, operator_process: Path
) -> None:
    trading = Plugin(kubectl, namespace)
    me = kubectl.run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
    assert me
    portfolio = {
        "apiVersion": "tradeplane.io/v1alpha1",
        "kind": "TradingPortfolio",
        "metadata": {"name": "fleet"},
        "spec": {"budget": "20000"},
    }
    kubectl.apply(yaml.safe_dump(portfolio), namespace)
    kubectl.apply(manifest("a", "10000"), namespace)
    kubectl.apply(manifest("b", "8000", enabled=False), namespace)
    eventually(
        lambda: status(kubectl, namespace, "a").get("phase") == "Running",
        timeout=90,
        what="module a runs",
    )

    # status: the namespace, one module, one portfolio, all namespaces.
    eventually(lambda: "18000" in trading("status").stdout, timeout=30, what="budget use in status")
    overview = trading("status").stdout
    assert "Modules" in overview and "Portfolios" in overview
    assert "Running" in overview and "fleet" in overview and "90.0%" in overview
    detail = trading("status", "a").stdout
    assert f"Module {namespace}/a" in detail and "portfolio:   fleet" in detail
    members = trading("status", "tp/fleet").stdout
    assert f"Portfolio {namespace}/fleet" in members and "\nb " in members
    everywhere = trading("status", "-A").stdout
    assert "NAMESPACE" in everywhere and namespace in everywhere

    # pause / resume: spec.paused, and who asked; the running runtime takes it, no restart.
    (first,) = runtime_pods(kubectl, namespace)
    first_uid = first["metadata"]["uid"]
    assert "paused" in trading("pause", "a").stdout
    doc = module(kubectl, namespace, "a")
    assert doc["spec"]["paused"] is True
    assert doc["metadata"]["annotations"]["tradeplane.io/changed-by"] == me
    eventually(lambda: runtime_health(first)["paused"], timeout=30, what="the runtime pauses")
    trading("resume", "a")
    assert module(kubectl, namespace, "a")["spec"]["paused"] is False
    eventually(
        lambda: runtime_health(first)["paused"] is False, timeout=30, what="the runtime resumes"
    )
    assert [p["metadata"]["uid"] for p in runtime_pods(kubectl, namespace)] == [first_uid]

    # allocate: refused by admission over budget, with its message; allowed within.
    refused = trading("allocate", "a", "12000.5", check=False)
    assert refused.returncode == 1
    assert "spec.capital.allocation" in refused.stderr
    assert "budget 20000 USDC" in refused.stderr and "allocated 8000" in refused.stderr
    assert "requested 12000.5" in refused.stderr
    assert trading("allocate", "a", "ten", check=False).returncode == 1
    trading("allocate", "a", "12000")
    assert str(module(kubectl, namespace, "a")["spec"]["capital"]["allocation"]) == "12000"

    # halt / resume-halt on the portfolio: the kill switch reaches the member.
    trading("halt", "fleet")
    tp = kubectl.json("get", "tp", "fleet", "-n", namespace)
    assert tp["spec"]["halted"] is True
    eventually(
        lambda: condition(kubectl, namespace, "a", "PortfolioHalted").get("status") == "True",
        timeout=30,
        what="member halted",
    )
    assert trading("halt", "a", check=False).returncode == 1  # modules: use pause
    trading("resume-halt", "tp/fleet")
    eventually(
        lambda: condition(kubectl, namespace, "a", "PortfolioHalted").get("status") == "False",
        timeout=30,
        what="member resumed",
    )
    tp = eventually(
        lambda: (
            (t := kubectl.json("get", "tp", "fleet", "-n", namespace))["status"].get("lastResume")
            and t
        ),
        timeout=30,
        what="resume recorded",
    )
    assert tp["status"]["lastResume"]["by"] == me and tp["spec"]["halted"] is False

    # resume-halt and reset-breaker on a module: annotations the operator consumes.
    trading("resume-halt", "a")
    trading("reset-breaker", "a")
    eventually(
        lambda: (
            not {"tradeplane.io/resume-halt", "tradeplane.io/reset-breaker"}
            & set(annotations(kubectl, namespace, "tm", "a"))
        ),
        timeout=30,
        what="the operator handled the annotations",
    )

    # promote: the annotation, with who; the operator takes it and, a paper run with no
    # wallet and no figures yet, refuses it in an Event naming who asked.
    trading("promote", "a")
    refusal = eventually(
        lambda: next(
            (
                e["message"]
                for e in events(kubectl, namespace, "a")
                if e["reason"] == "PromotionRefused"
            ),
            None,
        ),
        timeout=30,
        what="the promotion refused in an Event",
    )
    assert f"asked by {me} refused" in refusal, refusal
    assert "tradeplane.io/promote" not in annotations(kubectl, namespace, "tm", "a")
    assert module(kubectl, namespace, "a")["spec"]["mode"] == "paper"

    # --as: recorded as that user, and kubectl acts as them (RBAC applies).
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "trader"},
        "rules": [
            {
                "apiGroups": ["tradeplane.io"],
                "resources": ["tradingmodules", "tradingportfolios"],
                "verbs": ["get", "list", "patch"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "trader-alice"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "trader"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    kubectl.apply(json.dumps(role), namespace)
    kubectl.apply(json.dumps(binding), namespace)
    trading("pause", "a", "--as", "alice")
    doc = module(kubectl, namespace, "a")
    assert doc["spec"]["paused"] is True
    assert doc["metadata"]["annotations"]["tradeplane.io/changed-by"] == "alice"
    forbidden = trading("promote", "a", "--as", "mallory", check=False)
    assert forbidden.returncode == 1 and "forbidden" in forbidden.stderr.lower()

    # logs: kubectl logs of the module's runtime container, through the API server. The
    # kubelet stand-in serves no log endpoint, so the API server's answer names what
    # was asked for (on a real cluster this prints the log). The new allocation replaced
    # the pod (a spec change): ask once its successor runs.
    def replaced() -> str | None:
        pods = runtime_pods(kubectl, namespace)
        fresh = [
            p
            for p in pods
            if p["metadata"]["uid"] != first_uid and p["status"].get("phase") == "Running"
        ]
        running = status(kubectl, namespace, "a").get("phase") == "Running"
        return fresh[0]["metadata"]["name"] if running and len(pods) == len(fresh) == 1 else None

    pod = eventually(replaced, timeout=90, what="module a runs its replacement pod")
    logs = trading("logs", "a", "--tail", "5", check=False)
    if logs.returncode == 0:
        assert logs.stdout
    else:
        assert f"/{namespace}/{pod}/runtime" in logs.stderr, logs.stderr
