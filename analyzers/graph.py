"""The trace-graph contract, written down once. :mod:`tracestore.store.graph` builds graphs that
follow it; every analyzer reads graphs through it.

A trace is a ``networkx.DiGraph`` whose nodes are keyed by ``node_id`` (str).

Graph attributes (``G.graph``)
------------------------------
============== ========= =====================================================
name           type      meaning
============== ========= =====================================================
trace_id       str       producer's trace id (lowercase hex for OTLP)
workflow       str|None  unit of analysis, e.g. ``"support_triage"``
task_id        str|None  business task served (defaults to trace_id)
team, feature  str|None  dimensions
started_at     float     epoch seconds (UTC) of the earliest node, or None
cost_usd       float     sum of priced node costs, USD
============== ========= =====================================================

Node attributes
---------------
``kind`` (one of :data:`NODE_KINDS`), ``name`` (str), ``step`` (str|None, explicit step key),
``parent_id`` (str|None), ``order`` (int, position by start time then id), ``start``/``end``
(float epoch seconds or None), ``status`` (``"ok"|"error"``), ``error_type``; for llm/embedding:
``provider``, ``model``, ``input_tokens`` (inclusive of cache reads/writes), ``output_tokens``
(inclusive of reasoning), ``cache_read_tokens``, ``cache_write_tokens``, ``reasoning_tokens``
(int, tokens), ``finish_reason``, ``prompt``/``output`` (str|None, possibly cut; see
``attributes["tracestore.truncated"]``), ``prompt_hash``/``output_hash``; for retrieval/rerank:
``documents`` (list of dicts ``{id, score?, tokens?, content?, content_hash?}``), ``top_k``,
``query``; for tools: ``tool_name``, ``args`` (JSON value), ``args_hash``, ``result`` (str),
``result_hash``, ``tool_call_id``; for humans: ``decision``
(``approve|edit|reject|override``), ``review_target``, ``review_minutes``; outcome nodes:
``outcome_status``, ``outcome_type``, ``outcome_value_usd``; every node: ``retry_of``,
``uses`` (list[str]), ``cost_usd`` (float USD or None when unpriced), ``priced`` (bool),
``attributes`` (dict).

Edges
-----
Every edge points from cause to effect and carries ``kinds`` (a sorted tuple of
:data:`EDGE_KINDS` members: two nodes may be related in more than one way), ``inferred``
(bool, True when a heuristic rather than the producer asserted it) and, for ``uses`` edges
from a retrieval node, ``doc_ids`` (tuple of the document ids consumed).

========== ============================== ===========================================
kind       direction                      source
========== ============================== ===========================================
parent     parent → child                 span tree (``parent_id``)
retry_of   original attempt → retry       node ``retry_of``
uses       producer → consuming node      node ``uses`` (node ids or document ids)
reviews    reviewed node → human node     human node ``review_target``
link       linked span → linking span     OTel span links, native edges
tool_call  deciding LLM → tool node       matching tool-call ids
========== ============================== ===========================================

>>> import networkx as nx
>>> G = nx.DiGraph(trace_id="t1")
>>> G.add_node("a", kind="llm", cost_usd=0.01)
>>> G.add_edge("a", "b", kinds=("parent",), inferred=False)
>>> edges_of_kind(G, "parent")
[('a', 'b')]
"""

from __future__ import annotations

from typing import Any

import networkx as nx

__all__ = [
    "EDGE_KINDS",
    "MODEL_KINDS",
    "NODE_KINDS",
    "edges_of_kind",
    "node_cost",
    "nodes_in_order",
]

NODE_KINDS = (
    "llm", "embedding", "retrieval", "rerank", "tool", "agent", "chain", "guardrail", "human",
    "outcome",
)
EDGE_KINDS = ("parent", "retry_of", "uses", "reviews", "link", "tool_call")
MODEL_KINDS = frozenset({"llm", "embedding"})


def edges_of_kind(G: nx.DiGraph[str], kind: str) -> list[tuple[str, str]]:
    """All edges carrying ``kind``, in insertion order."""
    # G.edges(data="kinds") read from the adjacency: the cached edge view holds the graph,
    # which makes the graph a reference cycle that only the cyclic collector frees
    return [(u, v) for u, nbrs in G.adjacency() for v, d in nbrs.items()
            if (k := d.get("kinds")) and kind in k]


def nodes_in_order(G: nx.DiGraph[str]) -> list[str]:
    """Node ids sorted by the ``order`` attribute (start time, then id)."""
    return sorted(G.nodes, key=lambda n: (G.nodes[n].get("order", 0), n))


def node_cost(attrs: dict[str, Any]) -> float:
    """A node's cost in USD, 0.0 when unpriced (unpriced cost is counted separately)."""
    c = attrs.get("cost_usd")
    return float(c) if c is not None else 0.0
