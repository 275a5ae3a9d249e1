"""Attribution's integer arithmetic: equal splits that are not binary fractions (thirds,
sixths) stay exact, and the floats are the correctly rounded values of the exact split."""

from __future__ import annotations

from fractions import Fraction

from analyzers.attribution import allocate, attribute_trace
from tracestore.store.graph import build_trace_graph


def _graph() -> object:
    """One retrieval (0.1) used by three answers; the first two answers also share a tool
    (0.7), so shares are split three and two ways (common denominator 6)."""
    nodes = [
        {"node_id": "R", "kind": "agent", "start": 0.0},
        {"node_id": "r", "kind": "retrieval", "parent_id": "R", "start": 1.0, "cost_usd": 0.1,
         "documents": [{"id": "d"}]},
        {"node_id": "t", "kind": "tool", "parent_id": "R", "start": 1.5, "cost_usd": 0.7},
    ]
    for i in range(3):
        uses = ["d", "t"] if i < 2 else ["d"]
        nodes += [
            {"node_id": f"a{i}", "kind": "llm", "parent_id": "R", "start": 2.0 + i,
             "cost_usd": 0.3 * (i + 1), "uses": uses},
            {"node_id": f"o{i}", "kind": "outcome", "parent_id": "R", "start": 2.5 + i,
             "uses": [f"a{i}"]},
        ]
    return build_trace_graph({"trace_id": "t"}, nodes, [])


def test_thirds_and_halves_are_exact() -> None:
    G = _graph()
    al = allocate(G)  # type: ignore[arg-type]
    r, t = Fraction(0.1), Fraction(0.7)
    assert al.productive == {
        "o0": r / 3 + t / 2 + Fraction(0.3 * 1),
        "o1": r / 3 + t / 2 + Fraction(0.3 * 2),
        "o2": r / 3 + Fraction(0.3 * 3),
    }
    assert al.waste == {}
    assert sum(al.productive.values(), Fraction(0)) == al.cost
    a = attribute_trace(G)  # type: ignore[arg-type]
    assert a.per_outcome_usd == {k: float(v) for k, v in al.productive.items()}
    assert a.productive_usd == float(al.cost) == a.cost_usd
