"""Run every analyzer over one trace and book each node's waste once.

:func:`analyze_trace` is the entry point the analysis runtime calls per trace, with the
trace's :class:`~analyzers.baseline.WorkflowBaseline` (from :func:`compute_baselines` over
the corpus's :func:`collect_samples`) and an :class:`AnalyzerConfig`. Findings of the three
analyzers are merged with :func:`analyzers.common.book_once` — the most precise rule wins a
node's waste — so the trace's booked waste never exceeds its cost.

>>> import networkx as nx
>>> G = nx.DiGraph(trace_id="t", workflow="w")
>>> G.add_node("a", kind="llm", model="gpt-4o-mini", input_tokens=10, cost_usd=0.0, order=0)
>>> analyze_trace(G, baseline=None)
[]
"""

from __future__ import annotations

import networkx as nx

from analyzers import bloat, churn, routing
from analyzers.baseline import WorkflowBaseline, collect_samples, compute_baselines
from analyzers.common import book_once
from analyzers.config import AnalyzerConfig
from analyzers.findings import Finding
from analyzers.view import TraceView

__all__ = [
    "AnalyzerConfig", "WorkflowBaseline", "analyze_trace", "collect_samples",
    "compute_baselines",
]

_DEFAULT = AnalyzerConfig()


def analyze_trace(G: nx.DiGraph[str], *, baseline: WorkflowBaseline | None,
                  config: AnalyzerConfig | None = None) -> list[Finding]:
    """Churn, bloat and routing findings of one trace, each node's waste booked once.

    Pure and deterministic: the same graph, baseline and config give the same findings (ids
    included). The graph is not modified.
    """
    cfg = config or _DEFAULT
    view = TraceView(G)
    found = [
        *churn.find(view, baseline=baseline, config=cfg),
        *bloat.find(view, baseline=baseline, config=cfg),
        *routing.find(view, baseline=baseline, config=cfg),
    ]
    return book_once(G, found, attrs=view.A)
