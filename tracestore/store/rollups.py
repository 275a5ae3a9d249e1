"""Trace roll-ups: the columns of ``traces`` kept in step with its nodes (node count, tokens,
cost, unpriced and error counts, start/end, the workflow fallback to the root node's name)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    TableClause,
    bindparam,
    case,
    column,
    func,
    select,
    table,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from tracestore.schemas import MODEL_KINDS
from tracestore.store.partitions import by_partition, trace_months
from tracestore.store.tables import NODE_T, TRACE_T

__all__ = ["recompute_rollups"]


def _root_names(nodes: TableClause, pid: BindParameter[int],
                tids: BindParameter[list[str]]) -> Any:
    """The root node's name: the first parentless node of each touched trace by (start,
    node_id). Ordered by ``start + 0``, not ``start``: ordered by the bare column, SQLite read
    the nodes through ix_nodes_project_start (project_id, start) to save the sort, walking
    every node of the project once per trace (ingest slowed as the store grew;
    tests/tracestore/test_query_plans.py checks every ingest statement's plan). The
    expression sorts the same (NULL stays NULL) and leaves the primary key the only index."""
    n = nodes.c
    return (
        select(n.trace_id.label("rtid"), n.name.label("rname"),
               func.row_number().over(partition_by=n.trace_id,
                                      order_by=(n.start + 0, n.node_id)).label("rn"))
        .where(n.project_id == pid, n.trace_id.in_(tids), n.parent_id.is_(None))
        .subquery("ranked")
    )


def _fsum(value: Any, order: Any, dialect: str) -> Any:
    """``sum(value)``, adding in ``order`` on PostgreSQL."""
    if dialect == "postgresql":
        return func.sum(aggregate_order_by(value, order))
    return func.sum(value)


@lru_cache(maxsize=64)
def _rollup_statements(nodes_from: str, dialect: str) -> tuple[Any, Any]:
    """The two roll-up statements reading the node rows from ``nodes_from`` (``nodes``, or
    on PostgreSQL one month's partition), built once each (building them cost more than
    running them); parameters ``pid`` and ``tids`` (expanding). Dollar sums add in node-id
    order on both backends (floats: the order sets the last bit): SQLite reads a trace's
    rows in key order, and PostgreSQL is told to (``sum(… ORDER BY node_id)``), where its
    order otherwise followed the plan."""
    nodes = table(nodes_from, *(column(c.name, c.type) for c in NODE_T.columns))
    n = nodes.c
    t = TRACE_T.c
    pid: BindParameter[int] = bindparam("pid")
    tids: BindParameter[list[str]] = bindparam("tids", expanding=True)
    is_model = n.kind.in_(MODEL_KINDS)
    unpriced = is_model & (n.priced == False)  # noqa: E712
    ranked = _root_names(nodes, pid, tids)
    sums = (
        select(
            n.trace_id.label("tid"),
            func.count().label("node_count"),
            func.sum(case((is_model, 1), else_=0)).label("llm_calls"),
            func.coalesce(func.sum(n.input_tokens), 0).label("input_tokens"),
            func.coalesce(func.sum(n.output_tokens), 0).label("output_tokens"),
            _fsum(func.coalesce(n.cost_usd, 0.0), n.node_id, dialect).label("cost_usd"),
            _fsum(n.reported_cost_usd, n.node_id, dialect).label("reported_cost_usd"),
            func.sum(case((unpriced, 1), else_=0)).label("unpriced_count"),
            func.sum(case((n.status == "error", 1), else_=0)).label("error_count"),
            func.min(n.start).label("started_at"),
            func.max(func.coalesce(n.end, n.start)).label("ended_at"),
            func.sum(case((unpriced, n.input_tokens + n.output_tokens), else_=0)).label(
                "unpriced_tokens"),
            func.sum(case((n.cost_mismatch == True, 1), else_=0)).label(  # noqa: E712
                "cost_mismatch_count"),
        )
        .where(n.project_id == pid, n.trace_id.in_(tids))
        .group_by(n.trace_id)
        .subquery("sums")
    )
    agg = (select(sums, ranked.c.rname)
           .select_from(sums.outerjoin(ranked, (ranked.c.rtid == sums.c.tid) & (ranked.c.rn == 1)))
           .subquery("agg"))
    values: dict[str, Any] = {c.name: c for c in agg.c if c.name not in ("tid", "rname")}
    values["workflow"] = func.coalesce(t.workflow, agg.c.rname)
    values["task_id"] = func.coalesce(t.task_id, t.trace_id)
    # ``trace_id IN tids`` beside the join: without it PostgreSQL estimated the aggregate's
    # groups as its node rows and hash-joined it to a sequential scan of the project's traces
    # once a request touched ~50 traces (bench/growth.py --ingest at 10M nodes).
    rollup = (update(TRACE_T)
              .where(t.project_id == pid, t.trace_id.in_(tids), t.trace_id == agg.c.tid)
              .values(values))
    # A trace with no node yet (only edges or fields so far) still gets its default task_id.
    task = (update(TRACE_T).where(t.project_id == pid, t.trace_id.in_(tids), t.task_id.is_(None))
            .values(task_id=t.trace_id))
    return rollup, task


def recompute_rollups(session: Session, *, project_id: int, trace_ids: Sequence[str],
                      months: Mapping[str, int] | None = None) -> None:
    """Recompute the roll-up columns of ``trace_ids`` from their node rows. ``months``: trace
    id -> ``trace_month`` (read from the trace rows when not given); on PostgreSQL each
    month's traces are rolled up from that month's partition (:func:`by_partition`).

    One ``UPDATE traces … FROM (SELECT … GROUP BY trace_id)`` per 500 traces (SQLite ≥ 3.33,
    PostgreSQL; Python 3.11's bundled SQLite is newer): the aggregate never leaves the
    database. It was a SELECT, an ``executemany`` UPDATE of its rows and two more UPDATEs,
    ~15 µs per ingested span (bench/RESULTS.md). A trace without workflow takes its root
    node's name; ``task_id`` defaults to the trace id.
    """
    opts = {"synchronize_session": False}
    if months is None:
        months = trace_months(session, project_id=project_id, trace_ids=trace_ids)
    for nodes_from, ids in by_partition(session.connection(), NODE_T, months, trace_ids):
        for i in range(0, len(ids), 500):
            params = {"pid": project_id, "tids": ids[i : i + 500]}
            for stmt in _rollup_statements(nodes_from, session.get_bind().dialect.name):
                session.execute(stmt, params, execution_options=opts)
