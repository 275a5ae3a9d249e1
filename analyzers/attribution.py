"""Per-trace cost attribution: which dollars bought the outcome, and which were waste.

Method (``methods.md`` §4.2-4.3, DESIGN §5 "Attribution"):

1. **Seeds.** Every ``outcome`` node of the trace is a seed (one outcome each). A trace with no
   outcome node has one seed, its *final output* (see :func:`final_output`), keyed ``"final"``.
2. **Causal set** of a seed: the seed plus everything it depends on, transitively. Node ``v``
   depends on

   * its *explicit inputs*: predecessors over ``uses``, ``tool_call``, ``reviews`` and ``link``
     edges (data the producer said ``v`` consumed);
   * if it has none, its *previous sibling* (same parent, next lower ``order``, skipping
     outcome nodes and attempts superseded by a retry): conversation state carries forward,
     so an unannotated step builds on the step before it;
   * if it is a container (``agent``/``chain``), its *last child* (a container's result is the
     result of the last step it ran), skipping superseded attempts and outcome nodes;
   * its *parent chain* as hosts (the agents that ran it: orchestration serves the result),
     without their other children.

   ``retry_of`` edges are deliberately *not* dependencies: a failed attempt that a retry
   replaced contributed nothing the outcome used.
3. **Shared nodes** are split equally among the outcomes whose causal sets contain them. With
   cost function ``C(S) = sum_v c_v * [S meets D_v]`` (node ``v`` is needed iff one of the
   outcomes ``D_v`` depending on it is produced) each term is a symmetric game in which
   outcomes outside ``D_v`` are null players, so by symmetry, efficiency and linearity the
   Shapley value of outcome ``i`` is ``sum over v with i in D_v of c_v / |D_v|`` — the equal
   split (``methods.md`` §4.3).
4. **Waste by code.** Each finding's waste is booked on its nodes: per node from
   ``evidence["waste_by_node"]`` when the analyzer recorded it, else ``wasted_cost_usd``
   spread along ``node_ids`` in order; never more than a node's remaining cost (the analyzers
   already book a node's waste once, DESIGN §5). Cost of nodes outside every causal
   set that no finding claimed is booked as ``churn.dead_end`` (work no outcome depends on).

Arithmetic is exact (:class:`fractions.Fraction` over the float node costs), so
``productive + waste == cost`` holds exactly, not just to rounding; floats are produced last.

>>> import networkx as nx
>>> G = nx.DiGraph(trace_id="t")
>>> G.add_node("r", kind="retrieval", cost_usd=0.5, order=0, parent_id=None)
>>> G.add_node("x", kind="tool", cost_usd=0.25, order=1, parent_id=None)
>>> G.add_node("l", kind="llm", cost_usd=1.0, order=2, parent_id=None)
>>> G.add_edge("r", "l", kinds=("uses",), inferred=False)
>>> a = attribute_trace(G, [])
>>> a.productive_usd, dict(a.waste_usd), a.path
(1.5, {'churn.dead_end': 0.25}, ('r', 'l'))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import networkx as nx

__all__ = [
    "DEAD_END",
    "FINAL",
    "Allocation",
    "Attribution",
    "FindingLike",
    "allocate",
    "attribute_trace",
    "causal_sets",
    "final_output",
]

DEAD_END = "churn.dead_end"
FINAL = "final"
CONTAINER_KINDS = frozenset({"agent", "chain"})
INPUT_EDGE_KINDS = frozenset({"uses", "tool_call", "reviews", "link"})


class FindingLike(Protocol):
    """What attribution needs of a finding (``analyzers.findings.Finding`` fits)."""

    @property
    def code(self) -> str: ...
    @property
    def node_ids(self) -> Sequence[str]: ...
    @property
    def wasted_cost_usd(self) -> float: ...


def _kinds(G: nx.DiGraph, u: str, v: str) -> tuple[str, ...]:
    return tuple(G.edges[u, v].get("kinds") or ())


def _superseded(G: nx.DiGraph, v: str) -> bool:
    """True when a retry replaced ``v`` (``v`` has an outgoing ``retry_of`` edge)."""
    return any("retry_of" in _kinds(G, v, w) for w in G.successors(v))


def _order(G: nx.DiGraph, v: str) -> tuple[int, str]:
    return (int(G.nodes[v].get("order", 0)), v)


def _end(G: nx.DiGraph, v: str) -> float:
    a = G.nodes[v]
    t = a.get("end") if a.get("end") is not None else a.get("start")
    return float(t) if t is not None else float("-inf")


def final_output(G: nx.DiGraph) -> str | None:
    """The node whose result the trace returned, when no outcome node says so: among nodes
    that are not containers (agent/chain), not outcome nodes and not superseded by a retry,
    prefer status ``ok``, then the latest end time (start when end is missing), then the
    highest ``order``. Falls back to the container that ended last; ``None`` for an empty graph.

    >>> G = nx.DiGraph()
    >>> G.add_node("a", kind="llm", end=2.0, order=0)
    >>> G.add_node("b", kind="tool", end=3.0, order=1, status="error")
    >>> final_output(G)
    'a'
    """
    def rank(v: str) -> tuple[bool, float, tuple[int, str]]:
        return (G.nodes[v].get("status", "ok") != "error", _end(G, v), _order(G, v))

    leaves = [v for v in G.nodes
              if G.nodes[v].get("kind") not in CONTAINER_KINDS | {"outcome"}
              and not _superseded(G, v)]
    pool = leaves or [v for v in G.nodes if G.nodes[v].get("kind") != "outcome"]
    return max(pool, key=rank) if pool else None


def _dependencies(G: nx.DiGraph) -> dict[str, list[str]]:
    """``v -> the nodes whose result v needs`` (explicit inputs, else the previous sibling;
    plus a container's last child). Parents are followed separately (see :func:`causal_sets`)."""
    children: dict[str | None, list[str]] = {}
    for v in G.nodes:
        p = G.nodes[v].get("parent_id")
        children.setdefault(p if p in G else None, []).append(v)
    prev: dict[str, str] = {}
    last_child: dict[str, str] = {}
    for p, kids in children.items():
        work: list[str] = []  # live, non-outcome siblings so far, in order
        for k in sorted(kids, key=lambda k: _order(G, k)):
            if work:
                prev[k] = work[-1]
            if G.nodes[k].get("kind") != "outcome" and not _superseded(G, k):
                work.append(k)
        if p is not None and work:
            last_child[p] = work[-1]
    deps: dict[str, list[str]] = {}
    for v in G.nodes:
        d = [u for u in G.predecessors(v) if INPUT_EDGE_KINDS.intersection(_kinds(G, u, v))]
        if not d and v in prev:
            d.append(prev[v])
        if G.nodes[v].get("kind") in CONTAINER_KINDS and v in last_child:
            d.append(last_child[v])
        deps[v] = d
    return deps


def causal_sets(G: nx.DiGraph) -> dict[str, frozenset[str]]:
    """Seed key (outcome node id, or ``"final"``) → its causal set (seed included).

    Two kinds of membership: a node whose *result* is needed pulls in its dependencies and
    its parent; a parent pulled in only as the *host* of needed work pulls in its own parent
    but not its other children (otherwise every outcome under one agent would claim all of
    that agent's work).
    """
    outcomes = sorted((v for v in G.nodes if G.nodes[v].get("kind") == "outcome"),
                      key=lambda v: _order(G, v))
    seeds = {o: o for o in outcomes}
    if not seeds:
        fo = final_output(G)
        if fo is None:
            return {}
        seeds = {FINAL: fo}
    deps = _dependencies(G)
    out: dict[str, frozenset[str]] = {}
    for key, seed in seeds.items():
        full = {seed}
        host: set[str] = set()
        stack: list[tuple[str, bool]] = [(seed, True)]
        while stack:
            v, needed = stack.pop()
            if needed:
                for u in deps[v]:
                    if u not in full:
                        full.add(u)
                        stack.append((u, True))
            p = G.nodes[v].get("parent_id")
            if p in G and p not in full and p not in host:
                host.add(p)
                stack.append((p, False))
        out[key] = frozenset(full | host)
    return out


@dataclass(frozen=True)
class Allocation:
    """Exact split of one trace's cost: ``sum(productive) + sum(waste) == cost``."""

    cost: Fraction
    productive: dict[str, Fraction]  # seed key -> Shapley share of productive cost
    waste: dict[str, Fraction]  # finding code -> dollars
    causal: frozenset[str]


def _frac(x: Any) -> Fraction:
    v = float(x or 0.0)
    return Fraction(v) if v > 0 else Fraction(0)


def allocate(G: nx.DiGraph, findings: Iterable[FindingLike] = ()) -> Allocation:
    """Split the trace's cost (sum of node ``cost_usd``; unpriced nodes count 0) exactly."""
    remaining = {v: _frac(G.nodes[v].get("cost_usd")) for v in G.nodes}
    cost = sum(remaining.values(), Fraction(0))
    waste: dict[str, Fraction] = {}

    def book(code: str, nid: str, amount: Fraction) -> Fraction:
        take = min(amount, remaining.get(nid, Fraction(0)))
        if take > 0:
            remaining[nid] -= take
            waste[code] = waste.get(code, Fraction(0)) + take
        return take

    for f in findings:
        per_node = (getattr(f, "evidence", None) or {}).get("waste_by_node")
        if isinstance(per_node, dict) and per_node:  # the analyzers' own per-node booking
            for nid, usd in per_node.items():
                book(f.code, str(nid), _frac(usd))
            continue
        left = _frac(f.wasted_cost_usd)
        for nid in f.node_ids:
            if left <= 0:
                break
            left -= book(f.code, nid, left)
    sets = causal_sets(G)
    depends: dict[str, list[str]] = {}
    for key, members in sets.items():
        for v in members:
            depends.setdefault(v, []).append(key)
    productive = {key: Fraction(0) for key in sets}
    for v, c in remaining.items():
        if c == 0:
            continue
        keys = depends.get(v)
        if keys:
            share = c / len(keys)
            for k in keys:
                productive[k] += share
        else:
            waste[DEAD_END] = waste.get(DEAD_END, Fraction(0)) + c
    causal = frozenset(depends)
    return Allocation(cost, productive, waste, causal)


@dataclass(frozen=True)
class Attribution:
    """One trace's attribution in USD floats (see :class:`Allocation` for the exact split)."""

    trace_id: str | None
    cost_usd: float
    productive_usd: float
    waste_usd: Mapping[str, float]
    per_outcome_usd: Mapping[str, float]
    path: tuple[str, ...]  # causal nodes in execution order
    seeds: tuple[str, ...] = field(default=())

    @property
    def waste_total_usd(self) -> float:
        return sum(self.waste_usd.values())

    @property
    def waste_by_analyzer(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for code, usd in self.waste_usd.items():
            a = code.split(".", 1)[0]
            out[a] = out.get(a, 0.0) + usd
        return out


def attribute_trace(G: nx.DiGraph, findings: Iterable[FindingLike] = ()) -> Attribution:
    """Attribute one trace graph (the contract of :mod:`analyzers.graph`)."""
    al = allocate(G, findings)
    path = tuple(sorted(al.causal, key=lambda v: _order(G, v)))
    return Attribution(
        trace_id=G.graph.get("trace_id"),
        cost_usd=float(al.cost),
        productive_usd=float(sum(al.productive.values(), Fraction(0))),
        waste_usd={k: float(v) for k, v in sorted(al.waste.items()) if v > 0},
        per_outcome_usd={k: float(v) for k, v in al.productive.items()},
        path=path,
        seeds=tuple(al.productive),
    )
