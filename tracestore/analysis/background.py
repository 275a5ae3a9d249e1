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

The corpus baselines are shared the same way: one process computes a project's baselines every
:data:`BASELINE_TTL_SECONDS` and stores them (table ``analysis_baselines``); every other worker
reads them (:meth:`AnalysisWorker._shared_baselines`). Computed per process, they were a full
pass over the ``baseline_days`` corpus in each worker, so a second worker added work instead
of sharing it (bench/RESULTS.md: 207 traces/s with one worker, 153 with two on 1M nodes).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from itertools import groupby
from typing import Any

import orjson
from sqlalchemy import Engine, Row, select
from sqlalchemy.orm import Session

from analyzers.baseline import baselines_from_dict, baselines_to_dict, compute_baselines
from tracestore.analysis import run
from tracestore.analysis.prices import with_price_table
from tracestore.analysis.run import AnalysisCounts, analyze_traces, baseline_window
from tracestore.analysis.suite import AnalyzerSuite, default_suite
from tracestore.ingest.delete import Deleted, prune
from tracestore.store.engine import session_scope, upsert
from tracestore.store.jsontext import json_text
from tracestore.store.load import BATCH_SIZE, Window
from tracestore.store.locks import exclusive
from tracestore.store.queue import Claim, claim, release, renew
from tracestore.store.tables import BASELINE_T

__all__ = ["BASELINE_RECHECK_SECONDS", "BASELINE_TTL_SECONDS", "MAX_POLL_SECONDS",
           "PRUNE_EVERY_SECONDS", "AnalysisWorker", "worker_name"]

log = logging.getLogger("tracestore.analysis")


# Poll at least this often, whatever settle_seconds is; 30 s is the default settle time.
MAX_POLL_SECONDS = 30.0
# Baselines summarise weeks of traffic (baseline_days); recomputing them more often than every
# 10 minutes would cost a full corpus pass per poll for no visible change in the norms.
BASELINE_TTL_SECONDS = 600.0
# A worker that finds the stored baselines out of date while another process recomputes them
# (a pass of ~minutes at 1M nodes) analyses with the old ones and looks again this often.
BASELINE_RECHECK_SECONDS = 15.0
# Retention (setting retention_days) is applied at most this often by each worker.
PRUNE_EVERY_SECONDS = 3600.0
DAY = 86_400.0

# (valid from: the time the baselines were computed, baselines, suite with their price table)
_Entry = tuple[float, dict[str, Any], AnalyzerSuite]


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
        # project -> (valid from, baselines, suite with the corpus' price table)
        self._baselines: dict[int, _Entry] = {}

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
        """The project's baselines and the suite priced for its corpus, at most
        :data:`BASELINE_TTL_SECONDS` old: this process' copy, else the stored ones
        (:meth:`_shared_baselines`). A suite with baselines of its own kind (not
        ``analyzers.baseline``'s, which the table stores) computes them in process."""
        cached = self._baselines.get(project_id)
        if cached is not None and now - cached[0] < BASELINE_TTL_SECONDS:
            return cached[1], cached[2]
        if self._suite().compute_baselines is compute_baselines:
            entry = self._shared_baselines(project_id, now)
        else:
            baselines, suite, _ = self._compute(project_id)
            entry = (now, baselines, suite)
        self._baselines[project_id] = entry
        return entry[1], entry[2]

    def _shared_baselines(self, project_id: int, now: float) -> _Entry:
        """The project's stored baselines when fresh; else the process that takes the project's
        lock (:func:`~tracestore.store.locks.exclusive`) computes and stores them, while the
        others analyse with the stored ones out of date (looking again after
        :data:`BASELINE_RECHECK_SECONDS`) or, when there are none, wait for the lock and read
        what its holder stored. N workers: one corpus pass per TTL, not N."""
        row = self._read_stored(project_id)
        if row is not None and self._fresh(row, now):
            return self._adopt(row)
        name = f"analysis-baselines:{project_id}"
        with exclusive(self.engine, name, wait=False) as held:
            if held:
                return self._recompute(project_id, now)
        if row is not None and row.baseline_days == self.baseline_days:
            _, baselines, suite = self._adopt(row)
            return now - BASELINE_TTL_SECONDS + BASELINE_RECHECK_SECONDS, baselines, suite
        with exclusive(self.engine, name):
            return self._recompute(project_id, now)

    def _recompute(self, project_id: int, now: float) -> _Entry:
        """Holding the project's lock: what its previous holder stored, if fresh, else compute
        the baselines and store them (committed before the lock is let go)."""
        row = self._read_stored(project_id)
        if row is not None and self._fresh(row, now):
            return self._adopt(row)
        t0 = time.perf_counter()
        baselines, suite, window = self._compute(project_id)
        with session_scope(self.engine) as session:
            upsert(session, BASELINE_T, [{
                "project_id": project_id, "baseline_days": self.baseline_days,
                "since": window.since, "until": window.until, "computed_at": now,
                "computed_by": self.worker,
                "baselines": json_text(baselines_to_dict(baselines)),
                "price_table": json_text(getattr(suite.config, "price_table", None) or {}),
            }], keys=("project_id",))
        log.info("%s computed the baselines of project %d (%d workflows) in %.1f s",
                 self.worker, project_id, len(baselines), time.perf_counter() - t0)
        return now, baselines, suite

    def _compute(self, project_id: int) -> tuple[dict[str, Any], AnalyzerSuite, Window]:
        """One corpus pass (:func:`~tracestore.analysis.run.compute_corpus_baselines`) over
        the trailing ``baseline_days``; also returns the window it read."""
        with Session(self.engine) as session:
            bwin = baseline_window(session, project_id=project_id, window=Window(),
                                   baseline_days=self.baseline_days)
        baselines, suite = run.compute_corpus_baselines(self.engine, project_id=project_id,
                                                        window=bwin, suite=self._suite())
        return baselines, suite, bwin

    def _read_stored(self, project_id: int) -> Row[Any] | None:
        with self.engine.connect() as conn:
            return conn.execute(select(BASELINE_T).where(
                BASELINE_T.c.project_id == project_id)).first()

    def _fresh(self, row: Row[Any], now: float) -> bool:
        """Stored for this worker's ``baseline_days`` less than the TTL before ``now``."""
        return bool(row.baseline_days == self.baseline_days
                    and now - row.computed_at < BASELINE_TTL_SECONDS)

    def _adopt(self, row: Row[Any]) -> _Entry:
        """The stored baselines, and this worker's suite with the stored price table: what the
        process that computed them analyses with. Valid from when they were computed."""
        suite = self._suite()
        # the computing worker's config had this table (none: a config without the field)
        config = with_price_table(suite.config, orjson.loads(row.price_table))
        return (row.computed_at, baselines_from_dict(orjson.loads(row.baselines)),
                dataclasses.replace(suite, config=config))

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
