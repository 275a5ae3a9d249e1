"""Path signatures: a trace's productive path reduced to a comparable string (docs/analysis.md).

Each step of the path (the causal set of :mod:`analyzers.attribution`, in execution order)
becomes ``kind:name`` (the step key, tool name or span name), with ``[tier]`` appended for
model calls (:func:`analyzers.tiers.model_tier`; nothing when the model is unknown);
containers (agent/chain) and outcome nodes are structure, not work, and are left out.
Consecutive equal steps collapse into one with a ``×n`` count, so ``llm:answer`` retried
three times reads ``llm:answer[frontier] ×3``.
Traces with the same signature took the same route, and grouping by signature shows which
route costs most per outcome and wastes most.

>>> import networkx as nx
>>> G = nx.DiGraph()
>>> G.add_node("r", kind="retrieval", name="kb_search")
>>> for i in range(3):
...     G.add_node(f"l{i}", kind="llm", name="answer", model="gpt-4o")
>>> path_signature(G, ["r", "l0", "l1", "l2"])
'retrieval:kb_search > llm:answer[frontier] ×3'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx

from analyzers.tiers import model_tier

__all__ = [
    "SEPARATOR",
    "PathGroup",
    "TracePath",
    "collapse",
    "group_paths",
    "path_signature",
    "path_steps",
]

SEPARATOR = " > "
SKIP_KINDS = frozenset({"agent", "chain", "outcome"})
MODEL_KINDS = frozenset({"llm", "embedding"})

def path_steps(G: nx.DiGraph[str], path: Iterable[str]) -> list[str]:
    """One ``kind:name[tier]`` token per working node of ``path`` (order kept)."""
    out: list[str] = []
    attrs = G.nodes
    for v in path:
        a = attrs[v]
        kind = a.get("kind") or "chain"
        if kind in SKIP_KINDS:
            continue
        name = a.get("step") or a.get("tool_name") or a.get("name") or "?"
        token = f"{kind}:{name}"
        if kind in MODEL_KINDS:
            tier = model_tier(a.get("model"))
            if tier:
                token += f"[{tier}]"
        out.append(token)
    return out


def collapse(steps: Sequence[str]) -> str:
    """Join steps, collapsing consecutive repeats into ``step ×n``.

    >>> collapse(["a", "a", "b", "a"])
    'a ×2 > b > a'
    """
    parts: list[str] = []
    i = 0
    while i < len(steps):
        j = i
        while j < len(steps) and steps[j] == steps[i]:
            j += 1
        parts.append(steps[i] if j - i == 1 else f"{steps[i]} ×{j - i}")
        i = j
    return SEPARATOR.join(parts)


def path_signature(G: nx.DiGraph[str], path: Iterable[str]) -> str:
    """The signature of ``path`` (node ids in execution order) in graph ``G``."""
    return collapse(path_steps(G, path))


@dataclass(frozen=True)
class TracePath:
    """One trace's facts for grouping: its signature, cost, waste by code, and whether it is
    the attempt that produced its task's successful outcome."""

    trace_id: str
    signature: str
    cost_usd: float
    waste_usd: Mapping[str, float] = field(default_factory=dict)
    success: bool = False  # this attempt produced its task's successful outcome
    decided: bool = False  # its task has a recorded outcome (any status)
    workflow: str | None = None
    started_at: float | None = None


@dataclass(frozen=True)
class PathGroup:
    """Traces of one workflow sharing one signature. ``success_rate`` is over traces whose
    task has an outcome; ``cost_per_outcome`` is the group's spend over its successes."""

    workflow: str | None
    signature: str
    traces: int
    successes: int
    decided: int
    cost_usd: float
    waste_usd: float
    top_codes: tuple[tuple[str, float], ...]
    example_trace_ids: tuple[str, ...]

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.decided if self.decided else None

    @property
    def mean_cost_usd(self) -> float:
        return self.cost_usd / self.traces if self.traces else 0.0

    @property
    def cost_per_outcome_usd(self) -> float | None:
        return self.cost_usd / self.successes if self.successes else None


def group_paths(items: Iterable[TracePath], *, examples: int = 3, top: int = 3) -> list[PathGroup]:
    """Group traces by (workflow, signature); examples are the wasteful traces (most waste,
    then costliest), then the most recent others.

    >>> g = group_paths([TracePath("a", "s", 2.0, {"churn.exact_repeat": 1.0}, True, True),
    ...                  TracePath("b", "s", 1.0, {}, False, True)])
    >>> g[0].traces, g[0].success_rate, g[0].cost_per_outcome_usd, g[0].example_trace_ids
    (2, 0.5, 3.0, ('a', 'b'))
    """
    by_sig: dict[tuple[str | None, str], list[TracePath]] = {}
    for it in items:
        by_sig.setdefault((it.workflow, it.signature), []).append(it)
    out: list[PathGroup] = []
    for (wf, sig), members in by_sig.items():
        codes: dict[str, float] = {}
        for m in members:
            for code, usd in m.waste_usd.items():
                codes[code] = codes.get(code, 0.0) + usd
        wasteful = sorted((m for m in members if sum(m.waste_usd.values()) > 0),
                          key=lambda m: (-sum(m.waste_usd.values()), -m.cost_usd, m.trace_id))
        others = sorted((m for m in members if sum(m.waste_usd.values()) <= 0),
                        key=lambda m: (m.started_at or 0.0, m.trace_id), reverse=True)
        ranked = wasteful + others
        out.append(PathGroup(
            workflow=wf,
            signature=sig,
            traces=len(members),
            successes=sum(m.success for m in members),
            decided=sum(m.decided for m in members),
            cost_usd=sum(m.cost_usd for m in members),
            waste_usd=sum(codes.values()),
            top_codes=tuple(sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))[:top]),
            example_trace_ids=tuple(m.trace_id for m in ranked[:examples]),
        ))
    return out
