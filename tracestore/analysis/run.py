"""One analysis run: pick traces, compute baselines once, analyse, replace stored findings.

A run is deterministic for a given store: traces are analysed in trace-id order, baselines
come from a corpus window fixed by the request (the trailing ``baseline_days`` before
``until``, or before the newest trace when ``until`` is open), and finding ids are derived from
(trace, code, path). Re-analysing a trace deletes its findings and inserts the new set in the
same transaction, so a trace never shows two generations of findings.

``traces.analyzed_at`` is set only where ``updated_at`` still equals the value read before
analysis: a trace that received spans meanwhile stays "not analysed since its last update" and
the background worker picks it up again.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from analyzers.findings import Finding
from tracestore.analysis.prices import corpus_models, price_table, with_price_table
from tracestore.analysis.suite import AnalyzerSuite
from tracestore.pricing.book import Book, load_book
from tracestore.reports.summaries import StoredFinding, summary_row, write_summaries
from tracestore.store.engine import param_mark, session_scope, upsert
from tracestore.store.jsontext import json_text
from tracestore.store.load import (
    BATCH_SIZE,
    LoadedTrace,
    Window,
    build_batch,
    preloaded,
    read_batch,
    select_trace_ids,
)
from tracestore.store.queue import done
from tracestore.store.tables import FINDING_T, TRACE_T

__all__ = [
    "POST_ANALYSIS_HOOKS",
    "AnalysisCounts",
    "analyze_traces",
    "analyze_window",
    "baseline_window",
    "compute_corpus_baselines",
    "store_findings",
]


DAY = 86_400.0

PostAnalysisHook = Callable[[Session, int, list[str]], None]
# Called inside the transaction that stored a batch's findings, with (session, project_id,
# trace_ids). Per-trace summaries (tracestore.reports.summaries.summarize_traces) belong here.
POST_ANALYSIS_HOOKS: list[PostAnalysisHook] = []


@dataclass
class AnalysisCounts:
    """What a run did. ``wasted_cost_usd`` sums the findings' booked waste."""

    traces: int = 0
    findings: int = 0
    wasted_cost_usd: float = 0.0

    def add(self, other: AnalysisCounts) -> None:
        self.traces += other.traces
        self.findings += other.findings
        self.wasted_cost_usd += other.wasted_cost_usd


def baseline_window(
    session: Session, *, project_id: int, window: Window, baseline_days: float
) -> Window:
    """The corpus window baselines are computed from: the trailing ``baseline_days`` before
    ``window.until``, or before the newest trace of the project when ``until`` is open.

    >>> from tracestore.store.engine import create_schema, make_engine
    >>> engine = make_engine("sqlite://"); create_schema(engine)
    >>> with Session(engine) as s:
    ...     baseline_window(s, project_id=1, window=Window(until=100 * DAY), baseline_days=28)
    Window(since=6220800.0, until=8640000.0, workflow=None)
    """
    anchor = window.until
    if anchor is None:
        t = TRACE_T.c
        conds = [t.project_id == project_id]
        if window.workflow is not None:
            conds.append(t.workflow == window.workflow)
        anchor = session.execute(select(func.max(t.started_at)).where(*conds)).scalar()
        if anchor is None:
            return Window(workflow=window.workflow)
        return Window(since=anchor - baseline_days * DAY, workflow=window.workflow)
    return Window(since=anchor - baseline_days * DAY, until=anchor, workflow=window.workflow)


def compute_corpus_baselines(
    engine: Engine, *, project_id: int, window: Window, suite: AnalyzerSuite
) -> tuple[dict[str, Any], AnalyzerSuite]:
    """One pass over every stored trace in ``window``: per-workflow baselines, and ``suite``
    with its price table filled for the corpus' models (project price book, else
    genai-prices, at the window's end or its newest trace)."""
    samples: list[Any] = []
    models: set[tuple[str | None, str]] = set()
    newest = 0.0
    with Session(engine) as session:
        ids = select_trace_ids(session, project_id=project_id, window=window)
        for i in range(0, len(ids), BATCH_SIZE):
            chunk = ids[i : i + BATCH_SIZE]
            for lt in build_batch(read_batch(session, project_id=project_id, chunk=chunk),
                                  chunk):
                samples.extend(suite.collect_samples(lt.graph))
                models |= corpus_models(lt.graph)
                newest = max(newest, lt.started_at or 0.0)
        book = Book(load_book(session, project_id=project_id))
    ts = window.until if window.until is not None else newest
    config = with_price_table(suite.config, price_table(models, book=book, ts=ts))
    return suite.compute_baselines(samples), dataclasses.replace(suite, config=config)


