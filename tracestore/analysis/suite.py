"""The seam between the analysis runtime and the pure :mod:`analyzers` package.

An :class:`AnalyzerSuite` bundles the three pure entry points the runtime calls: collect
baseline samples from a graph, turn the corpus' samples into per-workflow baselines, and
analyse one graph against its workflow's baseline. :func:`default_suite` wires in
``analyzers.baseline`` and ``analyzers.run``; tests and benchmarks may pass their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import networkx as nx

from analyzers.findings import Finding

__all__ = ["AnalyzerSuite", "default_suite"]

CollectSamples: TypeAlias = "Callable[[nx.DiGraph[str]], Sequence[Any]]"
ComputeBaselines = Callable[[Sequence[Any]], dict[str, Any]]
AnalyzeTrace = Callable[..., list[Finding]]


@dataclass(frozen=True)
class AnalyzerSuite:
    """Pure functions plus the analyzer configuration they share. Must be picklable (module
    level functions, a dataclass config): parallel runs ship it to worker processes."""

    collect_samples: CollectSamples
    compute_baselines: ComputeBaselines
    analyze_trace: AnalyzeTrace
    config: Any = None

    def analyze(self, G: nx.DiGraph[str], baselines: dict[str, Any]) -> list[Finding]:
        """Findings of one trace graph against its workflow's baseline (None when the corpus
        holds no sample of that workflow)."""
        baseline = baselines.get(G.graph.get("workflow") or "")
        return self.analyze_trace(G, baseline=baseline, config=self.config)


def default_suite(config: Any = None) -> AnalyzerSuite:
    """The real analyzers, with ``config`` (an ``analyzers.run.AnalyzerConfig``) or the
    default configuration filled from :func:`tracestore.analysis.pricing.analyzer_config`."""
    from analyzers.baseline import collect_samples, compute_baselines
    from analyzers.run import analyze_trace

    if config is None:
        from tracestore.analysis.prices import analyzer_config

        config = analyzer_config()
    return AnalyzerSuite(collect_samples, compute_baselines, analyze_trace, config)
