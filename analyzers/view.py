"""A read-only, precomputed view of one trace graph shared by the analyzers.

Everything the rules look up more than once — nodes in order, attributes, costs, edges by
kind, call keys, step keys, the LLM turn that issued each tool call — is computed once per
trace here (lazily, on first use), so running all analyzers costs one pass over the graph
rather than one per rule. The graph itself is never modified.

>>> import networkx as nx
>>> G = nx.DiGraph(trace_id="t")
>>> G.add_node("l", kind="llm", parent_id="r", order=0, cost_usd=0.01)
>>> G.add_node("t", kind="tool", parent_id="r", order=1, tool_name="ls", args={})
>>> v = TraceView(G)
>>> v.order, v.issuer["t"], v.cost["t"]
(['l', 't'], 'l', 0.0)
"""

from __future__ import annotations

from collections import defaultdict
from functools import cached_property
from typing import Any

import networkx as nx

from analyzers.baseline import step_keys
from analyzers.callkeys import call_key, canonical_args, key_hash, result_key
from analyzers.graph import node_cost

__all__ = ["TraceView"]


class TraceView:
    """Per-trace lookups, computed once."""

    def __init__(self, G: nx.DiGraph) -> None:
        self.G = G
        self.A: dict[str, dict[str, Any]] = dict(G.nodes(data=True))
        self.order = sorted(self.A, key=lambda n: (self.A[n].get("order", 0), n))
        self.pos = {n: i for i, n in enumerate(self.order)}
        self.by_kind: dict[str, list[str]] = defaultdict(list)  # node ids per kind, in order
        for n in self.order:
            self.by_kind[str(self.A[n].get("kind"))].append(n)
        self.cost = {n: node_cost(a) for n, a in self.A.items()}
        self.edges: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.out_kinds: dict[str, list[tuple[str, tuple[str, ...]]]] = defaultdict(list)
        for u, v, kinds in G.edges(data="kinds"):
            ks = kinds or ()
            for k in ks:
                self.edges[k].append((u, v))
            self.out_kinds[u].append((v, ks))

    @cached_property
    def total_cost(self) -> float:
        return sum(self.cost.values())

    @cached_property
    def canonical_args(self) -> dict[str, str]:
        """Canonical argument text of every tool call that has arguments."""
        return {n: canonical_args(a["args"]) for n, a in self.A.items()
                if a.get("kind") == "tool" and a.get("args") is not None}

    @cached_property
    def keys(self) -> dict[str, str]:
        """Call keys of the tool and LLM calls that have one."""
        out = {}
        canon = self.canonical_args
        for n in self.order:
            a = self.A[n]
            kind = a.get("kind")
            if kind == "tool" and n in canon:
                out[n] = f"tool:{a.get('tool_name') or a.get('name') or ''}:{key_hash(canon[n])}"
            elif kind in ("tool", "llm"):
                k = call_key(a)
                if k is not None:
                    out[n] = k
        return out

    @cached_property
    def results(self) -> dict[str, str | None]:
        return {n: result_key(self.A[n]) for n in self.keys}

    @cached_property
    def steps(self) -> dict[str, str]:
        """Step keys of the model calls (:func:`analyzers.baseline.step_keys`)."""
        return step_keys(self.G, kinds=frozenset({"llm", "embedding"}), order=self.order)

    @cached_property
    def issuer(self) -> dict[str, str]:
        """Tool call → the LLM turn that decided it: a ``tool_call`` edge, else the latest
        earlier LLM call under the same parent, else an LLM parent."""
        out: dict[str, str] = {}
        for u, v in self.edges.get("tool_call", ()):
            if self.A[u].get("kind") == "llm":
                out.setdefault(v, u)
        last: dict[Any, str] = {}
        for n in self.order:
            a = self.A[n]
            kind = a.get("kind")
            if kind == "llm":
                last[a.get("parent_id")] = n
            elif kind == "tool" and n not in out:
                p = a.get("parent_id")
                if p in last:
                    out[n] = last[p]
                elif p in self.A and self.A[p].get("kind") == "llm":
                    out[n] = p
        return out

    def label(self, n: str) -> str:
        """A readable name of a call: tool name, model or span name."""
        a = self.A[n]
        return str(a.get("tool_name") or a.get("model") or a.get("name") or n)

    def tokens(self, nodes: Any) -> int:
        return sum(int(self.A[n].get("input_tokens") or 0)
                   + int(self.A[n].get("output_tokens") or 0) for n in nodes)
