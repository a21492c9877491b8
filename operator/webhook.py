"""The validating admission webhook: fleet budgets and dependency cycles at apply time.

Imported (which registers the handlers with kopf) only when the operator serves the
webhook (`--webhook-listen`). kopf serves HTTPS with the certificate given
(`--webhook-cert-dir`: tls.crt, tls.key and optionally ca.crt, the layout of a
kubernetes.io/tls Secret, as cert-manager writes it).

Which writes reach the webhook is decided by the ValidatingWebhookConfiguration
(`webhook_configuration`), installed by the chart or, with `--webhook-configuration
NAME`, written by the operator once its server listens: only TradingModules that name a
portfolio or list dependencies, and portfolio budget changes, in the namespaces this
operator watches. The failure policy is Fail: while no operator answers, those writes are
refused — for money, "nobody checked the budget" must not mean "allowed". Writes to
other modules, and every status write, never wait on the webhook.

Each decision reads a fresh list of the namespace's modules (not a watch cache), holds
the namespace's lock while deciding, and remembers what it allowed until the list shows
it (`admission.Pending`), so parallel applies cannot overrun a budget together.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import kopf

from . import admission
from .admission import ModuleFacts, Pending, PortfolioView, Verdict, draws_capital
from .api import models
from .api import portfolio as papi
from .kube import Kube
from .portfolio import decimal
from .portfolio_handlers import FLEET

log = logging.getLogger(__name__)

MODULE_WEBHOOK = "tradingmodule.tradeplane.io"
PORTFOLIO_WEBHOOK = "tradingportfolio.tradeplane.io"
MODULE_HANDLER_ID = "validate-module"
PORTFOLIO_HANDLER_ID = "validate-portfolio"
DENIED_CODE = 422


@dataclass(frozen=True)
class WebhookOptions:
    listen_host: str
    listen_port: int
    cert_dir: Path
    url: str  # how the API server reaches the server, e.g. https://127.0.0.1:9443
    configuration: str | None  # the ValidatingWebhookConfiguration to write, if any
    namespaces: tuple[str, ...]  # the operator's namespace patterns; () for all


_options: WebhookOptions | None = None


def enable(options: WebhookOptions) -> None:
    """Called by the CLI before kopf starts."""
    global _options
    _options = options


# ---- the configuration -------------------------------------------------------------


def glob_regex(pattern: str) -> str:
    """A kopf namespace glob (`t-*`) as an RE2 regular expression for CEL."""
    # Namespace names are [a-z0-9-]: only the glob's own characters need translating.
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return "^" + "".join(parts) + "$"


def namespace_condition(namespaces: tuple[str, ...]) -> list[dict[str, str]]:
    """Only the namespaces this operator serves: a webhook for a namespace nobody
    watches would refuse (failure policy Fail) what no operator could check."""
    if not namespaces:
        return []
    if not any(c in p for p in namespaces for c in "*?!"):
        listed = ", ".join(f"'{p}'" for p in namespaces)
        expression = f"request.namespace in [{listed}]"
    else:
        alternatives = "|".join(f"({glob_regex(p)[1:-1]})" for p in namespaces)
        expression = f"request.namespace.matches(r'^({alternatives})$')"
    return [{"name": "watched-namespace", "expression": expression}]


def webhook_configuration(
    name: str, client_configs: Mapping[str, dict[str, Any]], namespaces: tuple[str, ...]
) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration; `client_configs` per handler id (url or
    service, with caBundle). Pure, so the chart's template can be checked against it."""
    scope = namespace_condition(namespaces)
    not_deleting = {
        "name": "not-being-deleted",
        "expression": "!has(object.metadata.deletionTimestamp)",
    }
    common = {
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "matchPolicy": "Equivalent",
        "timeoutSeconds": 10,
        "admissionReviewVersions": ["v1"],
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "tradeplane"}},
        "webhooks": [
            {
                "name": MODULE_WEBHOOK,
                "clientConfig": client_configs[MODULE_HANDLER_ID],
                "rules": [_rule(models.PLURAL)],
                "matchConditions": [
                    *scope,
                    not_deleting,
                    {
                        "name": "portfolio-or-dependencies",
                        "expression": "has(object.spec.portfolio) || "
                        "(has(object.spec.dependsOn) && size(object.spec.dependsOn) > 0)",
                    },
                ],
                **common,
            },
            {
                "name": PORTFOLIO_WEBHOOK,
                "clientConfig": client_configs[PORTFOLIO_HANDLER_ID],
                "rules": [_rule(papi.PLURAL)],
                "matchConditions": [
                    *scope,
                    not_deleting,
                    {
                        "name": "budget-changed",
                        "expression": "oldObject == null || "
                        "string(object.spec.budget) != string(oldObject.spec.budget)",
                    },
                ],
                **common,
            },
        ],
    }


