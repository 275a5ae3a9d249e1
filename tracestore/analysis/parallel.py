"""Analysis over trace partitions in parallel worker processes (``tracestore analyze``).

The parent selects the traces and computes the baselines once; each worker process gets one
contiguous partition of the sorted trace ids, opens its own engine and reads, analyses and
writes its partition in batches, reporting progress through a queue. Workers start with the
``spawn`` method so none inherits the parent's connections or threads.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from tracestore.analysis.run import (
    AnalysisCounts,
    analyze_traces,
    baseline_window,
    compute_corpus_baselines,
)
from tracestore.analysis.suite import AnalyzerSuite
from tracestore.errors import TracestoreError
from tracestore.store.engine import make_engine
from tracestore.store.load import Window, select_trace_ids

__all__ = ["partition", "run_parallel"]


def partition(ids: Sequence[str], parts: int) -> list[list[str]]:
    """``parts`` contiguous, nearly equal slices of ``ids`` (empty slices dropped).

    >>> partition(["a", "b", "c", "d", "e"], 2)
    [['a', 'b', 'c'], ['d', 'e']]
    """
    parts = max(1, min(parts, len(ids)))
    size, extra = divmod(len(ids), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(list(ids[start:end]))
        start = end
    return [p for p in out if p]


def _worker(url: str, project_id: int, ids: list[str], baselines: dict[str, Any],
            suite: AnalyzerSuite, now: float, q: Any) -> None:
    engine = make_engine(url)
    try:
        counts = analyze_traces(engine, project_id=project_id, trace_ids=ids,
                                baselines=baselines, suite=suite, now=now,
                                progress=lambda n: q.put(("progress", n)))
        q.put(("done", (counts.traces, counts.findings, counts.wasted_cost_usd)))
    except Exception as exc:
        q.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()


def run_parallel(
    url: str,
    *,
    project_id: int,
    window: Window,
    suite: AnalyzerSuite,
    baseline_days: float,
    now: float,
    workers: int,
    on_total: Callable[[int], Any] = lambda n: None,
    on_progress: Callable[[int], Any] = lambda n: None,
) -> AnalysisCounts:
    """Analyse ``window`` with ``workers`` processes; ``workers=1`` runs in this process."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            ids = select_trace_ids(session, project_id=project_id, window=window)
            bwin = baseline_window(session, project_id=project_id, window=window,
                                   baseline_days=baseline_days)
        on_total(len(ids))
        if not ids:
            return AnalysisCounts()
        baselines, suite = compute_corpus_baselines(engine, project_id=project_id,
                                                    window=bwin, suite=suite)
        if workers <= 1:
            return analyze_traces(engine, project_id=project_id, trace_ids=ids,
                                  baselines=baselines, suite=suite, now=now,
                                  progress=on_progress)
    finally:
        engine.dispose()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(url, project_id, part, baselines, suite, now, q),
                    daemon=True)
        for part in partition(ids, workers)
    ]
    for p in procs:
        p.start()
    total, errors = _collect(procs, q, on_progress)
    for p in procs:
        p.join()
    if errors:
        raise TracestoreError("analysis worker failed: " + "; ".join(errors))
    return total


def _collect(procs: list[Any], q: Any, on_progress: Callable[[int], Any]
             ) -> tuple[AnalysisCounts, list[str]]:
    """The workers' reports from ``q`` until each is done or failed (or all exited): their
    summed counts and their errors; progress reports go to ``on_progress``."""
    total, errors, pending = AnalysisCounts(), [], len(procs)
    while pending:
        try:
            kind, payload = q.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                errors.append("a worker process exited without reporting")
                break
            continue
        if kind == "progress":
            on_progress(payload)
        elif kind == "done":
            total.add(AnalysisCounts(*payload))
            pending -= 1
        else:
            errors.append(payload)
            pending -= 1
    return total, errors
