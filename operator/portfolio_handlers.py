"""kopf handlers for TradingPortfolios, and the members' side of a portfolio halt.

- `portfolio_members` (index): each module with `spec.portfolio`, per portfolio;
  `portfolio_halts` (index): what each portfolio wants of its members.
- One daemon per portfolio: observe (its members from the index, their latest metrics
  from the module daemons of this process) -> `portfolio.decide_portfolio` -> write the
  status if it changed, events, remove a handled annotation.
- `after_decide`, called by each module's daemon pass: the member's PortfolioHalted
  condition, and telling a running runtime to enter or leave the portfolio halt (a POST
  to its control endpoint) whenever its last report disagrees. No pod is restarted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf
from pydantic import ValidationError

from . import decisions, portfolio
from .api import models
from .api import portfolio as papi
from .api.models import MetricsSummary, TradingModuleSpec
from .kube import Kube
from .probe import post_control
from .resources import ModuleRef
from .waker import Waker, stop_signal

log = logging.getLogger(__name__)

PORTFOLIO = (models.GROUP, models.VERSION, papi.PLURAL)
MODULE = (models.GROUP, models.VERSION, models.PLURAL)
PASS_SECONDS = 5.0  # a portfolio looks again at least this often (members' PnL)


@dataclass
class Fleet:
    """Process-wide: what the module daemons learnt that the portfolio daemons use."""

    metrics: dict[str, MetricsSummary] = field(default_factory=dict)  # module uid ->
    reported: dict[str, str | None] = field(default_factory=dict)  # pod uid -> its halt
    wakers: dict[tuple[str, str], Waker] = field(default_factory=dict)
    objects: Kube | None = None
    # kopf calls no handler (but indexers) before every index is populated: once one
    # has run, the indexes hold every object (admission may then trust them).
    indexed: bool = False

    def wake(self, namespace: str, name: str | None) -> None:
        if name and (waker := self.wakers.get((namespace, name))) is not None:
            waker.set()


FLEET = Fleet()


@kopf.on.startup()
async def configure_portfolios(settings: kopf.OperatorSettings, **_: Any) -> None:
    FLEET.objects = Kube(settings)


# Index and event handlers are `async def` (see handlers.py): kopf runs a plain `def` in
# a worker thread, a hop per module event at 1,000 modules, and the wakers below are
# asyncio Events, which must be set from the loop's own thread.
@kopf.index(*MODULE)
async def portfolio_members(
    namespace: str | None, spec: Mapping[str, Any], body: kopf.Body, **_: Any
) -> dict[tuple[str | None, str], portfolio.Member] | None:
    name = spec.get("portfolio")
    if not name:
        return None
    return {(namespace, str(name)): portfolio.Member.from_body(body)}


@kopf.index(*PORTFOLIO)
async def portfolio_halts(
    namespace: str | None,
    name: str | None,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    **_: Any,
) -> dict[tuple[str | None, str | None], str | None]:
    return {(namespace, name): portfolio.desired_halt(spec, status)}


@kopf.on.event(*PORTFOLIO)
async def portfolio_changed(namespace: str | None, name: str, memo: Any, **kwargs: Any) -> None:
    if namespace is None:
        return
    FLEET.indexed = True
    FLEET.wake(namespace, name)
    runtime = memo.get("runtime")
    for member in kwargs["portfolio_members"].get((namespace, name), []):
        if runtime is not None:
            runtime.wake(member.uid)


@kopf.on.event(*MODULE)
async def member_changed(namespace: str | None, spec: kopf.Spec, **kwargs: Any) -> None:
    FLEET.indexed = True
    if namespace is None:
        return
    FLEET.wake(namespace, spec.get("portfolio"))
    old = kwargs.get("old")
    if old:  # it may have left a portfolio
        FLEET.wake(namespace, (old.get("spec") or {}).get("portfolio"))


# ---- the portfolio's daemon --------------------------------------------------------


def _status_of(body: kopf.Body) -> papi.TradingPortfolioStatus:
    try:
        return papi.TradingPortfolioStatus.model_validate(dict(body.get("status") or {}))
    except ValidationError:
        return papi.TradingPortfolioStatus()


def _members(index: kopf.Index[Any, Any], namespace: str, name: str) -> list[portfolio.Member]:
    members = []
    for member in index.get((namespace, name), []):
        latest = FLEET.metrics.get(member.uid)
        if latest is not None:  # fresher than the status (written at most once a minute)
            member = portfolio.Member(
                name=member.name,
                uid=member.uid,
                allocation=member.allocation,
                phase=member.phase,
                realized_pnl=portfolio.decimal(latest.realized_pnl),
                unrealized_pnl=portfolio.decimal(latest.unrealized_pnl),
            )
        members.append(member)
    return sorted(members, key=lambda m: m.name)


async def _portfolio_pass(
    body: kopf.Body, index: kopf.Index[Any, Any], written: dict[str, Any] | None
) -> dict[str, Any] | None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        spec = papi.TradingPortfolioSpec.model_validate(dict(body["spec"]))
    except ValidationError as error:
        log.error("portfolio %s/%s has an invalid spec: %s", namespace, name, error)
        return written
    current = _status_of(body)
    if written is not None:
        current = papi.TradingPortfolioStatus.model_validate(written)
    plan = portfolio.decide_portfolio(
        portfolio.PortfolioObservation(
            name=name,
            generation=int(meta.get("generation") or 0),
            spec=spec,
            status=current,
            members=_members(index, namespace, name),
            now=datetime.now(UTC),
            annotations=dict(meta.get("annotations") or {}),
        )
    )
    assert FLEET.objects is not None
    for key in plan.remove_annotations:
        await FLEET.objects.remove_annotation(namespace, name, key, plural=papi.PLURAL)
    doc = plan.status.model_dump(mode="json", by_alias=True)
    before = written if written is not None else current.model_dump(mode="json", by_alias=True)
    if doc != before:  # written only when it changed
        await FLEET.objects.patch_status(namespace, name, doc, plural=papi.PLURAL)
    for event in plan.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    return doc


@kopf.daemon(*PORTFOLIO, cancellation_timeout=10.0)
async def run_portfolio(
    stopped: kopf.DaemonStopped,
    body: kopf.Body,
    namespace: str | None,
    name: str,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    assert namespace is not None  # portfolios are namespaced
    portfolio_members = kwargs["portfolio_members"]
    waker = FLEET.wakers.setdefault((namespace, name), Waker())
    written: dict[str, Any] | None = None
    try:
        with stop_signal(stopped) as stop:
            while not stopped:
                waker.clear()
                try:
                    written = await _portfolio_pass(body, portfolio_members, written)
                except Exception:  # retried at the next pass; the daemon must live on
                    logger.exception("portfolio pass failed; retrying")
                await waker.sleep(stop, PASS_SECONDS)
    finally:
        FLEET.wakers.pop((namespace, name), None)


# ---- the members' side -------------------------------------------------------------


def desired_for(indexes: Mapping[str, Any], namespace: str, spec: TradingModuleSpec) -> str | None:
    """The portfolio halt this module must be under (None: not halted)."""
    if not spec.portfolio:
        return None
    halts = indexes.get("portfolio_halts")
    if halts is None:
        return None
    return next(iter(halts.get((namespace, spec.portfolio), [])), None)


async def _control(
    session: aiohttp.ClientSession, url: str, reason: str | None, limit: float
) -> str | bool | None:
    """POST the halt; the runtime's resulting halt reason, or False if it did not answer."""
    message = f"portfolio halted: {reason}" if reason else ""
    body = await post_control(session, url, {"reason": reason, "message": message}, limit)
    if body is None:
        return False
    halt = body.get("portfolioHalt")
    return str(halt["reason"]) if isinstance(halt, dict) and halt.get("reason") else None


