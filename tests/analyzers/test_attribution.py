"""Per-trace attribution: hand-computed fixtures, the exact sum invariant on generated graphs,
and the equal split checked against brute-force Shapley values."""

from __future__ import annotations

import dataclasses
import itertools
import math
from fractions import Fraction
from typing import Any

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzers.attribution import (
    DEAD_END,
    FINAL,
    allocate,
    attribute_trace,
    causal_sets,
    final_output,
)
from analyzers.findings import Finding
from tracestore.store.graph import build_trace_graph


def node(node_id: str, kind: str, start: float, *, cost: float | None = 0.0,
         parent: str | None = "R",
         **kw: Any) -> dict[str, Any]:
    return {"node_id": node_id, "kind": kind, "start": start, "end": start + 0.5,
            "cost_usd": cost, "parent_id": parent, "name": node_id, **kw}


def finding(code: str, node_ids: tuple[str, ...], usd: float) -> Finding:
    return Finding.create(trace_id="t", workflow="w", code=code, node_ids=node_ids,
                          wasted_tokens=0, wasted_cost_usd=usd, savings_usd=usd, confidence=1.0,
                          evidence={}, message="")


def shared_retrieval_graph() -> nx.DiGraph:
    """One retrieval feeding two answers, each with its own outcome, and an unused tool."""
    return build_trace_graph({"trace_id": "t"}, [
        node("R", "agent", 0.0, parent=None),
        node("r", "retrieval", 1.0, cost=0.30, documents=[{"id": "d1"}]),
        node("a1", "llm", 2.0, cost=0.50, uses=["d1"]),
        node("o1", "outcome", 3.0, uses=["a1"], outcome_status="success"),
        node("x", "tool", 4.0, cost=0.10),
        node("a2", "llm", 5.0, cost=0.70, uses=["d1"]),
        node("o2", "outcome", 6.0, uses=["a2"], outcome_status="success"),
    ], [])


def test_shared_retrieval_is_split_equally_between_two_outcomes() -> None:
    G = shared_retrieval_graph()
    sets = causal_sets(G)
    assert sets["o1"] == {"o1", "a1", "r", "R"}
    assert sets["o2"] == {"o2", "a2", "r", "R"}
    a = attribute_trace(G)
    # o1: half of r (0.15) + a1 (0.50); o2: half of r (0.15) + a2 (0.70); x is off every
    # causal path but no finding explains it: not waste, shared equally (0.05 each).
    assert math.isclose(a.per_outcome_usd["o1"], 0.70)
    assert math.isclose(a.per_outcome_usd["o2"], 0.90)
    assert dict(a.waste_usd) == {} and math.isclose(a.off_path_usd, 0.10)
    assert math.isclose(a.productive_usd, 1.60) and math.isclose(a.cost_usd, 1.60)


def test_retried_attempt_is_waste_and_findings_are_booked_by_code() -> None:
    G = build_trace_graph({"trace_id": "t"}, [
        node("R", "agent", 0.0, parent=None),
        node("q", "retrieval", 1.0, cost=0.25),
        node("f1", "llm", 2.0, cost=1.00, status="error"),
        node("f2", "llm", 3.0, cost=1.00, retry_of="f1"),
        node("t1", "tool", 4.0, cost=0.50),
        node("t2", "tool", 5.0, cost=0.50),
        node("fin", "llm", 6.0, cost=2.00),
    ], [])
    # f2 retried f1 and then failed too; fin ran after; nothing annotated data flow.
    G.add_edge("f2", "fin", kinds=("retry_of",), inferred=False)
    fs = [finding("churn.exact_repeat", ("t2",), 0.50),
          finding("bloat.unused_context", ("fin",), 0.75)]
    a = attribute_trace(G, fs)
    # Causal chain (previous-sibling rule, superseded attempts skipped): fin > t2 > t1 > q.
    assert a.path == ("R", "q", "t1", "t2", "fin")
    # the superseded attempts are off the path; no finding books them, so they are not waste
    assert dict(a.waste_usd) == {"bloat.unused_context": 0.75, "churn.exact_repeat": 0.50}
    assert math.isclose(a.off_path_usd, 2.00)
    assert math.isclose(a.productive_usd, 0.25 + 0.50 + 1.25 + 2.00)
    assert math.isclose(a.productive_usd + a.waste_total_usd, a.cost_usd)


def test_final_output_without_outcome_nodes_prefers_ok_latest_leaf() -> None:
    G = build_trace_graph({"trace_id": "t"}, [
        node("R", "agent", 0.0, parent=None),
        node("l", "llm", 1.0, cost=1.0),
        node("bad", "tool", 2.0, cost=0.5, status="error"),
    ], [])
    assert final_output(G) == "l"
    a = attribute_trace(G)
    assert a.seeds == (FINAL,) and a.path == ("R", "l")
    assert dict(a.waste_usd) == {} and a.off_path_usd == 0.5


def test_waste_is_exactly_the_findings_booking() -> None:
    """Off-path cost is never booked as waste: attribution's waste by code is what the
    findings book (here a dead end the analyzer found, beside an unexplained failed call)."""
    G = build_trace_graph({"trace_id": "t"}, [
        node("R", "agent", 0.0, parent=None),
        node("r", "retrieval", 0.5, cost=0.125, documents=[{"id": "d1"}]),
        node("draft", "llm", 1.0, cost=0.25),
        node("bad", "llm", 2.0, cost=0.5, status="error"),
        node("l", "llm", 3.0, cost=1.0, uses=["d1"]),
    ], [])
    al = allocate(G, [finding(DEAD_END, ("draft",), 0.25)])
    assert al.causal == {"R", "r", "l"}
    assert al.waste == {DEAD_END: Fraction(0.25)} and al.off_path == Fraction(0.5)
    assert al.productive == {FINAL: Fraction(1.625)}


