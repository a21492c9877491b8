"""Admission decisions: the fleet budget and the dependency graph. Pure functions.

The validating webhook (`tradeplane_operator.webhook`) gathers what it knows (the
portfolio, the members' allocations from the watch index plus the admissions it let
through that the watch has not shown yet) and asks these functions; they never do I/O.

Why pending admissions: the webhook allows a write before the API server stores it, and
the watch shows it some milliseconds later. Two applies racing into one budget would
both see the old sum and both pass. Decisions are serialized per portfolio, and each
allowed change is remembered (`Pending`) until the index shows it or it expires, so the
second apply sees the first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ALLOCATION_FIELD = "spec.capital.allocation"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    message: str = ""

    @classmethod
    def allow(cls) -> Verdict:
        return cls(True)

    @classmethod
    def deny(cls, message: str) -> Verdict:
        return cls(False, message)


@dataclass(frozen=True)
class PortfolioView:
    """The parts of a TradingPortfolio an admission looks at."""

    name: str
    budget: Decimal
    currency: str


def draws_capital(spec: Mapping[str, Any]) -> bool:
    """Whether a module's allocation and PnL count in its portfolio: not a backtest's,
    which moves no money (it replays candles from its own starting balance)."""
    return spec.get("mode") != "backtest"


def fmt(amount: Decimal) -> str:
    """A decimal as people write it: no exponent, no trailing zeros."""
    text = format(amount.normalize(), "f")
    return text


def admit_member(
    *,
    module: str,
    portfolio_name: str,
    portfolio: PortfolioView | None,
    currency: str,
    requested: Decimal,
    allocations: Mapping[str, Decimal],
) -> Verdict:
    """May `module` allocate `requested` in `portfolio`?

    `allocations` are the current (or admitted, pending) allocations of every member,
    `module` included if it is one already. A change that does not raise the module's
    allocation in this portfolio is always allowed: reductions must never be blocked,
    even in a portfolio that is over budget (its budget was raced or lowered by hand).
    """
    if portfolio is None:
        return Verdict.deny(
            f'spec.portfolio: TradingPortfolio "{portfolio_name}" not found in this namespace'
        )
    if currency != portfolio.currency:
        return Verdict.deny(
            f"spec.capital.currency: {currency} differs from the currency of portfolio "
            f'"{portfolio.name}" ({portfolio.currency})'
        )
    current = allocations.get(module)
    if current is not None and requested <= current:
        return Verdict.allow()
    others = sum((a for name, a in allocations.items() if name != module), Decimal(0))
    if others + requested <= portfolio.budget:
        return Verdict.allow()
    available = portfolio.budget - others
    return Verdict.deny(
        f'{ALLOCATION_FIELD}: over the budget of portfolio "{portfolio.name}": '
        f"budget {fmt(portfolio.budget)} {portfolio.currency}, allocated {fmt(others)} "
        f"by other members, requested {fmt(requested)} "
        f"(available {fmt(max(available, Decimal(0)))})"
    )


def admit_budget(*, name: str, budget: Decimal, allocations: Mapping[str, Decimal]) -> Verdict:
    """May the portfolio's budget become `budget`? Not below what its members allocate."""
    allocated = sum(allocations.values(), Decimal(0))
    if budget >= allocated:
        return Verdict.allow()
    return Verdict.deny(
        f'spec.budget: {fmt(budget)} is below what the members of portfolio "{name}" '
        f"allocate ({fmt(allocated)} in {ALLOCATION_FIELD} of {len(allocations)} "
        "module(s)); lower their allocations first"
    )


def find_cycle(
    module: str, depends_on: Sequence[str], graph: Mapping[str, Sequence[str]]
) -> list[str] | None:
    """The dependency cycle through `module` if it depended on `depends_on`, else None.

    `graph` maps the other modules of the namespace to their dependsOn. The path is
    returned as module names, starting and ending with `module`.
    """
    edges = {**graph, module: list(depends_on)}
    path: list[str] = [module]
    seen: set[str] = set()

    def visit(node: str) -> list[str] | None:
        for nxt in edges.get(node, ()):
            if nxt == module:
                return [*path, module]
            if nxt in seen:
                continue
            seen.add(nxt)
            path.append(nxt)
            found = visit(nxt)
            if found:
                return found
            path.pop()
        return None

    return visit(module)


def admit_dependencies(
    module: str, depends_on: Sequence[str], graph: Mapping[str, Sequence[str]]
) -> Verdict:
    if module in depends_on:
        return Verdict.deny("spec.dependsOn: a module must not depend on itself")
    cycle = find_cycle(module, depends_on, graph)
    if cycle:
        return Verdict.deny(f"spec.dependsOn: dependency cycle {' -> '.join(cycle)}")
    return Verdict.allow()


@dataclass(frozen=True)
class ModuleFacts:
    """What admission needs of one TradingModule."""

    portfolio: str | None
    allocation: Decimal
    depends_on: tuple[str, ...] = ()


def allocations_in(facts: Mapping[str, ModuleFacts], portfolio: str) -> dict[str, Decimal]:
    return {name: f.allocation for name, f in facts.items() if f.portfolio == portfolio}


def dependency_graph(facts: Mapping[str, ModuleFacts]) -> dict[str, tuple[str, ...]]:
    return {name: f.depends_on for name, f in facts.items()}


@dataclass
class Pending:
    """Admissions of one namespace allowed but not yet seen in a fresh list.

    An admitted module's facts override what the list says until the list shows the
    same facts, or until they expire (a write the API server refused after admission
    must not hold budget forever). An admitted budget cut applies the same way.
    """

    ttl: float = 10.0
    modules: dict[str, tuple[ModuleFacts, float]] = field(default_factory=dict)
    budgets: dict[str, tuple[Decimal, float]] = field(default_factory=dict)

    def _expire(self, now: float) -> None:
        self.modules = {m: v for m, v in self.modules.items() if v[1] > now}
        self.budgets = {p: v for p, v in self.budgets.items() if v[1] > now}

    def merge(self, listed: Mapping[str, ModuleFacts], now: float) -> dict[str, ModuleFacts]:
        """The listed facts with the pending ones in place; those seen are dropped."""
        self._expire(now)
        merged = dict(listed)
        for name, (facts, _) in list(self.modules.items()):
            if listed.get(name) == facts:
                del self.modules[name]  # the API server has it now
            else:
                merged[name] = facts
        return merged

    def budget(self, portfolio: str, listed: Decimal, now: float) -> Decimal:
        """The listed budget, or an admitted lower one the list does not show yet."""
        self._expire(now)
        pending = self.budgets.get(portfolio)
        if pending is None:
            return listed
        if pending[0] == listed:
            del self.budgets[portfolio]
            return listed
        return min(listed, pending[0])

    def admit(self, name: str, facts: ModuleFacts, now: float) -> None:
        self.modules[name] = (facts, now + self.ttl)

    def admit_budget(self, portfolio: str, amount: Decimal, now: float) -> None:
        self.budgets[portfolio] = (amount, now + self.ttl)
