"""Deleting traces: one trace (``DELETE /api/v1/traces/{id}``) or every trace that started
before a time (``tracestore prune``, the ``retention_days`` setting).

A trace goes with everything stored under its ``(project_id, trace_id)``: nodes, edges,
findings, its summary and its analysis-queue row, in one transaction, so every report
(``/traces``, ``/findings``, ``/paths``, ``/attribution``, the digest) reflects the deletion
at once. Outcomes are task-level records and stay; the other traces of an affected task get
their task columns (attempt index, attempts, the attempt the outcome counts on) recomputed.
A trace that never got a start time is pruned by its last write time. On PostgreSQL, whose
per-span tables are partitioned by month (:mod:`tracestore.store.partitions`), pruning every
project first drops each month whose traces all started before the cutoff: its ``nodes`` and
``edges`` partitions go whole, its traces' other rows are deleted as above. See
docs/operations.md, "Deleting data and retention".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, Table, or_, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tracestore.reports.summaries import refresh_tasks
from tracestore.store.engine import param_mark, session_scope
from tracestore.store.locks import store_key_args
from tracestore.store.partitions import (
    PARTITIONED,
    WRITE_LOCK_KEY,
    by_partition,
    is_partitioned,
    month_of,
    month_partitions,
    next_month,
    partition_name,
)
from tracestore.store.tables import (
    CLAIM_T,
    EDGE_T,
    FINDING_T,
    NODE_T,
    PROJECT_T,
    SUMMARY_T,
    TRACE_T,
    WASTE_T,
)

log = logging.getLogger("tracestore")

__all__ = ["BATCH", "Deleted", "delete_traces", "drop_expired_months", "prune"]

# Traces deleted per statement (an IN list), and per transaction when pruning.
BATCH = 500
# The trace row first: its row lock is what every write of the trace takes first
# (tracestore.ingest.write), so a concurrent write waits instead of deadlocking.
_PER_TRACE = (TRACE_T, NODE_T, EDGE_T, FINDING_T, SUMMARY_T, WASTE_T, CLAIM_T)
# A month's partitions are dropped only if their locks are had within this time; otherwise
# that month's traces are deleted row by row (the next run tries the drop again).
DROP_LOCK_TIMEOUT = "10s"


@dataclass
class Deleted:
    """Rows removed, by table."""

    traces: int = 0
    nodes: int = 0
    edges: int = 0
    findings: int = 0
    summaries: int = 0
    months: int = 0  # month partitions dropped (PostgreSQL)

    def add(self, other: Deleted) -> None:
        self.traces += other.traces
        self.nodes += other.nodes
        self.edges += other.edges
        self.findings += other.findings
        self.summaries += other.summaries
        self.months += other.months


def delete_traces(session: Session, *, project_id: int, trace_ids: Sequence[str],
                  tables: Sequence[Table] = _PER_TRACE) -> Deleted:
    """Delete ``trace_ids`` of ``project_id`` with all their rows (in ``tables``); refresh
    the task columns of the remaining traces of their tasks. Does not commit. Returns the
    rows removed."""
    out = Deleted()
    if not trace_ids:
        return out
    t = TRACE_T.c
    tasks: set[str] = set()
    months: dict[str, int] = {}
    for tid, task, month in session.execute(select(t.trace_id, t.task_id, t.trace_month).where(
            t.project_id == project_id, t.trace_id.in_(trace_ids))):
        if task is not None:
            tasks.add(task)
        if month is not None:
            months[tid] = month
    m = param_mark(session)
    conn = session.connection()
    counts: dict[str, int] = {}
    for i in range(0, len(trace_ids), BATCH):
        chunk = list(trace_ids[i : i + BATCH])
        for table in tables:
            # per-span tables on PostgreSQL: each month's rows in that month's partition
            parts = (by_partition(conn, table, months, chunk) if table in PARTITIONED
                     else [(table.name, chunk)])
            for name, ids in parts:
                r = conn.exec_driver_sql(
                    f"DELETE FROM {name} WHERE project_id = {m} AND trace_id IN "
                    f"({', '.join([m] * len(ids))})", (project_id, *ids))
                counts[table.name] = counts.get(table.name, 0) + max(r.rowcount, 0)
    out.traces = counts.get(TRACE_T.name, 0)
    out.nodes = counts.get(NODE_T.name, 0)
    out.edges = counts.get(EDGE_T.name, 0)
    out.findings = counts.get(FINDING_T.name, 0)
    out.summaries = counts.get(SUMMARY_T.name, 0)
    if tasks:
        refresh_tasks(session, project_id=project_id, task_ids=sorted(tasks))
    return out


def _expired_sql(before: float) -> str:
    """The SQL condition of a trace pruned at ``before`` (as :func:`_expired` selects)."""
    b = float(before)
    return f"(started_at < {b!r} OR (started_at IS NULL AND updated_at < {b!r}))"


def _expired(session: Session, project_id: int, before: float, limit: int) -> list[str]:
    t = TRACE_T.c
    old = or_(t.started_at < before, t.started_at.is_(None) & (t.updated_at < before))
    return list(session.execute(
        select(t.trace_id).where(t.project_id == project_id, old)
        .order_by(t.trace_id).limit(limit)).scalars())


def prune(engine: Engine, *, before: float, project_id: int | None = None) -> Deleted:
    """Delete every trace (of ``project_id``, or of every project) that started before
    ``before``, :data:`BATCH` traces a transaction. Returns the rows removed. For every
    project on PostgreSQL, whole months go first (:func:`drop_expired_months`)."""
    total = Deleted()
    if project_id is None:
        total.add(drop_expired_months(engine, before=before))
    with Session(engine) as session:
        projects = [project_id] if project_id is not None else sorted(
            session.execute(select(TRACE_T.c.project_id).distinct()).scalars())
    for pid in projects:
        while True:
            with session_scope(engine) as session:
                ids = _expired(session, pid, before, BATCH)
                if not ids:
                    break
                total.add(delete_traces(session, project_id=pid, trace_ids=ids))
    return total


def drop_expired_months(engine: Engine, *, before: float) -> Deleted:
    """PostgreSQL: drop the month partitions of ``nodes`` and ``edges`` that end at or before
    ``before`` and whose traces (of every project) all started before it, deleting those
    traces' other rows in the same transaction; one transaction a month. A month with a trace
    still kept, or whose locks are not had within :data:`DROP_LOCK_TIMEOUT`, is left to the
    row deletes of :func:`prune`. A no-op on SQLite."""
    total = Deleted()
    with engine.connect() as conn:
        if not is_partitioned(conn):
            return total
        months = [m for m in month_partitions(conn) if next_month(m) <= month_of(before)]
    for month in months:
        try:
            total.add(_drop_month(engine, month, before))
        except OperationalError as exc:  # lock timeout, or chosen as a deadlock's victim
            log.warning("retention: month %d not dropped (%s); its traces are deleted row by "
                        "row", month, str(exc.orig).splitlines()[0] if exc.orig else exc)
    return total


def _drop_month(engine: Engine, month: int, before: float) -> Deleted:
    """One month of :func:`drop_expired_months`, in one transaction."""
    out = Deleted()
    t = TRACE_T.c
    with session_scope(engine) as session:
        conn = session.connection()
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
        sizes = [conn.exec_driver_sql(f'SELECT count(*) FROM "{partition_name(table, month)}"'
                                      ).scalar_one() for table in PARTITIONED]
        # No write is in flight once this is had, and none starts until the commit.
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({store_key_args(WRITE_LOCK_KEY)})")
        projects = list(session.execute(select(PROJECT_T.c.id).order_by(PROJECT_T.c.id))
                        .scalars())
        kept = text(f"SELECT 1 FROM {TRACE_T.name} WHERE project_id = :p AND trace_month = :m "
                    f"AND NOT {_expired_sql(before)} LIMIT 1")
        if any(conn.execute(kept, {"p": p, "m": month}).first() for p in projects):
            return out
        others = [tb for tb in _PER_TRACE if tb not in PARTITIONED]
        for pid in projects:
            ids = list(session.execute(select(t.trace_id).where(
                t.project_id == pid, t.trace_month == month).order_by(t.trace_id)).scalars())
            out.add(delete_traces(session, project_id=pid, trace_ids=ids, tables=others))
        for table in PARTITIONED:
            conn.exec_driver_sql(f'DROP TABLE "{partition_name(table, month)}"')
        out.nodes, out.edges = int(sizes[0]), int(sizes[1])
        out.months = 1
    log.info("retention: dropped month %d (%d traces, %d nodes)", month, out.traces, out.nodes)
    return out
