"""TraceView's shortcuts give what the plain lookups give: nodes already in ``order`` (the
builders add them so) and nodes in any other insertion order yield the same order, positions
and kinds; edges without ``kinds`` read as edges of no kind."""

from __future__ import annotations

import random

import networkx as nx

from analyzers.view import TraceView


def _graph(order: list[int], *, kinds: bool = True) -> nx.DiGraph[str]:
    G: nx.DiGraph[str] = nx.DiGraph(trace_id="t")
    kinds_of = ["llm", "tool", "retrieval", "llm", "agent", "tool", "llm", "human"]
    for i in order:
        G.add_node(f"n{i}", kind=kinds_of[i % len(kinds_of)], order=i, parent_id="n0")
    for i in range(1, 8):
        G.add_edge("n0", f"n{i}", kinds=("parent",), inferred=False)
    extra = {"kinds": ("uses",)} if kinds else {}
    G.add_edge("n2", "n6", inferred=False, **extra)
    G.add_edge("n3", "n5", kinds=("tool_call", "parent"), inferred=False)
    return G


def test_view_of_nodes_in_any_insertion_order_is_the_same() -> None:
    want = TraceView(_graph(list(range(8))))
    rng = random.Random(3)
    for _ in range(20):
        order = list(range(8))
        rng.shuffle(order)
        v = TraceView(_graph(order))
        assert v.order == want.order == [f"n{i}" for i in range(8)]
        assert v.pos == want.pos
        assert dict(v.by_kind) == dict(want.by_kind)
        assert {k: sorted(e) for k, e in v.edges.items()} == {
            k: sorted(e) for k, e in want.edges.items()}


def test_edges_without_kinds_read_as_no_kind() -> None:
    v = TraceView(_graph(list(range(8)), kinds=False))
    assert v._typed_edges == [("n2", "n6", ()), ("n3", "n5", ("tool_call", "parent"))]
    assert "uses" not in v.edges
    w = TraceView(_graph(list(range(8))))
    assert w._typed_edges == [("n2", "n6", ("uses",)), ("n3", "n5", ("tool_call", "parent"))]
