"""The server's background analysis: a thread that analyses settled traces.

A trace is *settled* when it has been quiet (no new spans) for ``settle_seconds`` and has not
been analysed since its last update. The thread wakes every ``settle_seconds / 2`` (so a trace
is analysed at most 1.5 × ``settle_seconds`` after its last span, capped at
:data:`MAX_POLL_SECONDS`), analyses what has settled, project by project, and stops promptly
when the app shuts down. ``settle_seconds = 0`` turns it off.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tracestore.analysis.run import (
    AnalysisCounts,
    analyze_traces,
    baseline_window,
    compute_corpus_baselines,
)
from tracestore.analysis.suite import AnalyzerSuite, default_suite
from tracestore.store.load import BATCH_SIZE, Window, select_trace_ids
from tracestore.store.tables import TRACE_T

__all__ = ["BASELINE_TTL_SECONDS", "MAX_POLL_SECONDS", "AnalysisWorker"]

log = logging.getLogger("tracestore.analysis")


# Poll at least this often, whatever settle_seconds is; 30 s is the default settle time.
MAX_POLL_SECONDS = 30.0
# Baselines summarise weeks of traffic (baseline_days); recomputing them more often than every
# 10 minutes would cost a full corpus pass per poll for no visible change in the norms.
BASELINE_TTL_SECONDS = 600.0


class AnalysisWorker(threading.Thread):
    """Daemon thread; ``start()`` it in the app lifespan and ``stop()`` it on shutdown."""

    def __init__(self, engine: Engine, *, settle_seconds: float, baseline_days: float,
                 suite: AnalyzerSuite | None = None) -> None:
        super().__init__(name="tracestore-analysis", daemon=True)
        self.engine = engine
        self.settle_seconds = settle_seconds
        self.baseline_days = baseline_days
        self.suite = suite
        self.poll_seconds = min(settle_seconds / 2, MAX_POLL_SECONDS)
        self.totals = AnalysisCounts()
        self._stop_event = threading.Event()
        # project -> (computed at, baselines, suite with the corpus' price table)
        self._baselines: dict[int, tuple[float, dict[str, Any], AnalyzerSuite]] = {}

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to stop after its current batch and wait for it."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._stop_event.wait(self.poll_seconds):
            try:
                self.run_once(time.time())
            except Exception:  # keep serving; the next poll retries
                log.exception("background analysis failed")

    def _suite(self) -> AnalyzerSuite:
        if self.suite is None:
            self.suite = default_suite()
        return self.suite

    def _baselines_for(self, project_id: int, now: float) -> tuple[dict[str, Any], AnalyzerSuite]:
        cached = self._baselines.get(project_id)
        if cached is not None and now - cached[0] < BASELINE_TTL_SECONDS:
            return cached[1], cached[2]
        with Session(self.engine) as session:
            bwin = baseline_window(session, project_id=project_id, window=Window(),
                                   baseline_days=self.baseline_days)
        baselines, suite = compute_corpus_baselines(self.engine, project_id=project_id,
                                                    window=bwin, suite=self._suite())
        self._baselines[project_id] = (now, baselines, suite)
        return baselines, suite

    def run_once(self, now: float) -> AnalysisCounts:
        """Analyse every trace settled at ``now``, in every project. Returns the counts."""
        done = AnalysisCounts()
        with Session(self.engine) as session:
            projects = list(session.execute(select(TRACE_T.c.project_id).distinct()).scalars())
        for pid in sorted(projects):
            if self._stop_event.is_set():
                break
            with Session(self.engine) as session:
                ids = select_trace_ids(session, project_id=pid, window=Window(),
                                       settled_before=now - self.settle_seconds)
            if not ids:
                continue
            baselines, suite = self._baselines_for(pid, now)
            counts = AnalysisCounts()
            for i in range(0, len(ids), BATCH_SIZE):
                if self._stop_event.is_set():  # shut down between batches, not mid-write
                    break
                counts.add(analyze_traces(self.engine, project_id=pid,
                                          trace_ids=ids[i : i + BATCH_SIZE],
                                          baselines=baselines, suite=suite, now=now))
            log.info("analysed %d settled traces of project %d: %d findings",
                     counts.traces, pid, counts.findings)
            done.add(counts)
        self.totals.add(done)
        return done
