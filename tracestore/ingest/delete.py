"""Deleting traces: one trace (``DELETE /api/v1/traces/{id}``) or every trace that started
before a time (``tracestore prune``, the ``retention_days`` setting).

A trace goes with everything stored under its ``(project_id, trace_id)``: nodes, edges,
findings, its summary and its analysis-queue row, in one transaction, so every report
(``/traces``, ``/findings``, ``/paths``, ``/attribution``, the digest) reflects the deletion
at once. Outcomes are task-level records and stay; the other traces of an affected task get
their task columns (attempt index, attempts, the attempt the outcome counts on) recomputed.
A trace that never got a start time is pruned by its last write time. See
docs/operations.md, "Deleting data and retention".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from tracestore.reports.summaries import refresh_tasks
from tracestore.store.engine import param_mark, session_scope
from tracestore.store.tables import (
    CLAIM_T,
    EDGE_T,
    FINDING_T,
    NODE_T,
    SUMMARY_T,
    TRACE_T,
)

__all__ = ["BATCH", "Deleted", "delete_traces", "prune"]

# Traces deleted per statement (an IN list), and per transaction when pruning.
BATCH = 500
# The trace row first: its row lock is what every write of the trace takes first
# (tracestore.ingest.write), so a concurrent write waits instead of deadlocking.
_PER_TRACE = (TRACE_T, NODE_T, EDGE_T, FINDING_T, SUMMARY_T, CLAIM_T)


@dataclass
class Deleted:
    """Rows removed, by table."""

    traces: int = 0
    nodes: int = 0
    edges: int = 0
    findings: int = 0
    summaries: int = 0

    def add(self, other: Deleted) -> None:
        self.traces += other.traces
        self.nodes += other.nodes
        self.edges += other.edges
        self.findings += other.findings
        self.summaries += other.summaries


def delete_traces(session: Session, *, project_id: int, trace_ids: Sequence[str]) -> Deleted:
    """Delete ``trace_ids`` of ``project_id`` with all their rows; refresh the task columns of
    the remaining traces of their tasks. Does not commit. Returns the rows removed."""
    out = Deleted()
    if not trace_ids:
        return out
    t = TRACE_T.c
    tasks = {task for (task,) in session.execute(
        select(t.task_id).where(t.project_id == project_id, t.trace_id.in_(trace_ids)))
        if task is not None}
    m = param_mark(session)
    conn = session.connection()
    counts: dict[str, int] = {}
    for i in range(0, len(trace_ids), BATCH):
        chunk = list(trace_ids[i : i + BATCH])
        marks = ", ".join([m] * len(chunk))
        for table in _PER_TRACE:
            r = conn.exec_driver_sql(
                f"DELETE FROM {table.name} WHERE project_id = {m} AND trace_id IN ({marks})",
                (project_id, *chunk))
            counts[table.name] = counts.get(table.name, 0) + max(r.rowcount, 0)
    out.traces = counts[TRACE_T.name]
    out.nodes = counts[NODE_T.name]
    out.edges = counts[EDGE_T.name]
    out.findings = counts[FINDING_T.name]
    out.summaries = counts[SUMMARY_T.name]
    if tasks:
        refresh_tasks(session, project_id=project_id, task_ids=sorted(tasks))
    return out


def _expired(session: Session, project_id: int, before: float, limit: int) -> list[str]:
    t = TRACE_T.c
    old = or_(t.started_at < before, t.started_at.is_(None) & (t.updated_at < before))
    return list(session.execute(
        select(t.trace_id).where(t.project_id == project_id, old)
        .order_by(t.trace_id).limit(limit)).scalars())


def prune(engine: Engine, *, before: float, project_id: int | None = None) -> Deleted:
    """Delete every trace (of ``project_id``, or of every project) that started before
    ``before``, :data:`BATCH` traces a transaction. Returns the rows removed."""
    total = Deleted()
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
