"""Build the trace graph of :mod:`analyzers.graph` from stored rows, once per trace."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx

__all__ = ["build_trace_graph", "graph_from_parts", "graph_to_json"]

_SKIP = frozenset({"project_id", "trace_id", "node_id"})

Adjacency = dict[str, dict[str, dict[str, Any]]]


def _add_edge(succ: Adjacency, pred: Adjacency, u: str, v: str, kind: str,
              inferred: bool = False, doc_ids: Sequence[str] = ()) -> None:
    """Record edge ``u → v`` of ``kind`` in the adjacency dicts (merged with an earlier edge
    between the two). ``succ`` has every node as a key."""
    if u == v or u not in succ or v not in succ:
        return
    data = succ[u].get(v)
    if data is not None:
        if kind not in data["kinds"]:
            data["kinds"] = tuple(sorted((*data["kinds"], kind)))
        data["inferred"] = data["inferred"] and inferred
        if doc_ids:
            data["doc_ids"] = tuple(dict.fromkeys((*data.get("doc_ids", ()), *doc_ids)))
    else:
        attrs: dict[str, Any] = {"kinds": (kind,), "inferred": inferred}
        if doc_ids:
            attrs["doc_ids"] = tuple(doc_ids)
        succ[u][v] = attrs
        pred[v][u] = attrs


def _known_layout() -> bool:
    """Whether a new ``nx.DiGraph`` holds exactly six empty dicts in its instance dict
    (``graph``, ``_node``, ``_adj`` and ``_succ`` — one dict under two names —, ``_pred``,
    ``__networkx_cache__``), as networkx 3.x lays it out (checked once, at import)."""
    d = nx.DiGraph().__dict__
    return (list(d) == ["graph", "_node", "_adj", "_succ", "_pred", "__networkx_cache__"]
            and d["_adj"] is d["_succ"] and len({id(v) for v in d.values()}) == 5
            and all(type(v) is dict and not v for v in d.values()))


_KNOWN_LAYOUT = _known_layout()


def _new_digraph(graph: dict[str, Any], node: dict[str, dict[str, Any]],
                 succ: dict[str, dict[str, Any]], pred: dict[str, dict[str, Any]]
                 ) -> nx.DiGraph:
    """A ``DiGraph`` whose graph attributes, node data and adjacency are these dicts.

    ``DiGraph.__init__`` sets ``_adj`` and ``_pred`` through data descriptors that clear the
    graph's cached views (Python code, about half the cost of the containers of a 20-node
    graph, and a new graph has no views to clear); so when networkx lays a new graph out as
    :func:`_known_layout` checked, the instance dict is filled directly, in the order
    ``__init__`` fills it. Otherwise through the constructor and the dicts' contents."""
    if _KNOWN_LAYOUT:
        G: nx.DiGraph = nx.DiGraph.__new__(nx.DiGraph)
        G.__dict__.update(graph=graph, _node=node, _adj=succ, _succ=succ, _pred=pred,
                          __networkx_cache__={})
        return G
    G = nx.DiGraph()
    G.graph.update(graph)
    G._node.update(node)
    G._succ.update(succ)
    G._pred.update(pred)
    return G


def _start_key(item: tuple[str, dict[str, Any]]) -> tuple[bool, float, str]:
    start = item[1].get("start")
    return (start is None, start or 0.0, item[0])


def graph_from_parts(
    trace: dict[str, Any],
    nodes: Iterable[tuple[str, dict[str, Any]]],
    edges: Iterable[tuple[str, str, str, Any]] = (),
) -> nx.DiGraph:
    """The graph of :func:`build_trace_graph` from ``(node_id, attributes)`` pairs and
    ``(src, dst, kind, inferred)`` stored edges. The attribute dicts become the graph's node
    data as they are (``order`` is added to them): the batched loader builds them once.

    The graph's node and adjacency dicts are built here, in the order ``add_node``/``add_edge``
    calls would have made them (every node first; each edge goes into ``succ[u]`` and
    ``pred[v]`` when first made, which is the order of ``add_edge`` calls), and become the
    new graph's own (:func:`_new_digraph`).
    """
    graph = {
        "trace_id": trace.get("trace_id"),
        "workflow": trace.get("workflow"),
        "task_id": trace.get("task_id") or trace.get("trace_id"),
        "team": trace.get("team"),
        "feature": trace.get("feature"),
        "started_at": trace.get("started_at"),
        "cost_usd": float(trace.get("cost_usd") or 0.0),
    }
    ordered = sorted(nodes, key=_start_key)
    attrs_of: dict[str, dict[str, Any]] = {}
    # document id -> retrieval/rerank nodes that returned it, in order
    doc_owner: dict[str, list[str]] = {}
    for i, (nid, a) in enumerate(ordered):
        a["order"] = i
        old = attrs_of.get(nid)
        # the same id twice: later attributes win, as with add_node
        attrs_of[nid] = a if old is None else {**old, **a}
        docs = a.get("documents")
        if docs:
            for d in docs:
                doc_owner.setdefault(str(d.get("id")), []).append(nid)
    succ: Adjacency = {}
    pred: Adjacency = {}
    for nid in attrs_of:
        succ[nid] = {}
        pred[nid] = {}
    for nid, a in ordered:
        p = a.get("parent_id")
        if p:
            sp = succ.get(p)
            if sp is not None and p != nid and nid not in sp:  # the common case
                sp[nid] = pred[nid][p] = {"kinds": ("parent",), "inferred": False}
            else:
                _add_edge(succ, pred, p, nid, "parent")
        r = a.get("retry_of")
        if r:
            _add_edge(succ, pred, r, nid, "retry_of")
        t = a.get("review_target")
        if t:
            _add_edge(succ, pred, t, nid, "reviews")
        uses = a.get("uses")
        if not uses:
            continue
        by_owner: dict[str, list[str]] = {}
        for u in uses:
            if u in attrs_of and u != nid:
                _add_edge(succ, pred, u, nid, "uses")
                continue
            owners = doc_owner.get(u)
            if owners:
                # The latest retrieval before the consumer that returned the document.
                order = attrs_of[nid]["order"]
                earlier = [o for o in owners if attrs_of[o]["order"] < order] or owners
                by_owner.setdefault(earlier[-1], []).append(u)
        for owner, docs in by_owner.items():
            _add_edge(succ, pred, owner, nid, "uses", doc_ids=docs)
    for src, dst, kind, inferred in edges:
        _add_edge(succ, pred, src, dst, kind, inferred=bool(inferred))
    return _new_digraph(graph, attrs_of, succ, pred)


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
    return graph_from_parts(
        trace,
        [(n["node_id"], {k: v for k, v in n.items() if k not in _SKIP}) for n in nodes],
        [(e["src"], e["dst"], e["kind"], e.get("inferred")) for e in edges],
    )


def graph_to_json(G: nx.DiGraph) -> dict[str, Any]:
    """Node-link JSON (``networkx.node_link_data`` with ``edges="links"``)."""
    data: dict[str, Any] = nx.node_link_data(G, edges="links")
    for link in data["links"]:
        link["kinds"] = list(link["kinds"])
        if "doc_ids" in link:
            link["doc_ids"] = list(link["doc_ids"])
    return data
