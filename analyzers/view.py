"""A read-only, precomputed view of one trace graph shared by the analyzers.

Everything the rules look up more than once — nodes in order, attributes, costs, edges by
kind, call identities, step keys, the LLM turn that issued each tool call — is computed once
per trace here, so running all analyzers costs one pass over the graph rather than one per
rule. The graph is read once from networkx's own node and adjacency dicts into plain dicts and
lists (no networkx views in the rules' loops); what not every trace needs (costs, edges by
kind, result keys, step keys, issuers) is computed lazily on first use, result keys per call.
Calls are compared by their canonical text (:attr:`TraceView.keys`), which the call key
hashes, so only the keys shown in evidence are hashed. The graph itself is never modified.

>>> import networkx as nx
>>> G = nx.DiGraph(trace_id="t")
>>> G.add_node("l", kind="llm", parent_id="r", order=0, cost_usd=0.01)
>>> G.add_node("t", kind="tool", parent_id="r", order=1, tool_name="ls", args={})
>>> v = TraceView(G)
>>> v.order, v.issuer["t"], v.cost["t"]
(['l', 't'], 'l', 0.0)
"""

from __future__ import annotations

import itertools
import operator
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import networkx as nx

from analyzers.baseline import step_keys
from analyzers.callkeys import call_key, canonical_args, key_hash, normalize_text, result_key
from analyzers.graph import MODEL_KINDS, node_cost

__all__ = ["CallKey", "TraceView"]

# A call's identity (TraceView.keys): (kind, tool name or model, canonical text), or the call
# key string itself when some call in the trace is keyed by a producer's hash.
CallKey = tuple[str, str, str] | str

_T = TypeVar("_T")
_PARENT_ONLY = ("parent",)
_KINDS = operator.itemgetter("kinds")
_UNSET: Any = object()
_LOOK_BACK = 16  # steps issuer_of scans before building the whole issuer map


