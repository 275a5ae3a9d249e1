"""Build the trace graph of :mod:`analyzers.graph` from stored rows, once per trace."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx

__all__ = ["build_trace_graph", "graph_to_json"]

_SKIP = frozenset({"project_id", "trace_id"})


def _add_edge(G: nx.DiGraph, u: str, v: str, kind: str, *, inferred: bool = False,
              doc_ids: Iterable[str] = ()) -> None:
    if u == v or u not in G or v not in G:
        return
    if G.has_edge(u, v):
        data = G.edges[u, v]
        data["kinds"] = tuple(sorted(set(data["kinds"]) | {kind}))
        data["inferred"] = data["inferred"] and inferred
        if doc_ids:
            data["doc_ids"] = tuple(dict.fromkeys((*data.get("doc_ids", ()), *doc_ids)))
    else:
        attrs: dict[str, Any] = {"kinds": (kind,), "inferred": inferred}
        if doc_ids:
            attrs["doc_ids"] = tuple(doc_ids)
        G.add_edge(u, v, **attrs)


def build_trace_graph(
    trace: dict[str, Any], nodes: list[dict[str, Any]], edges: list[dict[str, Any]]
) -> nx.DiGraph:
    """A ``DiGraph`` following the contract in :mod:`analyzers.graph`.

    >>> G = build_trace_graph({"trace_id": "t"}, [
    ...     {"node_id": "r", "kind": "retrieval", "start": 1.0,
    ...      "documents": [{"id": "d1"}, {"id": "d2"}]},
    ...     {"node_id": "l", "kind": "llm", "parent_id": "r", "start": 2.0, "uses": ["d2"]},
    ... ], [])
    >>> G.edges["r", "l"]["kinds"], G.edges["r", "l"]["doc_ids"]
    (('parent', 'uses'), ('d2',))
    """
    G = nx.DiGraph(
        trace_id=trace.get("trace_id"),
        workflow=trace.get("workflow"),
        task_id=trace.get("task_id") or trace.get("trace_id"),
        team=trace.get("team"),
        feature=trace.get("feature"),
        started_at=trace.get("started_at"),
        cost_usd=float(trace.get("cost_usd") or 0.0),
    )
    ordered = sorted(
        nodes, key=lambda n: (n.get("start") is None, n.get("start") or 0.0, n["node_id"])
    )
    for i, n in enumerate(ordered):
        attrs = {k: v for k, v in n.items() if k not in _SKIP and k != "node_id"}
        attrs["order"] = i
        G.add_node(n["node_id"], **attrs)
    # document id -> retrieval/rerank nodes that returned it, in order
    doc_owner: dict[str, list[str]] = {}
    for n in ordered:
        for d in n.get("documents") or ():
            doc_owner.setdefault(str(d.get("id")), []).append(n["node_id"])
    for n in ordered:
        nid = n["node_id"]
        if n.get("parent_id"):
            _add_edge(G, n["parent_id"], nid, "parent")
        if n.get("retry_of"):
            _add_edge(G, n["retry_of"], nid, "retry_of")
        if n.get("review_target"):
            _add_edge(G, n["review_target"], nid, "reviews")
        by_owner: dict[str, list[str]] = {}
        for u in n.get("uses") or ():
            if u in G and u != nid:
                _add_edge(G, u, nid, "uses")
                continue
            owners = doc_owner.get(u)
            if owners:
                # The latest retrieval before the consumer that returned the document.
                order = G.nodes[nid]["order"]
                earlier = [o for o in owners if G.nodes[o]["order"] < order] or owners
                by_owner.setdefault(earlier[-1], []).append(u)
        for owner, docs in by_owner.items():
            _add_edge(G, owner, nid, "uses", doc_ids=docs)
    for e in edges:
        _add_edge(G, e["src"], e["dst"], e["kind"], inferred=bool(e.get("inferred")))
    return G


def graph_to_json(G: nx.DiGraph) -> dict[str, Any]:
    """Node-link JSON (``networkx.node_link_data`` with ``edges="links"``)."""
    data: dict[str, Any] = nx.node_link_data(G, edges="links")
    for link in data["links"]:
        link["kinds"] = list(link["kinds"])
        if "doc_ids" in link:
            link["doc_ids"] = list(link["doc_ids"])
    return data
