"""Generate the CustomResourceDefinition from the pydantic models.

Pydantic emits JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema: no
`$ref`, no `anyOf` with null, no `title`, no `additionalProperties: false`, and defaults
of the declared type. This module converts one into the other, so the models stay the
single definition of the API (`python -m tradeplane_operator.api.crd > crds/...`).
"""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import yaml

from . import models, portfolio

Schema = dict[str, Any]

_DROP = {"title", "additionalProperties", "$defs"}


def _resolve(node: Any, defs: dict[str, Schema]) -> Any:
    """Inline every `$ref` (Kubernetes schemas cannot reference)."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    return {key: _resolve(value, defs) for key, value in node.items()}


def _strip_null(schema: Schema) -> Schema:
    """`X | None` becomes plain X: absent means unset in Kubernetes."""
    any_of = schema.get("anyOf")
    if any_of:
        rest = [s for s in any_of if s.get("type") != "null"]
        if len(rest) == 1:
            merged = {**rest[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
            if merged.get("default", ...) is None:
                merged.pop("default")
            return merged
    return schema


def _typed_default(schema: Schema) -> None:
    """Pydantic writes Decimal defaults as strings; numbers must default to numbers."""
    default = schema.get("default")
    if schema.get("type") == "number" and isinstance(default, str):
        value = Decimal(default)
        schema["default"] = int(value) if value == value.to_integral_value() else float(value)


def structural(node: Any) -> Any:
    """Turn an inlined pydantic JSON schema into a Kubernetes structural schema."""
    if isinstance(node, list):
        return [structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = _strip_null(node)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: structural(prop) for name, prop in value.items()}
        elif key in {"items", "additionalProperties"}:
            out[key] = structural(value)
        else:
            out[key] = value
    if "additionalProperties" in node and isinstance(node["additionalProperties"], dict):
        out["additionalProperties"] = structural(node["additionalProperties"])
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("type", "object")
        out.pop("additionalProperties", None)
    _typed_default(out)
    # Nested objects whose fields all have defaults get those defaults spelled out, so
    # that `kubectl get -o yaml` shows the settings in force (and CEL rules on them
    # see every field: the API server validates a default as written).
    for name, prop in out.get("properties", {}).items():
        if (
            prop.get("type") == "object"
            and "properties" in prop
            and name not in out.get("required", [])
            and not prop.get("required")
            and "default" not in prop
        ):
            prop["default"] = _defaults_of(prop)
    return out


def _defaults_of(schema: Schema) -> dict[str, Any]:
    return {
        name: prop["default"]
        for name, prop in schema.get("properties", {}).items()
        if "default" in prop
    }


def model_schema(model: type[models.ApiModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    return structural(_resolve(raw, defs))  # type: ignore[no-any-return]


def _no_default_for(schema: Schema, names: set[str]) -> Schema:
    for name in names:
        schema.get("properties", {}).get(name, {}).pop("default", None)
    return schema


SELF_DEPENDENCY_RULE = {
    "rule": "!has(self.spec.dependsOn) || !(self.metadata.name in self.spec.dependsOn)",
    "message": "spec.dependsOn must not list the module itself",
    "fieldPath": ".spec.dependsOn",
}


def custom_resource_definition() -> Schema:
    return _definition(
        kind=models.KIND,
        plural=models.PLURAL,
        singular=models.SINGULAR,
        short_names=models.SHORT_NAMES,
        printer_columns=models.PRINTER_COLUMNS,
        spec_model=models.TradingModuleSpec,
        status_model=models.TradingModuleStatus,
        description="A trading module run by the Tradeplane operator.",
        # At the root, CEL sees the name and the spec together.
        root_rules=[SELF_DEPENDENCY_RULE],
    )


def portfolio_definition() -> Schema:
    return _definition(
        kind=portfolio.KIND,
        plural=portfolio.PLURAL,
        singular=portfolio.SINGULAR,
        short_names=portfolio.SHORT_NAMES,
        printer_columns=portfolio.PRINTER_COLUMNS,
        spec_model=portfolio.TradingPortfolioSpec,
        status_model=portfolio.TradingPortfolioStatus,
        description="A capital budget and kill switch for a fleet "
        "of TradingModules (members name it in spec.portfolio).",
    )


def _definition(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    printer_columns: list[dict[str, Any]],
    spec_model: type[models.ApiModel],
    status_model: type[models.ApiModel],
    description: str,
    root_rules: list[dict[str, str]] | None = None,
) -> Schema:
    """One namespaced kind of group tradeplane.io with a status subresource."""
    spec = model_schema(spec_model)
    status = model_schema(status_model)
    # Status fields are written by the operator alone; defaults there would only hide
    # "never observed" behind a zero.
    status = _no_default_for(status, set(status.get("properties", {})))
    root: Schema = {"type": "object", "description": description, "required": ["spec"]}
    if root_rules:
        root["x-kubernetes-validations"] = root_rules
    root["properties"] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec,
        "status": status,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{models.GROUP}"},
        "spec": {
            "group": models.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": models.CATEGORIES,
            },
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


HEADER = "# Generated from operator/api/models.py by `make manifests`. Do not edit.\n"
PORTFOLIO_HEADER = "# Generated from operator/api/portfolio.py by `make manifests`. Do not edit.\n"


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _yaml(doc: Schema) -> str:
    return yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, width=100)


def render() -> str:
    return HEADER + _yaml(custom_resource_definition())


def render_portfolio() -> str:
    return PORTFOLIO_HEADER + _yaml(portfolio_definition())


def main() -> None:
    """`python -m ...crd` writes the TradingModule CRD; `... portfolio` the portfolio's."""
    which = sys.argv[1] if len(sys.argv) > 1 else "module"
    sys.stdout.write(render_portfolio() if which == "portfolio" else render())


if __name__ == "__main__":
    main()
