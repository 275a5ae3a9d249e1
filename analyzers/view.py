"""A read-only, precomputed view of one trace graph shared by the analyzers.

Everything the rules look up more than once — nodes in order, attributes, costs, edges by
kind, call keys, step keys, the LLM turn that issued each tool call — is computed once per
trace here, so running all analyzers costs one pass over the graph rather than one per rule.
The graph is read once into plain dicts and lists (no networkx accessors in the rules' loops);
what not every trace needs (result keys, step keys, issuers, rejections) is computed lazily on
first use, result keys per call, so a call whose key never repeats is never hashed twice. The
graph itself is never modified.

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
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import networkx as nx

from analyzers.baseline import step_keys
from analyzers.callkeys import call_key, canonical_args, key_hash, normalize_text, result_key
from analyzers.graph import MODEL_KINDS

__all__ = ["CallKey", "TraceView"]

# A call's identity (TraceView.keys): (kind, tool name or model, canonical text), or the call
# key string itself when some call in the trace is keyed by a producer's hash.
CallKey = tuple[str, str, str] | str

_T = TypeVar("_T")


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

    def __init__(self, G: nx.DiGraph) -> None:
        self.G = G
        # networkx's own node and adjacency dicts, read (never written): the public views
        # (G.nodes(data=True), G.edges(data=...)) cost a generator step per item
        A: dict[str, dict[str, Any]] = dict(G._node)
        self.A = A
        orders = [a.get("order", 0) for a in A.values()]
        if orders == sorted(orders) and len(set(orders)) == len(orders):
            order = list(A)  # already in order: the builder adds nodes by "order"
        else:
            order = [n for _, n in sorted(zip(orders, A, strict=True))]
        self.order = order
        self.pos = {n: i for i, n in enumerate(order)}
        by_kind: dict[str, list[str]] = defaultdict(list)  # node ids per kind, in order
        cost: dict[str, float] = {}
        for n in order:
            a = A[n]
            kind = a.get("kind")
            by_kind[kind if type(kind) is str else str(kind)].append(n)
            c = a.get("cost_usd")
            cost[n] = float(c) if c is not None else 0.0
        self.by_kind = by_kind
        self.cost = cost
        edges: dict[str, list[tuple[str, str]]] = defaultdict(list)
        out_kinds: dict[str, list[tuple[str, tuple[str, ...]]]] = defaultdict(list)
        for u, nbrs in G._succ.items():
            if nbrs:
                out = out_kinds[u]
                for w, d in nbrs.items():
                    ks = d.get("kinds") or ()
                    for k in ks:
                        edges[k].append((u, w))
                    out.append((w, ks))
        self.edges = edges
        self.out_kinds = out_kinds
        self._results: dict[str, str | None] = {}

    @_lazy
    def total_cost(self) -> float:
        return sum(self.cost.values())

    @_lazy
    def canonical_args(self) -> dict[str, str]:
        """Canonical argument text of every tool call that has arguments."""
        A = self.A
        out = {}
        for n in self.by_kind.get("tool", ()):
            args = A[n].get("args")
            if args is not None:
                out[n] = canonical_args(args)
        return out

    @_lazy
    def keys(self) -> dict[str, CallKey]:
        """The call identity of every tool and LLM call that has a call key, in trace order.

        Two calls have equal identities exactly when their call keys
        (:func:`analyzers.callkeys.call_key`) are equal: the identity holds the canonical text
        (kind, tool name or model, canonical arguments or normalised prompt) that the key
        hashes, so no call is hashed unless its key is shown (:meth:`key_text`). When some call
        is keyed by a producer's hash instead (``args_hash``/``prompt_hash`` without the text),
        every identity is the call key itself, so a given hash compares with computed ones
        exactly as before."""
        A = self.A
        canon = self.canonical_args if self.by_kind.get("tool") else {}
        out: dict[str, CallKey] = {}
        for n in self.order:
            a = A[n]
            kind = a.get("kind")
            if kind == "tool":
                if n not in canon:
                    if a.get("args_hash"):
                        return self._hashed_keys()
                    continue
                name = a.get("tool_name") or a.get("name") or ""
                out[n] = ("tool", name if type(name) is str else f"{name}", canon[n])
            elif kind == "llm":
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

    def _hashed_keys(self) -> dict[str, CallKey]:
        out: dict[str, CallKey] = {}
        A = self.A
        canon = self.canonical_args if self.by_kind.get("tool") else {}
        for n in self.order:
            a = A[n]
            kind = a.get("kind")
            if kind == "tool" and n in canon:
                out[n] = f"tool:{a.get('tool_name') or a.get('name') or ''}:{key_hash(canon[n])}"
            elif kind == "tool" or kind == "llm":
                k = call_key(a)
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
        try:
            return self._results[n]
        except KeyError:
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

    def label(self, n: str) -> str:
        """A readable name of a call: tool name, model or span name."""
        a = self.A[n]
        return str(a.get("tool_name") or a.get("model") or a.get("name") or n)

    def tokens(self, nodes: Any) -> int:
        A = self.A
        return sum(int(A[n].get("input_tokens") or 0)
                   + int(A[n].get("output_tokens") or 0) for n in nodes)
