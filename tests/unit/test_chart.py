"""The Helm chart (charts/tradeplane), rendered by the real, pinned helm (hack/helm).

No cluster here: what the chart renders in each mode, that the operator accepts the
command line it gets, that the chart's CRD is the generated one, and that no mode grants
Secrets, wildcards or RBAC powers. tests/cluster/test_chart_rbac.py proves the RBAC on a
real API server.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradeplane_operator.cli import parse_args

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tradeplane"
HELM = ROOT / "hack" / "helm"

MODES: dict[str, dict[str, Any]] = {
    "standalone": {},
    "peering": {"peering": {"enabled": True}},
    "namespaced": {"watchNamespaces": ["trading", "research"]},
    "namespaced+peering": {"watchNamespaces": ["trading"], "peering": {"enabled": True}},
    "everything": {
        "peering": {"enabled": True, "replicas": 3},
        "dashboard": {"enabled": True, "namespace": "monitoring"},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "runtime": {"databaseSecret": "tradeplane-db", "image": "registry.example/rt:1"},
    },
}


@pytest.fixture(scope="session")
def helm() -> str:
    """The pinned helm binary (built from the Go module proxy on first use, then cached)."""
    out = subprocess.run([str(HELM), "build"], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def render(helm: str, values: dict[str, Any], namespace: str = "tradeplane-system") -> list[Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(values, file)
        file.flush()
        out = subprocess.run(
            [helm, "template", "tp", str(CHART), "--namespace", namespace, "--values", file.name],
            check=True,
            capture_output=True,
            text=True,
        )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def one(docs: list[Any], kind: str) -> Any:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


def container(docs: list[Any]) -> Any:
    workload = next(d for d in docs if d["kind"] in ("Deployment", "StatefulSet"))
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env(docs: list[Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


def rules(docs: list[Any]) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [
        (d["kind"], d["metadata"].get("namespace"), rule)
        for d in docs
        if d["kind"] in ("ClusterRole", "Role")
        for rule in d["rules"]
    ]


def test_chart_crd_is_the_generated_crd() -> None:
    """`make manifests` copies crds/tradingmodules.yaml into the chart: never edit either."""
    generated = (ROOT / "crds" / "tradingmodules.yaml").read_bytes()
    assert (CHART / "crds" / "tradingmodules.yaml").read_bytes() == generated, (
        "charts/tradeplane/crds/tradingmodules.yaml differs from crds/tradingmodules.yaml: "
        "run `make manifests`"
    )


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == "0.1.0"
    import tradeplane_operator

    assert chart["appVersion"] == tradeplane_operator.__version__


def test_lint(helm: str) -> None:
    for values in MODES.values():
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
            yaml.safe_dump(values, file)
            file.flush()
            subprocess.run(
                [helm, "lint", "--strict", str(CHART), "--values", file.name],
                check=True,
                capture_output=True,
                text=True,
            )


@pytest.mark.parametrize("mode", MODES)
def test_no_mode_grants_secrets_wildcards_or_rbac_powers(helm: str, mode: str) -> None:
    for kind, _, rule in rules(render(helm, MODES[mode])):
        assert "nonResourceURLs" not in rule, (kind, rule)
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], (kind, rule)
        assert "secrets" not in rule["resources"], (kind, rule)
        assert not {"escalate", "bind", "impersonate", "update", "deletecollection"} & set(
            rule["verbs"]
        ), (kind, rule)
        assert not {"rbac.authorization.k8s.io", "apps", "authentication.k8s.io"} & set(
            rule["apiGroups"]
        ), (kind, rule)


def test_standalone_defaults(helm: str) -> None:
    docs = render(helm, {})
    assert sorted(d["kind"] for d in docs) == [
        "ClusterRole", "ClusterRoleBinding", "Deployment", "Secret", "Service", "Service",
        "ServiceAccount", "ValidatingWebhookConfiguration",
    ]  # fmt: skip
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two at once
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    c = container(docs)
    assert c["image"] == "tradeplane/tradeplane:0.1.0"
    assert c["command"][:2] == ["tradeplane-operator", "--all-namespaces"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["command"]
    assert not [a for a in c["command"] if a.startswith("--peering")]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "liveness": 8080,
        "metrics": 9090,
        "webhook": 9443,
    }
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    variables = env(docs)
    assert variables["TRADEPLANE_RUNTIME_IMAGE"] == c["image"]  # one image, both programs
    assert "TRADEPLANE_DATABASE_SECRET" not in variables
    service = next(d for d in docs if d["metadata"]["name"].endswith("-metrics"))
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # The selector must not catch the runtime pods the operator creates.
    assert "app.kubernetes.io/managed-by" not in service["spec"]["selector"]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": pod["serviceAccountName"],
            "namespace": "tradeplane-system",
        }
    ]


def test_command_line_is_one_the_operator_accepts(helm: str) -> None:
    for mode, values in MODES.items():
        command = container(render(helm, values))["command"]
        assert command[0] == "tradeplane-operator", mode
        # Kubernetes substitutes $(POD_INDEX) from the pod's index label.
        args = parse_args([a.replace("$(POD_INDEX)", "1") for a in command[1:]])
        assert args.all_namespaces == ("watchNamespaces" not in values), mode
        assert args.namespace == values.get("watchNamespaces", []), mode
        assert args.metrics_bind == "0.0.0.0:9090"


def test_namespaced_mode_uses_roles_in_each_namespace(helm: str) -> None:
    docs = render(helm, MODES["namespaced"])
    roles = {d["metadata"]["namespace"] for d in docs if d["kind"] == "Role"}
    bindings = {d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding"}
    assert roles == bindings == {"trading", "research"}
    cluster = one(docs, "ClusterRole")["rules"]
    # Cluster-wide only what kopf's observers need: CRDs and namespaces, read-only.
    assert {(r["resources"][0], tuple(r["verbs"])) for r in cluster} == {
        ("customresourcedefinitions", ("list", "watch")),
        ("namespaces", ("list", "watch")),
    }
    assert "--all-namespaces" not in container(docs)["command"]


def test_peering_mode(helm: str) -> None:
    docs = render(helm, MODES["peering"])
    assert not [d for d in docs if d["kind"] == "Deployment"]
    workload = one(docs, "StatefulSet")
    assert workload["spec"]["replicas"] == 2
    c = container(docs)
    assert "--peering=tradeplane" in c["command"]
    assert "--priority=$(POD_INDEX)" in c["command"]  # distinct priorities: equal ones all pause
    assert env(docs)["POD_INDEX"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
    }
    assert env(docs)["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    peering = one(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "tradeplane"
    peering_rules = [r for _, _, r in rules(docs) if r["apiGroups"] == ["kopf.dev"]]
    assert peering_rules == [
        {
            "apiGroups": ["kopf.dev"],
            "resources": ["clusterkopfpeerings"],
            "verbs": ["list", "watch"],
        },
        {
            "apiGroups": ["kopf.dev"],
            "resources": ["clusterkopfpeerings"],
            "resourceNames": ["tradeplane"],
            "verbs": ["patch"],
        },
    ]
    namespaced = render(helm, MODES["namespaced+peering"])
    assert one(namespaced, "KopfPeering")["metadata"]["namespace"] == "trading"
    assert [
        r["resources"] for kind, ns, r in rules(namespaced) if r["apiGroups"] == ["kopf.dev"]
    ] == [["kopfpeerings"], ["kopfpeerings"]]


def test_peering_crds_preserve_status() -> None:
    crds = list(yaml.safe_load_all((CHART / "crds" / "kopfpeerings.yaml").read_text()))
    assert {(c["spec"]["names"]["kind"], c["spec"]["scope"]) for c in crds} == {
        ("ClusterKopfPeering", "Cluster"),
        ("KopfPeering", "Namespaced"),
    }
    for crd in crds:
        assert crd["spec"]["group"] == "kopf.dev"
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1"
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def test_everything_switched_on(helm: str) -> None:
    docs = render(helm, MODES["everything"])
    assert one(docs, "StatefulSet")["spec"]["replicas"] == 3
    variables = env(docs)
    assert variables["TRADEPLANE_DATABASE_SECRET"] == "tradeplane-db"
    assert variables["TRADEPLANE_DATABASE_SECRET_KEY"] == "url"
    assert variables["TRADEPLANE_RUNTIME_IMAGE"] == "registry.example/rt:1"
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    dashboard = one(docs, "ConfigMap")
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(dashboard["data"]["tradeplane.json"])
    assert shipped == json.loads((CHART / "dashboards" / "tradeplane.json").read_text())


def test_optional_objects_are_off_by_default(helm: str) -> None:
    kinds = {d["kind"] for d in render(helm, {})}
    assert not kinds & {"ServiceMonitor", "ConfigMap", "ClusterKopfPeering", "KopfPeering"}


def test_migration_job_is_a_pre_upgrade_hook_reading_the_url_by_reference(helm: str) -> None:
    assert not [d for d in render(helm, {}) if d["kind"] == "Job"]
    job = one(render(helm, {"migrations": {"secret": "tradeplane-db"}}), "Job")
    hooks = job["metadata"]["annotations"]["helm.sh/hook"]
    assert set(hooks.split(",")) == {"pre-install", "pre-upgrade"}
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["command"] == ["tradeplane-runtime", "migrate"]
    (url,) = migrate["env"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "tradeplane-db", "key": "url"}


def _webhooks_without_client(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in w.items() if k != "clientConfig"} for w in config["webhooks"]]


@pytest.mark.parametrize("mode", ["standalone", "namespaced"])
def test_webhook_configuration_is_the_operators(helm: str, mode: str) -> None:
    """The chart's ValidatingWebhookConfiguration is the one the operator would write
    (operator/webhook.py), pointed at the chart's Service with the chart's CA."""
    from tradeplane_operator import webhook

    values = MODES[mode]
    docs = render(helm, values)
    config = one(docs, "ValidatingWebhookConfiguration")
    namespaces = tuple(values.get("watchNamespaces", []))
    expected = webhook.webhook_configuration(
        "x", {h: {} for h in (webhook.MODULE_HANDLER_ID, webhook.PORTFOLIO_HANDLER_ID)}, namespaces
    )
    assert _webhooks_without_client(config) == _webhooks_without_client(expected)
    assert all(w["failurePolicy"] == "Fail" for w in config["webhooks"])
    secret = one(docs, "Secret")
    service = next(d for d in docs if d["metadata"]["name"].endswith("-webhook"))
    paths = ["/validate-module", "/validate-portfolio"]
    for hook, path in zip(config["webhooks"], paths, strict=True):
        client = hook["clientConfig"]
        assert client["service"] == {
            "name": service["metadata"]["name"],
            "namespace": "tradeplane-system",
            "path": path,
            "port": 443,
        }
        assert client["caBundle"] == secret["data"]["ca.crt"]
    command = container(docs)["command"]
    assert "--webhook-listen=0.0.0.0:9443" in command
    assert "--webhook-cert-dir=/etc/tradeplane/webhook" in command
    assert not [a for a in command if a.startswith("--webhook-configuration")]  # the chart's


def test_webhook_with_cert_manager_and_off(helm: str) -> None:
    docs = render(helm, {"webhook": {"certManager": {"enabled": True}}})
    kinds = {d["kind"] for d in docs}
    assert {"Issuer", "Certificate"} <= kinds and "Secret" not in kinds
    config = one(docs, "ValidatingWebhookConfiguration")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].endswith(
        "/tp-tradeplane-webhook"
    )
    assert all("caBundle" not in w["clientConfig"] for w in config["webhooks"])
    off = render(helm, {"webhook": {"enabled": False}})
    assert not {"ValidatingWebhookConfiguration", "Secret"} & {d["kind"] for d in off}
    assert not [a for a in container(off)["command"] if a.startswith("--webhook")]
