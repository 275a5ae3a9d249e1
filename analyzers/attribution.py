"""Per-trace cost attribution: which dollars bought the outcome, and which were waste.

Method (docs/methods.md, "Attribution"; docs/analysis.md):

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
   split (docs/methods.md).
4. **Waste by code** is exactly what the findings book, nothing else: each finding's waste
   is booked on its nodes, per node from ``evidence["waste_by_node"]`` when the analyzer
   recorded it, else ``wasted_cost_usd`` spread along ``node_ids`` in order; never more than
   a node's remaining cost (the analyzers already book a node's waste once). So the waste of
   a trace, of a report and of a digest is the sum of findings a person can open.
5. **Off-path cost.** Cost outside every causal set that no finding claimed (a call that
   failed with nothing to retry, a step the producer did not link to what it fed) is *not*
   waste: no finding shows a counterfactual for it. It stays productive, split equally among
   the seeds, and is reported as ``off_path_usd``. Abandoned work that the trace's explicit
   ``uses`` edges prove unused is a ``churn.dead_end`` finding, booked like any other.

Arithmetic is exact, so ``productive + waste == cost`` holds exactly, not just to rounding:
every float cost is a binary fraction, so the run counts in integer units of ``1 / (D·L)``
(``D`` the largest power-of-two denominator of the inputs, ``L`` the least common multiple of
the equal-split divisors) — the same rationals :class:`fractions.Fraction` would give, at
integer speed. Floats are produced last, each correctly rounded.

>>> import networkx as nx
>>> G = nx.DiGraph(trace_id="t")
>>> G.add_node("r", kind="retrieval", cost_usd=0.5, order=0, parent_id=None)
>>> G.add_node("x", kind="tool", cost_usd=0.25, order=1, parent_id=None)
>>> G.add_node("l", kind="llm", cost_usd=1.0, order=2, parent_id=None)
>>> G.add_edge("r", "l", kinds=("uses",), inferred=False)
>>> a = attribute_trace(G, [])
>>> a.productive_usd, dict(a.waste_usd), a.off_path_usd, a.path
(1.75, {}, 0.25, ('r', 'l'))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple, Protocol

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


class _Facts:
    """What attribution reads of a graph, gathered once: node attributes, order keys, the
    positive node costs and the attempts superseded by a retry (``v`` has an outgoing
    ``retry_of`` edge)."""

    __slots__ = ("_keys", "_order", "attrs", "costs", "den", "pred", "superseded")

    def __init__(self, G: nx.DiGraph[str]) -> None:
        self.attrs: dict[str, dict[str, Any]] = dict(G.nodes.items())
        # One pass over the node dicts gathers the order keys and the costs (each further
        # pass over the nodes costs a loop and a lookup per node; the node dicts are read
        # again only for the nodes the later steps need).
        # Order keys (order, id, attribute dict), sorted at once: the same order as sorting
        # the ids by (order, id) (ids are unique, so the dicts are never compared), without
        # a key function or a dict of keys; the dict rides along for the in-order pass of
        # _dependencies.
        # Costs: node -> its positive cost as an exact ratio (nodes of positive cost only);
        # den the largest denominator, tracked as the ratios are made (was a max() over
        # generators per finding: more calls than comparisons).
        keys: list[tuple[int, str, dict[str, Any]]] = []
        costs: dict[str, tuple[int, int]] = {}
        den = 1
        for v, a in self.attrs.items():
            o = a.get("order", 0)
            keys.append((o if type(o) is int else int(o), v, a))
            c = a.get("cost_usd")
            if c:
                r = _ratio(c)
                if r[0]:
                    costs[v] = r
                    if r[1] > den:
                        den = r[1]
        keys.sort()
        self._keys = keys
        self.costs = costs
        self.den = den
        self.pred: Mapping[str, Mapping[str, dict[str, Any]]] = G.pred
        superseded: set[str] = set()
        for u, nbrs in G.adjacency():
            for d in nbrs.values():
                kinds = d.get("kinds")
                if kinds and "retry_of" in kinds:
                    superseded.add(u)
                    break
        self.superseded = superseded
        self._order: dict[str, tuple[int, str]] | None = None

    @property
    def order(self) -> dict[str, tuple[int, str]]:
        """Node id → its order key ``(order, id)`` (built when first asked for)."""
        if self._order is None:
            self._order = {v: (o, v) for o, v, _ in self._keys}
        return self._order


def _end(a: dict[str, Any]) -> float:
    t = a.get("end") if a.get("end") is not None else a.get("start")
    return float(t) if t is not None else float("-inf")


def final_output(G: nx.DiGraph[str]) -> str | None:
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
    return _final_output(_Facts(G))


_NOT_LEAF = CONTAINER_KINDS | {"outcome"}


def _final_output(f: _Facts) -> str | None:
    attrs, order = f.attrs, f.order

    def rank(v: str) -> tuple[bool, float, tuple[int, str]]:
        a = attrs[v]
        return (a.get("status", "ok") != "error", _end(a), order[v])

    leaves = [v for v, a in attrs.items()
              if a.get("kind") not in _NOT_LEAF and v not in f.superseded]
    pool = leaves or [v for v, a in attrs.items() if a.get("kind") != "outcome"]
    return max(pool, key=rank) if pool else None


def _dependencies(
    f: _Facts,
) -> tuple[Callable[[str], list[str]], list[str], dict[str, str]]:
    """``v -> the nodes whose result v needs`` (explicit inputs, else the previous sibling;
    plus a container's last child), computed when first asked for (only nodes some outcome
    needs are); with the outcome nodes in order and ``node -> its parent in the graph``,
    gathered in the same pass. Parents are followed separately (see :func:`causal_sets`)."""
    attrs, superseded = f.attrs, f.superseded
    prev: dict[str, str] = {}
    outcomes: list[str] = []
    parent: dict[str, str] = {}
    # parent (None: no parent in the graph) -> its latest live, non-outcome child so far;
    # one pass over all nodes in order visits each parent's children in order.
    latest: dict[str | None, str] = {}
    for _, k, a in f._keys:  # in order (no id list needed here)
        p = a.get("parent_id")
        if p is not None:
            if p in attrs:
                parent[k] = p
            else:
                p = None
        w = latest.get(p)
        if w is not None:
            prev[k] = w
        if a.get("kind") == "outcome":
            outcomes.append(k)
        elif k not in superseded:
            latest[p] = k
    latest.pop(None, None)
    last_child: dict[str, str] = latest  # type: ignore[assignment]
    pred = f.pred
    disjoint = INPUT_EDGE_KINDS.isdisjoint
    memo: dict[str, list[str]] = {}

    def deps(v: str) -> list[str]:
        d = memo.get(v)
        if d is not None:
            return d
        d = []
        for u, e in pred[v].items():
            kinds = e.get("kinds")
            if kinds and not disjoint(kinds):
                d.append(u)
        if not d and v in prev:
            d.append(prev[v])
        if v in last_child and attrs[v].get("kind") in CONTAINER_KINDS:
            d.append(last_child[v])
        memo[v] = d
        return d

    return deps, outcomes, parent


def causal_sets(G: nx.DiGraph[str]) -> dict[str, frozenset[str]]:
    """Seed key (outcome node id, or ``"final"``) → its causal set (seed included).

    Two kinds of membership: a node whose *result* is needed pulls in its dependencies and
    its parent; a parent pulled in only as the *host* of needed work pulls in its own parent
    but not its other children (otherwise every outcome under one agent would claim all of
    that agent's work).
    """
    return _causal_sets(_Facts(G))


def _causal_sets(f: _Facts) -> dict[str, frozenset[str]]:
    deps, outcomes, parent = _dependencies(f)
    seeds = {o: o for o in outcomes}
    if not seeds:
        fo = _final_output(f)
        if fo is None:
            return {}
        seeds = {FINAL: fo}
    out: dict[str, frozenset[str]] = {}
    for key, seed in seeds.items():
        full = {seed}
        host: set[str] = set()
        stack: list[tuple[str, bool]] = [(seed, True)]
        while stack:
            v, needed = stack.pop()
            if needed:
                for u in deps(v):
                    if u not in full:
                        full.add(u)
                        stack.append((u, True))
            p = parent.get(v)
            if p is not None and p not in full and p not in host:
                host.add(p)
                stack.append((p, False))
        out[key] = frozenset(full | host)
    return out


@dataclass(frozen=True)
class Allocation:
    """Exact split of one trace's cost: ``sum(productive) + sum(waste) == cost``.
    ``off_path`` is the part of ``productive`` that lies outside every causal set and that no
    finding explains (shared equally by the seeds; not waste, see :func:`allocate`)."""

    cost: Fraction
    productive: dict[str, Fraction]  # seed key -> Shapley share of productive cost
    waste: dict[str, Fraction]  # finding code -> dollars
    causal: frozenset[str]
    off_path: Fraction = Fraction(0)


class _Units(NamedTuple):
    """:class:`Allocation` in integer units of ``1 / denominator`` (a named tuple: cheaper
    to make than a frozen dataclass, once per trace)."""

    denominator: int
    cost: int
    productive: dict[str, int]
    waste: dict[str, int]
    causal: frozenset[str]
    off_path: int


def _ratio(x: Any) -> tuple[int, int]:
    """A positive cost as an exact ratio (its denominator a power of two); else 0."""
    v = float(x or 0.0)
    return v.as_integer_ratio() if v > 0 else (0, 1)


# (code, [(node id, amount)], [], 0): the analyzers' own per-node booking; else
# (code, [], node ids, amount): the finding's waste spread along its nodes in order. (At
# module level: a subscripted alias written inside the function was rebuilt on every call.)
_Booking = tuple[str, list[tuple[str, tuple[int, int]]], Sequence[str], tuple[int, int]]


def _bookings(findings: Iterable[FindingLike], den: int) -> tuple[list[_Booking], int]:
    """Each finding's booking in exact ratios, and the largest denominator seen."""
    bookings: list[_Booking] = []
    for fd in findings:
        by_node = (getattr(fd, "evidence", None) or {}).get("waste_by_node")
        if isinstance(by_node, dict) and by_node:
            amounts = [(str(n), _ratio(usd)) for n, usd in by_node.items()]
            for _, (_, d) in amounts:
                if d > den:
                    den = d
            bookings.append((fd.code, amounts, (), (0, 1)))
        else:
            r = _ratio(fd.wasted_cost_usd)
            if r[1] > den:
                den = r[1]
            bookings.append((fd.code, [], fd.node_ids, r))
    return bookings, den


def _book(findings: Iterable[FindingLike], f: _Facts
          ) -> tuple[int, dict[str, int], dict[str, int]]:
    """Book the findings' waste on their nodes (never more than a node's remaining cost):
    the unit denominator, each node's remaining cost and the waste by code, in those units."""
    bookings, den = _bookings(findings, f.den)
    remaining = {v: n * (den // d) for v, (n, d) in f.costs.items()}  # absent: nothing left
    waste: dict[str, int] = {}

    def book(code: str, nid: str, amount: int) -> int:
        """Book ``amount`` on node ``nid``, never more than its remaining cost; returns
        what was booked."""
        take = min(amount, remaining.get(nid, 0))
        if take > 0:
            remaining[nid] -= take
            waste[code] = waste.get(code, 0) + take
        return take

    for code, amounts, node_ids, (rn, rd) in bookings:
        if amounts:
            for nid, (n, d) in amounts:
                book(code, nid, n * (den // d))
            continue
        left = rn * (den // rd)
        for nid in node_ids:
            if left <= 0:
                break
            left -= book(code, nid, left)
    return den, remaining, waste


def _allocate_units(findings: Iterable[FindingLike], f: _Facts) -> _Units:
    """Waste is exactly what the findings book; every other dollar is productive: causal
    cost split equally among the seeds that need it, and off-path cost no finding explains
    split equally among all seeds (it is not waste: nobody can open a finding for it)."""
    den, remaining, waste = _book(findings, f)
    cost = sum(f.costs[v][0] * (den // f.costs[v][1]) for v in f.costs)
    sets = _causal_sets(f) or {FINAL: frozenset()}
    if len(sets) == 1:  # one seed (the common case): no split, no common multiple
        ((key, members),) = sets.items()
        kept = off = 0
        for v, c in remaining.items():
            if v in members:
                kept += c
            else:
                off += c
        return _Units(den, cost, {key: kept + off}, waste, members, off)
    depends: dict[str, list[str]] = {}
    for key, members in sets.items():
        for v in members:
            depends.setdefault(v, []).append(key)
    # Equal splits divide by the number of seeds sharing a node (or by all seeds, for
    # off-path cost): count in 1/(den·lcm) units.
    lcm = math.lcm(len(sets), *{len(keys) for keys in depends.values()})
    productive = dict.fromkeys(sets, 0)
    off = 0
    for v, c in remaining.items():
        if c == 0:
            continue
        keys = depends.get(v)
        if keys:
            share = c * lcm // len(keys)
            for k in keys:
                productive[k] += share
        else:
            off += c * lcm
    if off:
        share = off // len(sets)
        for k in productive:
            productive[k] += share
    waste = {k: w * lcm for k, w in waste.items()}
    return _Units(den * lcm, cost * lcm, productive, waste, frozenset(depends), off)


def allocate(G: nx.DiGraph[str], findings: Iterable[FindingLike] = ()) -> Allocation:
    """Split the trace's cost (sum of node ``cost_usd``; unpriced nodes count 0) exactly."""
    u = _allocate_units(findings, _Facts(G))
    d = u.denominator
    return Allocation(
        Fraction(u.cost, d),
        {k: Fraction(v, d) for k, v in u.productive.items()},
        {k: Fraction(v, d) for k, v in u.waste.items()},
        u.causal,
        Fraction(u.off_path, d),
    )


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
    # cost outside every causal set that no finding explains (counted in productive_usd)
    off_path_usd: float = 0.0

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


def attribute_trace(G: nx.DiGraph[str], findings: Iterable[FindingLike] = ()) -> Attribution:
    """Attribute one trace graph (the contract of :mod:`analyzers.graph`)."""
    f = _Facts(G)
    u = _allocate_units(findings, f)
    d = u.denominator
    causal = u.causal
    # int / int is correctly rounded: the same floats as float(Fraction(n, d)).
    return Attribution(
        trace_id=G.graph.get("trace_id"),
        cost_usd=u.cost / d,
        productive_usd=sum(u.productive.values()) / d,
        waste_usd={k: v / d for k, v in sorted(u.waste.items()) if v > 0},
        per_outcome_usd={k: v / d for k, v in u.productive.items()},
        path=tuple([v for _, v, _ in f._keys if v in causal]),  # in order
        seeds=tuple(u.productive),
        off_path_usd=u.off_path / d,
    )
