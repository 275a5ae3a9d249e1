"""Background analysis: a worker that takes settled traces off the shared analysis queue.

A trace is *settled* when it has been quiet (no new spans) for ``settle_seconds``. Every write
queues the traces it touched (``tracestore.store.queue``); a worker claims a batch of settled
ones with a lease, analyses them project by project and stores their findings, which takes
them off the queue. Any number of workers share one queue: the server's own thread
(:class:`AnalysisWorker` started in the app lifespan, polling every ``settle_seconds / 2``,
capped at :data:`MAX_POLL_SECONDS`; ``settle_seconds = 0`` turns it off) and the
``tracestore worker`` processes on any host. Workers also apply the ``retention_days`` setting
hourly (:meth:`AnalysisWorker.maybe_prune`). A worker killed mid-batch leaves leases that run
out after ``lease_seconds``; the traces are then claimed by another. See docs/operations.md.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from itertools import groupby
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tracestore.analysis.run import (
    AnalysisCounts,
    analyze_traces,
    baseline_window,
    compute_corpus_baselines,
)
from tracestore.analysis.suite import AnalyzerSuite, default_suite
from tracestore.ingest.delete import Deleted, prune
from tracestore.store.engine import session_scope
from tracestore.store.load import BATCH_SIZE, Window
from tracestore.store.queue import Claim, claim, release, renew

__all__ = ["BASELINE_TTL_SECONDS", "MAX_POLL_SECONDS", "PRUNE_EVERY_SECONDS", "AnalysisWorker",
           "worker_name"]

log = logging.getLogger("tracestore.analysis")


# Poll at least this often, whatever settle_seconds is; 30 s is the default settle time.
MAX_POLL_SECONDS = 30.0
# Baselines summarise weeks of traffic (baseline_days); recomputing them more often than every
# 10 minutes would cost a full corpus pass per poll for no visible change in the norms.
BASELINE_TTL_SECONDS = 600.0
# Retention (setting retention_days) is applied at most this often by each worker.
PRUNE_EVERY_SECONDS = 3600.0
DAY = 86_400.0


def worker_name() -> str:
    """A name no other worker has: host, process id and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class AnalysisWorker(threading.Thread):
    """Daemon thread; ``start()`` it in the app lifespan and ``stop()`` it on shutdown (or call
    :meth:`run` in the foreground, as ``tracestore worker`` does)."""

    def __init__(self, engine: Engine, *, settle_seconds: float, baseline_days: float,
                 suite: AnalyzerSuite | None = None, lease_seconds: float = 300.0,
                 batch_size: int = BATCH_SIZE, poll_seconds: float | None = None,
                 retention_days: float = 0.0) -> None:
        super().__init__(name="tracestore-analysis", daemon=True)
        self.engine = engine
        self.settle_seconds = settle_seconds
        self.baseline_days = baseline_days
        self.suite = suite
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds if poll_seconds is not None else min(
            settle_seconds / 2, MAX_POLL_SECONDS)
        self.retention_days = retention_days
        self._pruned_at = 0.0
        self.worker = worker_name()
        self.totals = AnalysisCounts()
        self._stop_event = threading.Event()
        # project -> (computed at, baselines, suite with the corpus' price table)
        self._baselines: dict[int, tuple[float, dict[str, Any], AnalyzerSuite]] = {}

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the worker to stop after its current batch and wait for the thread."""
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        while not self._stop_event.wait(self.poll_seconds):
            try:
                self.run_once(time.time())
                self.maybe_prune(time.time())
            except Exception:  # keep serving; the next poll retries
                log.exception("background analysis failed")

    def maybe_prune(self, now: float) -> Deleted | None:
        """Apply ``retention_days`` (at most every :data:`PRUNE_EVERY_SECONDS`): delete the
        traces that started before ``now - retention_days``. ``None`` when it did not run."""
        if self.retention_days <= 0 or now - self._pruned_at < PRUNE_EVERY_SECONDS:
            return None
        self._pruned_at = now
        deleted = prune(self.engine, before=now - self.retention_days * DAY)
        if deleted.traces:
            log.info("retention: deleted %d traces (%d nodes) older than %g days",
                     deleted.traces, deleted.nodes, self.retention_days)
        return deleted

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

    def claim(self, now: float) -> list[Claim]:
        """Lease the next batch of settled traces to this worker (committed)."""
        with session_scope(self.engine) as session:
            return claim(session, worker=self.worker, now=now,
                         settled_before=now - self.settle_seconds,
                         lease_seconds=self.lease_seconds, limit=self.batch_size)

    def run_once(self, now: float) -> AnalysisCounts:
        """Claim and analyse settled traces until none is left (or :meth:`stop`). Returns the
        counts."""
        done = AnalysisCounts()
        while not self._stop_event.is_set():
            claims = self.claim(now)
            if not claims:
                break
            log.debug("%s claimed %s", self.worker, " ".join(c.trace_id for c in claims))
            for pid, group in groupby(claims, key=lambda c: c.project_id):
                mine = list(group)
                if self._stop_event.is_set():  # shut down between batches, not mid-write
                    with session_scope(self.engine) as session:
                        release(session, worker=self.worker, claims=mine)
                    continue
                baselines, suite = self._baselines_for(pid, now)
                with session_scope(self.engine) as session:
                    mine = renew(session, worker=self.worker, claims=mine, now=time.time(),
                                 lease_seconds=self.lease_seconds)
                counts = analyze_traces(self.engine, project_id=pid,
                                        trace_ids=[c.trace_id for c in mine],
                                        baselines=baselines, suite=suite, now=now)
                log.debug("%s analysed %s", self.worker, " ".join(c.trace_id for c in mine))
                log.info("analysed %d settled traces of project %d: %d findings",
                         counts.traces, pid, counts.findings)
                done.add(counts)
            now = time.time()
        self.totals.add(done)
        return done