def _finding_values(project_id: int, lt: LoadedTrace, f: Finding, now: float
                    ) -> tuple[Any, ...]:
    """``f`` as the findings row (the driver's tuple), in the order of :data:`_FINDING_COLS`,
    its JSON columns encoded (:func:`~tracestore.store.jsontext.json_text`)."""
    cost = float(f.wasted_cost_usd)
    return (project_id, f.id, lt.trace_id,
            f.workflow if f.workflow is not None else lt.workflow,
            f.analyzer, f.code, json_text(list(f.node_ids)), int(f.wasted_tokens),
            cost if math.isfinite(cost) else 0.0, float(f.savings_usd), float(f.confidence),
            json_text(f.evidence), f.message, lt.started_at, now)


_FINDING_COLS = tuple(c.name for c in FINDING_T.columns)
# _finding_values' order; checked at import (not by assert, which -O drops) so that a schema
# change cannot misplace values
if _FINDING_COLS != (
        "project_id", "id", "trace_id", "workflow", "analyzer", "code", "node_ids",
        "wasted_tokens", "wasted_cost_usd", "savings_usd", "confidence", "evidence", "message",
        "trace_started_at", "created_at"):
    raise RuntimeError(f"findings columns changed; update _finding_values: {_FINDING_COLS}")
_COST = _FINDING_COLS.index("wasted_cost_usd")


class _BatchOut:
    """What a batch's analysis leaves for its write: plain rows, no graphs. Each trace's
    findings rows and summary row are made as soon as its findings are (:meth:`add`), so
    its graph and views are freed before the next trace is built; the batch then writes
    them in bulk (:meth:`write`)."""

    def __init__(self, project_id: int, now: float) -> None:
        self.project_id = project_id
        self.now = now
        # finding id -> findings row (the driver's tuple); the first of a repeated id wins
        self.findings: dict[str, tuple[Any, ...]] = {}
        # trace id -> its summary row (the first analysis of a trace asked for twice)
        self.summaries: dict[str, dict[str, Any]] = {}
        self.analysed: list[tuple[str, float]] = []  # (trace id, updated_at read)

    def add(self, lt: LoadedTrace, findings: list[Finding]) -> None:
        """Rows of one analysed trace. Its summary reads its findings as stored: one row
        per id, in id order, the booked cost as written."""
        self.analysed.append((lt.trace_id, lt.updated_at))
        stored: list[tuple[str, StoredFinding]] = []
        for f in findings:
            if f.id not in self.findings:
                v = _finding_values(self.project_id, lt, f, self.now)
                self.findings[f.id] = v
                stored.append((f.id, StoredFinding(f.code, tuple(f.node_ids), v[_COST],
                                                   f.evidence or {})))
        if lt.trace_id not in self.summaries:
            stored.sort(key=operator.itemgetter(0))
            G = lt.graph
            self.summaries[lt.trace_id] = summary_row(
                self.project_id, G, {**G.graph, "user_id": lt.user_id},
                [sf for _, sf in stored], self.now)

    def write(self, session: Session) -> AnalysisCounts:
        """Replace the findings of the analysed traces, stamp ``analyzed_at``, write their
        summaries. Does not commit."""
        counts = AnalysisCounts(traces=len(self.analysed))
        if not self.analysed:
            return counts
        pid, now, mark = self.project_id, self.now, param_mark(session)
        trace_ids = [tid for tid, _ in self.analysed]
        conn = session.connection()
        for i in range(0, len(trace_ids), BATCH_SIZE):
            chunk = trace_ids[i : i + BATCH_SIZE]
            conn.exec_driver_sql(
                f"DELETE FROM {FINDING_T.name} WHERE project_id = {mark} "
                f"AND trace_id IN ({', '.join([mark] * len(chunk))})", (pid, *chunk))
        rows = list(self.findings.values())
        upsert(session, FINDING_T, rows, columns=_FINDING_COLS,
               keys=("project_id", "trace_id", "id"), encode_json=None)
        # ``updated_at + 0``: compared bare, PostgreSQL may pick ix_traces_project_updated
        # and read every trace written by the same request (they share updated_at) instead
        # of the one row of the primary key (tests/tracestore/test_query_plans.py).
        conn.exec_driver_sql(
            f"UPDATE {TRACE_T.name} SET analyzed_at = {mark} WHERE project_id = {mark} "
            f"AND trace_id = {mark} AND updated_at + 0 = {mark}",
            [(now, pid, tid, updated) for tid, updated in self.analysed])
        done(session, project_id=pid, analysed=self.analysed)
        write_summaries(session, project_id=pid, rows=list(self.summaries.values()))
        for hook in POST_ANALYSIS_HOOKS:
            hook(session, pid, trace_ids)
        counts.findings = len(rows)
        counts.wasted_cost_usd = sum(v[_COST] for v in rows)
        return counts