async def after_decide(
    rt: Any,
    module: ModuleRef,
    spec: TradingModuleSpec,
    pod: decisions.PodView | None,
    probe: decisions.Probe | None,
    plan: decisions.Plan,
    desired: str | None,
    logger: kopf.Logger,
) -> None:
    if not spec.portfolio:
        FLEET.metrics.pop(module.uid, None)  # only members' metrics are summed
    elif plan.status.metrics is not None:
        previous = FLEET.metrics.get(module.uid)
        FLEET.metrics[module.uid] = plan.status.metrics
        if previous != plan.status.metrics:
            FLEET.wake(module.namespace, spec.portfolio)
    plan.status.conditions = portfolio.member_condition(
        list(plan.status.conditions),
        portfolio=spec.portfolio,
        desired=desired,
        generation=module.generation,
        now=datetime.now(UTC),
    )
    if pod is None:  # not running: nothing to tell
        return
    if probe is not None and probe.ok:
        FLEET.reported[pod.uid] = probe.portfolio_halt
    known = pod.uid in FLEET.reported
    control = portfolio.runtime_control(desired, FLEET.reported.get(pod.uid), known)
    if control is None:
        return
    url = f"http://{pod.ip}:{rt.settings.runtime_port}/control/portfolio-halt"
    result = await _control(rt.session, url, control.reason, spec.health.timeout_seconds)
    if result is False:
        FLEET.reported.pop(pod.uid, None)  # unknown: say it again next pass
        logger.warning("runtime %s did not take the portfolio halt %s", pod.name, control.reason)
        return
    FLEET.reported[pod.uid] = result if isinstance(result, str) else None
    logger.info("runtime %s portfolio halt: %s", pod.name, control.reason or "lifted")