def _rule(plural: str) -> dict[str, Any]:
    return {
        "apiGroups": [models.GROUP],
        "apiVersions": [models.VERSION],
        "resources": [plural],
        "operations": ["CREATE", "UPDATE"],
        "scope": "Namespaced",
    }


def url_configs(url: str, ca_bundle: bytes) -> dict[str, dict[str, Any]]:
    ca = base64.b64encode(ca_bundle).decode("ascii")
    base = url.rstrip("/")
    return {
        hid: {"url": f"{base}/{hid}", "caBundle": ca}
        for hid in (MODULE_HANDLER_ID, PORTFOLIO_HANDLER_ID)
    }


class ConfiguringServer(kopf.WebhookServer):
    """kopf's HTTPS server that calls `ready` once it listens (then the configuration
    can point at it without a window where the API server finds nobody)."""

    def __init__(self, ready: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ready = ready

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for client_config in super().__call__(fn):
            await self._ready()
            yield client_config


# ---- the decisions' inputs ---------------------------------------------------------


def module_facts(spec: Mapping[str, Any]) -> ModuleFacts:
    capital = spec.get("capital") or {}
    return ModuleFacts(
        portfolio=spec.get("portfolio") or None,
        allocation=decimal(capital.get("allocation")) if draws_capital(spec) else Decimal(0),
        depends_on=tuple(spec.get("dependsOn") or ()),
    )


@dataclass
class Gate:
    """Per-namespace locks and pending admissions."""

    objects: Kube
    locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    pending: defaultdict[str, Pending] = field(default_factory=lambda: defaultdict(Pending))

    async def facts(self, namespace: str, indexes: Mapping[str, Any]) -> dict[str, ModuleFacts]:
        """Every module's facts: from the watch index once kopf has populated it (no API
        call), else from a fresh list; with the pending admissions on top either way."""
        index = indexes.get("admission_facts")
        if FLEET.indexed and index is not None:
            listed = dict(index.get(namespace, []))
        else:
            items = await self.objects.list_objects(namespace, models.PLURAL)
            listed = {i["metadata"]["name"]: module_facts(i.get("spec") or {}) for i in items}
        return self.pending[namespace].merge(listed, time.monotonic())

    async def portfolio(
        self, namespace: str, name: str, indexes: Mapping[str, Any]
    ) -> PortfolioView | None:
        index = indexes.get("admission_portfolios")
        if FLEET.indexed and index is not None:
            found = next(iter(index.get((namespace, name), [])), None)
        else:
            found = None
        if found is None:  # not indexed yet, or just created: ask the API server
            items = await self.objects.list_objects(namespace, papi.PLURAL)
            body = next((i for i in items if i["metadata"]["name"] == name), None)
            if body is None:
                return None
            found = portfolio_view(name, body.get("spec") or {})
        budget = self.pending[namespace].budget(name, found.budget, time.monotonic())
        return PortfolioView(name=name, budget=budget, currency=found.currency)


def portfolio_view(name: str, spec: Mapping[str, Any]) -> PortfolioView:
    return PortfolioView(
        name=name,
        budget=decimal(spec.get("budget")),
        currency=str(spec.get("currency") or "USDC"),
    )


@kopf.index(models.GROUP, models.VERSION, models.PLURAL)
async def admission_facts(
    namespace: str | None, name: str | None, spec: kopf.Spec, **_: Any
) -> dict[str | None, tuple[str | None, ModuleFacts]]:
    """Each module's admission facts, per namespace (kept by kopf from the watch)."""
    return {namespace: (name, module_facts(spec))}


@kopf.index(models.GROUP, models.VERSION, papi.PLURAL)
async def admission_portfolios(
    namespace: str | None, name: str | None, spec: kopf.Spec, **_: Any
) -> dict[tuple[str | None, str | None], PortfolioView]:
    return {(namespace, name): portfolio_view(str(name), spec)}


def _gate(memo: Any) -> Gate:
    return memo["admission_gate"]  # type: ignore[no-any-return]


def _deny(verdict: Verdict) -> None:
    if not verdict.allowed:
        raise kopf.AdmissionError(verdict.message, code=DENIED_CODE)


@kopf.on.startup()
async def configure_webhook(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    assert _options is not None, "webhook.enable() was not called"
    options = _options
    objects = Kube(settings)
    memo["admission_gate"] = Gate(objects)
    cert_dir = options.cert_dir
    ca_file = cert_dir / "ca.crt"
    ca_bundle = (ca_file if ca_file.exists() else cert_dir / "tls.crt").read_bytes()

    async def ready() -> None:
        if options.configuration:
            manifest = webhook_configuration(
                options.configuration, url_configs(options.url, ca_bundle), options.namespaces
            )
            await objects.apply_webhook_configuration(manifest)
        log.info("admission webhook ready at %s", options.url)

    settings.admission.server = ConfiguringServer(
        ready,
        addr=options.listen_host,
        port=options.listen_port,
        certfile=str(cert_dir / "tls.crt"),
        pkeyfile=str(cert_dir / "tls.key"),
        cafile=str(ca_file) if ca_file.exists() else None,
    )
    settings.admission.managed = None  # the chart or `ready` owns the configuration


@kopf.on.validate(models.GROUP, models.VERSION, models.PLURAL, id=MODULE_HANDLER_ID)
async def validate_module(body: kopf.Body, dryrun: bool, memo: Any, **kwargs: Any) -> None:
    old: Mapping[str, Any] | None = kwargs.get("old")
    spec = dict(body.get("spec") or {})
    if old is not None and dict(old.get("spec") or {}) == spec:
        return  # metadata or finalizers only: nothing to check
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    facts = module_facts(spec)
    gate = _gate(memo)
    async with gate.locks[namespace]:
        known = await gate.facts(namespace, kwargs)
        if facts.depends_on:
            graph = {n: f.depends_on for n, f in known.items() if n != name}
            _deny(admission.admit_dependencies(name, list(facts.depends_on), graph))
        if facts.portfolio:
            view = await gate.portfolio(namespace, facts.portfolio, kwargs)
            capital = spec.get("capital") or {}
            currency = str(capital.get("currency") or "USDC")
            _deny(
                admission.admit_member(
                    module=name,
                    portfolio_name=facts.portfolio,
                    portfolio=view,
                    currency=currency,
                    requested=facts.allocation,
                    allocations=admission.allocations_in(known, facts.portfolio),
                )
            )
        if not dryrun:
            gate.pending[namespace].admit(name, facts, time.monotonic())


@kopf.on.validate(models.GROUP, models.VERSION, papi.PLURAL, id=PORTFOLIO_HANDLER_ID)
async def validate_portfolio(body: kopf.Body, dryrun: bool, memo: Any, **kwargs: Any) -> None:
    old: Mapping[str, Any] | None = kwargs.get("old")
    budget = decimal((body.get("spec") or {}).get("budget"), Decimal(-1))
    if old is not None and decimal((old.get("spec") or {}).get("budget")) == budget:
        return
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    gate = _gate(memo)
    async with gate.locks[namespace]:
        known = await gate.facts(namespace, kwargs)
        allocations = admission.allocations_in(known, name)
        _deny(admission.admit_budget(name=name, budget=budget, allocations=allocations))
        if not dryrun:
            gate.pending[namespace].admit_budget(name, budget, time.monotonic())