class _lazy(Generic[_T]):  # lower case: used like functools.cached_property
    """``functools.cached_property`` without its per-access lock (Python 3.11): the value is
    computed on first access and stored in the instance, so later reads are plain lookups."""

    def __init__(self, fn: Callable[[Any], _T]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __get__(self, obj: Any, owner: type | None = None) -> _T:
        if obj is None:
            return self  # type: ignore[return-value]
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


class TraceView:
    """Per-trace lookups, computed once."""

    def __init__(self, G: nx.DiGraph[str]) -> None:
        self.G = G
        # node id -> its attribute dict (the graph's own, read only)
        A: dict[str, dict[str, Any]] = dict(G.nodes.items())
        self.A = A
        orders = [a.get("order", 0) for a in A.values()]
        ordered = all(map(operator.lt, orders, orders[1:]))
        # already in order when the builder added the nodes by "order"
        order = list(A) if ordered else [n for _, n in sorted(zip(orders, A, strict=True))]
        self.order = order
        self.pos = dict(zip(order, range(len(order)), strict=True))
        by_kind: dict[str, list[str]] = defaultdict(list)  # node ids per kind, in order
        # nodes already in order are walked with their attributes (no lookup per node)
        for n, a in A.items() if ordered else zip(order, map(A.__getitem__, order), strict=True):
            k = a.get("kind")
            by_kind[k if type(k) is str else str(k)].append(n)
        self.by_kind = by_kind
        self._results: dict[str, str | None] = {}

    @_lazy
    def cost(self) -> dict[str, float]:
        """Each node's cost in USD (0.0 when unpriced, :func:`analyzers.graph.node_cost`)."""
        A = self.A
        return {n: node_cost(A[n]) for n in self.order}

    @_lazy
    def total_cost(self) -> float:
        return sum(self.cost.values())

    @_lazy
    def _typed_edges(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """``(u, w, kinds)`` of every edge that is more than a parent edge, in networkx's
        order."""
        out = []
        succ = dict(self.G.adjacency())
        for u in itertools.compress(succ, succ.values()):  # nodes with out-edges
            nbrs = succ[u]
            try:  # every edge has kinds (the graph builders set them): read in C
                kinds = list(map(_KINDS, nbrs.values()))
            except KeyError:
                kinds = [d.get("kinds") for d in nbrs.values()]
            if kinds.count(_PARENT_ONLY) == len(nbrs):
                continue  # parent edges only (most nodes), settled in C
            for w, d in nbrs.items():
                ks = d.get("kinds") or ()
                if ks != _PARENT_ONLY:
                    out.append((u, w, ks))
        return out

    @_lazy
    def edges(self) -> dict[str, list[tuple[str, str]]]:
        """Edges by kind (an edge of several kinds is listed under each), each list in
        networkx's edge order — all kinds but ``parent`` (see :attr:`parent_edges`)."""
        edges: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for u, w, ks in self._typed_edges:
            for k in ks:
                if k != "parent":
                    edges[k].append((u, w))
        return edges

    @_lazy
    def parent_edges(self) -> list[tuple[str, str]]:
        """The edges that carry ``parent``, in networkx's edge order."""
        return [(u, w) for u, nbrs in self.G.adjacency() for w, d in nbrs.items()
                if "parent" in (d.get("kinds") or ())]

    @_lazy
    def out_kinds(self) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
        """Node → ``(target, kinds)`` of its out-edges that are more than parent edges."""
        out: dict[str, list[tuple[str, tuple[str, ...]]]] = defaultdict(list)
        for u, w, ks in self._typed_edges:
            out[u].append((w, ks))
        return out

    @_lazy
    def canonical_args(self) -> dict[str, str]:
        """Canonical argument text of every tool call that has arguments."""
        A = self.A
        return {n: canonical_args(x) for n in self.by_kind.get("tool", ())
                if (x := A[n].get("args")) is not None}

    @_lazy
    def keys(self) -> dict[str, CallKey]:
        """The call identity of every tool and LLM call that has a call key (tool calls
        first, then LLM calls, each in trace order; :attr:`streams` lists them).

        Two calls have equal identities exactly when their call keys
        (:func:`analyzers.callkeys.call_key`) are equal: the identity holds the canonical text
        (kind, tool name or model, canonical arguments or normalised prompt) that the key
        hashes, so no call is hashed unless its key is shown (:meth:`key_text`). When some call
        is keyed by a producer's hash instead (``args_hash``/``prompt_hash`` without the text),
        every identity is the call key itself, so a given hash compares with computed ones
        exactly as before."""
        A = self.A
        out: dict[str, CallKey] = {}
        tools = self.by_kind.get("tool")
        if tools:
            canon = self.canonical_args
            for n in tools:
                c = canon.get(n)
                a = A[n]
                if c is None:
                    if a.get("args_hash"):
                        return self._hashed_keys()
                    continue
                name = a.get("tool_name") or a.get("name") or ""
                out[n] = ("tool", name if type(name) is str else f"{name}", c)
        for n in self.by_kind.get("llm", ()):
            a = A[n]
            prompt = a.get("prompt")
            attributes = a.get("attributes")
            if isinstance(prompt, str) and (not attributes or "prompt" not in (
                    attributes.get("tracestore.truncated") or {})):
                model = a.get("model") or ""
                out[n] = ("llm", model if type(model) is str else f"{model}",
                          normalize_text(prompt))
            elif a.get("prompt_hash"):
                return self._hashed_keys()
        return out

    @_lazy
    def streams(self) -> dict[str, list[str]]:
        """The tool calls and the LLM calls that have a call key, each in trace order."""
        keys = self.keys
        out = {}
        for kind in ("tool", "llm"):
            calls = self.by_kind.get(kind, [])
            out[kind] = calls if all(map(keys.__contains__, calls)) else [
                n for n in calls if n in keys]
        return out

    def _hashed_keys(self) -> dict[str, CallKey]:
        out: dict[str, CallKey] = {}
        A = self.A
        canon = self.canonical_args if self.by_kind.get("tool") else {}
        for n in self.by_kind.get("tool", ()):
            a = A[n]
            if n in canon:
                out[n] = f"tool:{a.get('tool_name') or a.get('name') or ''}:{key_hash(canon[n])}"
            else:
                k = call_key(a)
                if k is not None:
                    out[n] = k
        for n in self.by_kind.get("llm", ()):
            k = call_key(A[n])
            if k is not None:
                out[n] = k
        return out

    def key_text(self, n: str) -> str:
        """The call key of ``n`` (:func:`analyzers.callkeys.call_key`), as shown in evidence."""
        k = self.keys[n]
        if isinstance(k, str):
            return k
        kind, name, text = k
        return f"{kind}:{name}:{key_hash(text)}"

    def result(self, n: str) -> str | None:
        """The result key of call ``n`` (:func:`analyzers.callkeys.result_key`; None for a node
        without a call key), computed on first use."""
        r: str | None = self._results.get(n, _UNSET)
        if r is _UNSET:
            r = self._results[n] = result_key(self.A[n]) if n in self.keys else None
        return r

    def result_ok(self, n: str) -> bool:
        """Whether call ``n``'s result key is set and not an error's (``n`` has a call key),
        without hashing the result (a text or JSON result always keys as a hex digest)."""
        a = self.A[n]
        if a.get("status") == "error":
            return False
        if a.get("kind") == "tool":
            if a.get("result") is not None:
                return True
            h = a.get("result_hash")
        else:
            if isinstance(a.get("output"), str):
                return True
            h = a.get("output_hash")
        if not h:
            return False
        s = str(h)  # a producer's hash, kept as given
        return bool(s) and not s.startswith("error:")

    @_lazy
    def steps(self) -> dict[str, str]:
        """Step keys of the model calls (:func:`analyzers.baseline.step_keys`)."""
        llm, emb = self.by_kind.get("llm", []), self.by_kind.get("embedding", [])
        calls = sorted(llm + emb, key=self.pos.__getitem__) if llm and emb else llm or emb
        return step_keys(self.G, kinds=MODEL_KINDS, order=calls, attrs=self.A)

    @_lazy
    def issuer(self) -> dict[str, str]:
        """Tool call → the LLM turn that decided it: a ``tool_call`` edge, else the latest
        earlier LLM call under the same parent, else an LLM parent."""
        A = self.A
        out: dict[str, str] = {}
        for u, v in self.edges.get("tool_call", ()):
            if A[u].get("kind") == "llm":
                out.setdefault(v, u)
        last: dict[Any, str] = {}
        for n in self.order:
            a = A[n]
            kind = a.get("kind")
            if kind == "llm":
                last[a.get("parent_id")] = n
            elif kind == "tool" and n not in out:
                p = a.get("parent_id")
                if p in last:
                    out[n] = last[p]
                elif p in A and A[p].get("kind") == "llm":
                    out[n] = p
        return out

    def issuer_of(self, n: str) -> str | None:
        """``issuer.get(n)`` without building :attr:`issuer` for a few calls: when no
        ``tool_call`` edge exists, the issuer of a tool call is found by looking back a few
        steps for the latest LLM call under the same parent."""
        if "issuer" not in self.__dict__ and not self.edges.get("tool_call"):
            A = self.A
            a = A[n]
            if a.get("kind") != "tool":
                return None
            p = a.get("parent_id")
            order = self.order
            here = self.pos[n]
            stop = max(here - 1 - _LOOK_BACK, -1)
            for i in range(here - 1, stop, -1):
                b = A[order[i]]
                if b.get("kind") == "llm" and b.get("parent_id") == p:
                    return order[i]
            if stop == -1:  # looked back to the start: no earlier LLM sibling
                return p if p in A and A[p].get("kind") == "llm" else None
        return self.issuer.get(n)

    def label(self, n: str) -> str:
        """A readable name of a call: tool name, model or span name."""
        a = self.A[n]
        return str(a.get("tool_name") or a.get("model") or a.get("name") or n)

    def tokens(self, nodes: Any) -> int:
        A = self.A
        total = 0
        for n in nodes:
            a = A[n]
            total += int(a.get("input_tokens") or 0) + int(a.get("output_tokens") or 0)
        return total