def store_findings(
    session: Session,
    *,
    project_id: int,
    results: Sequence[tuple[LoadedTrace, list[Finding]]],
    now: float,
) -> AnalysisCounts:
    """Replace the findings of the analysed traces, stamp ``analyzed_at`` and write their
    summaries. Does not commit. Returns the counts of what was stored."""
    out = _BatchOut(project_id, now)
    for lt, findings in results:
        out.add(lt, findings)
    return out.write(session)


def analyze_traces(
    engine: Engine,
    *,
    project_id: int,
    trace_ids: Sequence[str],
    baselines: dict[str, Any],
    suite: AnalyzerSuite,
    now: float,
    progress: Callable[[int], Any] | None = None,
) -> AnalysisCounts:
    """Analyse ``trace_ids`` in batches: read a batch (one read transaction), analyse it in
    memory one trace at a time (each graph freed once its rows are made), then store its
    findings and summaries (one short write transaction, so SQLite's write lock is held
    only while writing)."""
    total = AnalysisCounts()
    # One connection for the whole run, each batch's read and write in their own
    # transaction on it (no lock is held between them). SQLite's engine opens a connection
    # per checkout, and opening one runs the pragmas and starts with a cold page cache, while
    # closing the last one checkpoints the WAL into the database file, both once per batch.
    with engine.connect() as conn:
        for i in range(0, len(trace_ids), BATCH_SIZE):
            chunk = trace_ids[i : i + BATCH_SIZE]
            with Session(conn) as session:
                batch = read_batch(session, project_id=project_id,
                                   chunk=list(dict.fromkeys(chunk)))
            out = _BatchOut(project_id, now)
            # graphs are kept for the batch only when a post-analysis hook may ask for them
            kept: list[LoadedTrace] | None = [] if POST_ANALYSIS_HOOKS else None
            for lt in build_batch(batch, chunk):
                out.add(lt, suite.analyze(lt.graph, baselines))
                if kept is not None:
                    kept.append(lt)
            del batch
            with session_scope(conn) as session, preloaded(project_id, kept or ()):
                total.add(out.write(session))
            if progress is not None:
                progress(len(chunk))
    return total


def analyze_window(
    engine: Engine,
    *,
    project_id: int,
    window: Window,
    suite: AnalyzerSuite,
    baseline_days: float,
    now: float,
) -> AnalysisCounts:
    """Analyse every trace in ``window`` now, in this process (the API and ``--workers 1``)."""
    with Session(engine) as session:
        ids = select_trace_ids(session, project_id=project_id, window=window)
        bwin = baseline_window(session, project_id=project_id, window=window,
                               baseline_days=baseline_days)
    if not ids:
        return AnalysisCounts()
    baselines, priced = compute_corpus_baselines(engine, project_id=project_id, window=bwin,
                                                 suite=suite)
    return analyze_traces(engine, project_id=project_id, trace_ids=ids, baselines=baselines,
                          suite=priced, now=now)
