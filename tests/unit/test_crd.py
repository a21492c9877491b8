"""The CRD is generated from the models; the checked-in copy must match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tradeplane_operator.api import crd

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "tradingmodules.yaml"


def test_checked_in_crd_is_not_stale() -> None:
    assert CRD_FILE.read_text() == crd.render(), "crds/ is stale: run `make manifests`"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.get("properties", {}).items():
            found.extend(_walk(value, f"{path}.{key}"))
        if isinstance(node.get("items"), dict):
            found.extend(_walk(node["items"], f"{path}[]"))
    return found


def test_schema_is_structural() -> None:
    doc = yaml.safe_load(CRD_FILE.read_text())
    schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        if not node.get("x-kubernetes-int-or-string"):
            assert "type" in node, f"{path} has no type"


def test_names_and_columns() -> None:
    doc = yaml.safe_load(CRD_FILE.read_text())
    names = doc["spec"]["names"]
    assert doc["metadata"]["name"] == "tradingmodules.tradeplane.io"
    assert names["shortNames"] == ["tm"] and names["categories"] == ["trading"]
    version = doc["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"].upper() for c in version["additionalPrinterColumns"]]
    for wanted in ["TYPE", "MODE", "PHASE", "HEALTH", "CAPITAL", "PNL", "RESTARTS", "AGE"]:
        assert wanted in columns


def test_defaults_are_typed() -> None:
    doc = yaml.safe_load(CRD_FILE.read_text())
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    risk = spec["properties"]["risk"]["properties"]
    assert risk["maxDrawdownPercent"]["default"] == 20
    assert spec["properties"]["health"]["default"]["backoff"]["maxSeconds"] == 300
    assert spec["properties"]["mode"]["default"] == "paper"


PORTFOLIO_CRD = CRD_FILE.parent / "tradingportfolios.yaml"


def test_checked_in_portfolio_crd_is_not_stale() -> None:
    assert PORTFOLIO_CRD.read_text() == crd.render_portfolio(), "run `make manifests`"
    chart_copy = CRD_FILE.parents[1] / "charts" / "tradeplane" / "crds" / PORTFOLIO_CRD.name
    assert chart_copy.read_text() == PORTFOLIO_CRD.read_text()


def test_portfolio_names_and_columns() -> None:
    doc = yaml.safe_load(PORTFOLIO_CRD.read_text())
    assert doc["metadata"]["name"] == "tradingportfolios.tradeplane.io"
    assert doc["spec"]["names"]["shortNames"] == ["tp"]
    version = doc["spec"]["versions"][0]
    columns = [c["name"].upper() for c in version["additionalPrinterColumns"]]
    assert columns == ["BUDGET", "ALLOCATED", "AVAILABLE", "MEMBERS", "PNL", "HALTED", "AGE"]
    schema = version["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path


def test_self_dependency_rule_is_at_the_root() -> None:
    doc = yaml.safe_load(CRD_FILE.read_text())
    root = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = [r["rule"] for r in root["x-kubernetes-validations"]]
    assert any("self.metadata.name in self.spec.dependsOn" in r for r in rules)
