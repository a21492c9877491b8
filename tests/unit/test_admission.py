"""The admission decisions: budget, budget cuts, dependency cycles, pending admissions."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tradeplane_operator.admission import (
    ModuleFacts,
    Pending,
    PortfolioView,
    admit_budget,
    admit_dependencies,
    admit_member,
    allocations_in,
    find_cycle,
)

FLEET = PortfolioView(name="fleet", budget=Decimal(1000), currency="USDC")
D = Decimal


def member(module: str, requested: str, allocations: dict[str, str], **kw: object) -> bool:
    verdict = admit_member(
        module=module,
        portfolio_name="fleet",
        portfolio=kw.get("portfolio", FLEET),  # type: ignore[arg-type]
        currency=str(kw.get("currency", "USDC")),
        requested=D(requested),
        allocations={k: D(v) for k, v in allocations.items()},
    )
    return verdict.allowed


def test_over_budget_names_the_field_and_the_numbers() -> None:
    verdict = admit_member(
        module="b",
        portfolio_name="fleet",
        portfolio=FLEET,
        currency="USDC",
        requested=D("500.50"),
        allocations={"a": D(600)},
    )
    assert not verdict.allowed
    assert verdict.message.startswith("spec.capital.allocation: ")
    for part in ("budget 1000 USDC", "allocated 600", "requested 500.5", "available 400"):
        assert part in verdict.message


def test_exact_fit_is_allowed_and_one_unit_more_is_not() -> None:
    assert member("b", "400", {"a": "600"})
    assert not member("b", "400.000001", {"a": "600"})


def test_a_members_own_allocation_is_replaced_not_added() -> None:
    assert member("a", "1000", {"a": "600"})
    assert not member("a", "1001", {"a": "600"})


def test_reductions_pass_even_over_budget() -> None:
    assert member("a", "900", {"a": "950", "b": "500"})
    assert not member("a", "951", {"a": "950", "b": "500"})


def test_missing_portfolio_and_other_currency() -> None:
    missing = admit_member(
        module="a",
        portfolio_name="nowhere",
        portfolio=None,
        currency="USDC",
        requested=D(1),
        allocations={},
    )
    assert not missing.allowed and missing.message.startswith("spec.portfolio: ")
    assert not member("a", "1", {}, currency="USDT")


def test_budget_cut_below_allocated_is_refused() -> None:
    allocations = {"a": D(300), "b": D(300)}
    assert admit_budget(name="fleet", budget=D(600), allocations=allocations).allowed
    cut = admit_budget(name="fleet", budget=D("599.99"), allocations=allocations)
    assert not cut.allowed and cut.message.startswith("spec.budget: 599.99 is below")


def test_cycles() -> None:
    graph = {"a": ("b",), "b": ("c",), "d": ()}
    assert find_cycle("c", ["a"], graph) == ["c", "a", "b", "c"]
    assert find_cycle("c", ["d"], graph) is None
    assert not admit_dependencies("x", ["x"], {}).allowed
    assert admit_dependencies("e", ["a", "d"], graph).allowed
    assert "c -> a -> b -> c" in admit_dependencies("c", ["a"], graph).message


def test_pending_admissions_count_until_listed_or_expired() -> None:
    pending = Pending(ttl=10)
    facts = ModuleFacts(portfolio="fleet", allocation=D(100))
    pending.admit("m1", facts, now=0)
    merged = pending.merge({}, now=1)
    assert allocations_in(merged, "fleet") == {"m1": D(100)}
    # Listed as admitted: dropped from pending.
    assert pending.merge({"m1": facts}, now=2) == {"m1": facts}
    assert not pending.modules
    # Never listed (refused after admission): released after the TTL.
    pending.admit("m2", facts, now=3)
    assert "m2" in pending.merge({}, now=12)
    assert "m2" not in pending.merge({}, now=13.5)


def test_pending_budget_cut_applies_until_listed() -> None:
    pending = Pending(ttl=10)
    pending.admit_budget("fleet", D(600), now=0)
    assert pending.budget("fleet", D(1000), now=1) == D(600)
    assert pending.budget("fleet", D(600), now=2) == D(600)
    assert pending.budget("fleet", D(1000), now=3) == D(1000)  # seen, then raised again


@settings(max_examples=200, deadline=None)
@given(
    budget=st.integers(min_value=0, max_value=2000),
    requests=st.lists(
        st.tuples(st.sampled_from("abcdefgh"), st.integers(min_value=1, max_value=700)),
        max_size=40,
    ),
    seen=st.lists(st.booleans(), max_size=40),
)
def test_admitted_allocations_never_exceed_the_budget(
    budget: int, requests: list[tuple[str, int]], seen: list[bool]
) -> None:
    """Serialized decisions on (stored + pending) never admit a sum over the budget,
    whatever the watch has shown so far, as long as nothing admitted had been lowered."""
    portfolio = PortfolioView(name="fleet", budget=D(budget), currency="USDC")
    pending = Pending(ttl=1e9)
    stored: dict[str, ModuleFacts] = {}
    admitted: dict[str, Decimal] = {}
    for i, (name, amount) in enumerate(requests):
        facts = ModuleFacts(portfolio="fleet", allocation=D(amount))
        known = pending.merge(stored, now=i)
        verdict = admit_member(
            module=name,
            portfolio_name="fleet",
            portfolio=portfolio,
            currency="USDC",
            requested=facts.allocation,
            allocations=allocations_in(known, "fleet"),
        )
        if verdict.allowed:
            before = admitted.get(name)
            admitted[name] = facts.allocation
            pending.admit(name, facts, now=i)
            if before is None or facts.allocation > before:
                assert sum(admitted.values()) <= budget
        if i < len(seen) and seen[i]:
            stored = {n: ModuleFacts("fleet", a) for n, a in admitted.items()}