def test_finding_waste_never_exceeds_node_cost() -> None:
    G = build_trace_graph({"trace_id": "t"}, [node("l", "llm", 1.0, cost=1.0, parent=None)], [])
    al = allocate(G, [finding("churn.reprompt", ("l", "missing"), 5.0)])
    assert al.waste == {"churn.reprompt": Fraction(1.0)} and al.productive == {FINAL: 0}


@st.composite
def random_traces(draw: st.DrawFn) -> tuple[nx.DiGraph, list[Finding]]:
    n = draw(st.integers(1, 14))
    kinds = st.sampled_from(["llm", "tool", "retrieval", "agent", "chain", "outcome", "human"])
    costs = st.one_of(st.just(0.0), st.floats(1e-9, 5.0, allow_nan=False), st.none())
    nodes = []
    for i in range(n):
        parent = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        nodes.append(node(
            f"n{i}", draw(kinds), float(draw(st.integers(0, 20))), cost=draw(costs),
            parent=None if parent is None else f"n{parent}",
            uses=[f"n{j}" for j in draw(st.lists(st.integers(0, n - 1), max_size=3))],
            retry_of=draw(st.one_of(st.none(), st.just(f"n{i - 1}"))) if i else None,
            status=draw(st.sampled_from(["ok", "error"])),
        ))
    G = build_trace_graph({"trace_id": "t"}, nodes, [])
    codes = st.sampled_from(["churn.exact_repeat", "bloat.over_retrieval",
                             "routing.overpowered_model"])
    fs = []
    for _ in range(draw(st.integers(0, 3))):
        ids = tuple(draw(st.lists(st.sampled_from(list(G.nodes)), min_size=1, max_size=3)))
        f = finding(draw(codes), ids, draw(st.floats(0, 3, allow_nan=False)))
        if draw(st.booleans()):  # the analyzers' per-node booking, possibly above node cost
            f = dataclasses.replace(f, evidence={"waste_by_node": {
                n: draw(st.floats(0, 3, allow_nan=False)) for n in ids}})
        fs.append(f)
    return G, fs


@settings(max_examples=120, deadline=None)
@given(random_traces())
def test_parts_sum_exactly_to_trace_cost(trace: tuple[nx.DiGraph, list[Finding]]) -> None:
    G, fs = trace
    al = allocate(G, fs)
    total = sum(al.productive.values(), Fraction(0)) + sum(al.waste.values(), Fraction(0))
    assert total == al.cost
    assert al.cost == sum((Fraction(c) for _, c in G.nodes(data="cost_usd") if c), Fraction(0))
    assert all(v >= 0 for v in (*al.productive.values(), *al.waste.values()))
    a = attribute_trace(G, fs)
    assert math.isclose(a.productive_usd + a.waste_total_usd, a.cost_usd, rel_tol=1e-12,
                        abs_tol=1e-15)


def brute_force_shapley(sets: dict[str, frozenset[str]], cost: dict[str, Fraction]
                        ) -> dict[str, Fraction]:
    """Average marginal cost over all orderings, C(S) = cost of the union of causal sets."""
    players = list(sets)

    def C(S: tuple[str, ...]) -> Fraction:
        covered = set().union(*(sets[p] for p in S)) if S else set()
        return sum((cost[v] for v in covered), Fraction(0))

    phi = {p: Fraction(0) for p in players}
    perms = list(itertools.permutations(players))
    for perm in perms:
        for i, p in enumerate(perm):
            phi[p] += C(perm[: i + 1]) - C(perm[:i])
    return {p: v / len(perms) for p, v in phi.items()}


@settings(max_examples=60, deadline=None)
@given(random_traces())
def test_equal_split_equals_shapley_value(trace: tuple[nx.DiGraph, list[Finding]]) -> None:
    G, _ = trace
    sets = causal_sets(G)
    if len(sets) > 5:  # 5! orderings is plenty
        return
    al = allocate(G)  # no findings: all causal cost is shared
    cost = {v: Fraction(float(c or 0.0)) for v, c in G.nodes(data="cost_usd")}
    # off-path cost (no seed needs it) is a fixed cost outside the game, split equally
    share = al.off_path / len(sets) if sets else Fraction(0)
    assert {k: v - share for k, v in al.productive.items()} == brute_force_shapley(sets, cost) \
        or not sets


def test_findings_per_node_booking_is_used_when_recorded() -> None:
    G = build_trace_graph({"trace_id": "t"}, [
        node("a", "llm", 1.0, cost=1.0, parent=None),
        node("b", "tool", 2.0, cost=0.5, parent=None),
    ], [])
    f = Finding.create(trace_id="t", workflow="w", code="churn.exact_repeat",
                       node_ids=("a", "b"), wasted_tokens=0, wasted_cost_usd=0.7,
                       savings_usd=0.7, confidence=1.0,
                       evidence={"waste_by_node": {"a": 0.2, "b": 0.5}}, message="")
    al = allocate(G, [f])
    # booked per node (0.2 on a, 0.5 on b), not 0.7 along node_ids (which would take a first)
    assert al.waste == {"churn.exact_repeat": Fraction(0.2) + Fraction(0.5)}
    assert al.productive == {FINAL: Fraction(1.0) - Fraction(0.2)}
