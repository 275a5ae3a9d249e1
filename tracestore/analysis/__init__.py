"""The analysis runtime: stored traces → graphs → :mod:`analyzers` → stored findings.

::


    suite.py       the seam to the pure analyzers (samples, baselines, analyze_trace)
    prices.py      per-model rates from tracestore.pricing.pricer for the analyzers' config
    run.py         one run: baselines once, analyse, replace findings, stamp analyzed_at
    parallel.py    the same over trace partitions in worker processes (CLI)
    background.py  the server thread that analyses settled traces
    queries.py     GET /findings reads

Analysis runs three ways: by itself in the server for traces quiet for ``settle_seconds``,
on demand with ``POST /api/v1/analyze``, and from ``tracestore analyze``.
"""

from tracestore.analysis.run import POST_ANALYSIS_HOOKS, AnalysisCounts, analyze_window
from tracestore.analysis.suite import AnalyzerSuite, default_suite
from tracestore.store.load import Window

__all__ = [
    "POST_ANALYSIS_HOOKS",
    "AnalysisCounts",
    "AnalyzerSuite",
    "Window",
    "analyze_window",
    "default_suite",
]
