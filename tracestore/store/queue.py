"""The analysis queue: traces whose analysis is due, shared by any number of workers.

Every write that changes a trace puts ``(project, trace, updated_at)`` into
``analysis_queue`` in the same transaction (:func:`enqueue`); ``updated_at`` equals the
trace's own. A worker :func:`claim` s a batch of settled rows by stamping them with a lease
(``lease_until``, ``leased_by``) and commits: on PostgreSQL the candidate rows are selected
``FOR UPDATE SKIP LOCKED``, so concurrent claimers on any host never take the same row, and
the lease keeps them away once the claim committed. The analysis that stores a trace's
findings removes its row if ``updated_at`` is still the analysed one (:func:`done`, called by
:func:`tracestore.analysis.run.store_findings`): a trace that changed meanwhile stays queued
and is analysed again, so each change is analysed once. A worker that dies leaves a lease
that runs out; the row is then claimed again. SQLite runs the same statements (one writer at
a time, so no row lock is needed). See docs/operations.md, "Servers and workers".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import Session

from tracestore.store.engine import param_mark, upsert
from tracestore.store.tables import CLAIM_T

__all__ = ["Claim", "claim", "done", "enqueue", "pending", "release", "renew"]


class Claim(NamedTuple):
    project_id: int
    trace_id: str
    updated_at: float


def enqueue(session: Session, *, project_id: int, trace_ids: Iterable[str],
            updated_at: float) -> None:
    """Queue ``trace_ids`` for analysis as changed at ``updated_at`` (a queued trace takes the
    new time and keeps any lease: its worker's :func:`done` then leaves it queued)."""
    upsert(session, CLAIM_T, [(project_id, tid, updated_at) for tid in trace_ids],
           columns=("project_id", "trace_id", "updated_at"), keys=("project_id", "trace_id"),
           update=["updated_at"])


def claim(session: Session, *, worker: str, now: float, settled_before: float,
          lease_seconds: float, limit: int) -> list[Claim]:
    """Lease up to ``limit`` queued traces last changed at or before ``settled_before`` and
    not leased (or whose lease ran out) to ``worker`` until ``now + lease_seconds``, oldest
    change first. The caller commits (that ends the row locks; the lease remains)."""
    m, q = param_mark(session), CLAIM_T.name
    lock = "" if session.get_bind().dialect.name == "sqlite" else " FOR UPDATE SKIP LOCKED"
    sql = (
        f"UPDATE {q} SET lease_until = {m}, leased_by = {m} "
        f"FROM (SELECT project_id AS c_pid, trace_id AS c_tid FROM {q} "
        f"WHERE updated_at <= {m} AND (lease_until IS NULL OR lease_until < {m}) "
        f"ORDER BY updated_at, project_id, trace_id LIMIT {m}{lock}) AS c "
        f"WHERE {q}.project_id = c.c_pid AND {q}.trace_id = c.c_tid "
        "RETURNING project_id, trace_id, updated_at")
    rows = session.connection().exec_driver_sql(
        sql, (now + lease_seconds, worker, settled_before, now, limit)).all()
    return sorted(Claim(int(p), str(t), float(u)) for p, t, u in rows)


def renew(session: Session, *, worker: str, claims: Sequence[Claim], now: float,
          lease_seconds: float) -> list[Claim]:
    """Extend ``worker``'s leases of ``claims`` to ``now + lease_seconds`` and return the
    claims still its own: a lease that ran out (a slow start, e.g. computing baselines) may
    have been claimed by another worker, which then analyses that trace instead."""
    if not claims:
        return []
    m = param_mark(session)
    conn = session.connection()
    mine: list[Claim] = []
    for c in claims:  # one short statement per trace; a batch is a few hundred
        row = conn.exec_driver_sql(
            f"UPDATE {CLAIM_T.name} SET lease_until = {m} WHERE project_id = {m} "
            f"AND trace_id = {m} AND leased_by = {m} RETURNING trace_id",
            (now + lease_seconds, c.project_id, c.trace_id, worker)).first()
        if row is not None:
            mine.append(c)
    return mine


def done(session: Session, *, project_id: int,
         analysed: Sequence[tuple[str, float]]) -> None:
    """``analysed``: (trace id, the ``updated_at`` its analysis read). Removes each trace's
    queue row if the trace has not changed since; a changed one stays queued, its lease
    cleared so that it is claimed again once settled."""
    if not analysed:
        return
    m = param_mark(session)
    conn = session.connection()
    conn.exec_driver_sql(
        f"DELETE FROM {CLAIM_T.name} WHERE project_id = {m} AND trace_id = {m} "
        f"AND updated_at = {m}", [(project_id, tid, u) for tid, u in analysed])
    conn.exec_driver_sql(
        f"UPDATE {CLAIM_T.name} SET lease_until = NULL, leased_by = NULL "
        f"WHERE project_id = {m} AND trace_id = {m}", [(project_id, tid) for tid, _ in analysed])


def release(session: Session, *, worker: str, claims: Sequence[Claim]) -> None:
    """Give back what ``worker`` claimed and did not analyse (it is stopping)."""
    if not claims:
        return
    m = param_mark(session)
    session.connection().exec_driver_sql(
        f"UPDATE {CLAIM_T.name} SET lease_until = NULL, leased_by = NULL "
        f"WHERE project_id = {m} AND trace_id = {m} AND leased_by = {m}",
        [(c.project_id, c.trace_id, worker) for c in claims])


def pending(session: Session) -> int:
    """How many traces wait for analysis (leased or not)."""
    return int(session.execute(text(f"SELECT count(*) FROM {CLAIM_T.name}")).scalar_one())
