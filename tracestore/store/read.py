"""Read queries behind the REST API and the CLI. Every query is scoped to one project.

Pagination is keyset-based: the cursor is an opaque token holding the last row's sort value
and id, so pages stay stable and cheap however deep they go.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row, RowMapping, and_, or_, select
from sqlalchemy.orm import Session

from tracestore.errors import BadRequest, NotFound
from tracestore.schemas import (
    EdgePublic,
    FindingPublic,
    NodePublic,
    OutcomePublic,
    TraceDetail,
    TracePublic,
    iso,
)
from tracestore.store.tables import (
    EDGE_T,
    FINDING_T,
    NODE_T,
    OUTCOME_T,
    TRACE_T,
)

__all__ = [
    "TraceFilters",
    "add_wasted_seconds",
    "decode_cursor",
    "encode_cursor",
    "finding_public",
    "get_trace",
    "list_traces",
    "load_trace_rows",
    "trace_public",
]



def encode_cursor(values: list[Any]) -> str:
    """An opaque cursor from the last row's sort key.

    >>> decode_cursor(encode_cursor([1.5, "ab"]))
    [1.5, 'ab']
    """
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise BadRequest("cursor is malformed; pass back next_cursor unchanged") from None
    if not isinstance(values, list) or len(values) != 2 or any(
        (isinstance(v, int) and not -(2**63) <= v < 2**63)  # no database column holds it
        or (isinstance(v, str) and "\x00" in v) for v in values
    ):
        raise BadRequest("cursor is malformed; pass back next_cursor unchanged")
    return values


@dataclass(frozen=True)
class TraceFilters:
    workflow: str | None = None
    team: str | None = None
    feature: str | None = None
    since: float | None = None
    until: float | None = None
    has_error: bool | None = None
    task_id: str | None = None


def trace_public(m: RowMapping | Mapping[str, Any]) -> TracePublic:
    """The wire form of a ``traces`` row (a row mapping or a dict of it)."""
    start, end = m["started_at"], m["ended_at"]
    return TracePublic(
        trace_id=m["trace_id"],
        workflow=m["workflow"],
        task_id=m["task_id"],
        team=m["team"],
        feature=m["feature"],
        user_id=m["user_id"],
        session_id=m["session_id"],
        environment=m["environment"],
        service_name=m["service_name"],
        tags=m["tags"],
        started_at=iso(start),
        ended_at=iso(end),
        duration_ms=(
            round((end - start) * 1000, 3) if start is not None and end is not None else None
        ),
        node_count=m["node_count"],
        llm_calls=m["llm_calls"],
        input_tokens=m["input_tokens"],
        output_tokens=m["output_tokens"],
        cost_usd=round(m["cost_usd"], 10),
        unpriced_count=m["unpriced_count"],
        unpriced_tokens=m["unpriced_tokens"] or 0,
        reported_cost_usd=m["reported_cost_usd"],
        cost_mismatch_count=m["cost_mismatch_count"] or 0,

        error_count=m["error_count"],
        analyzed_at=iso(m["analyzed_at"]),
    )


def _trace_conds(project_id: int, filters: TraceFilters) -> list[Any]:
    """The WHERE conditions of :func:`list_traces`."""
    t = TRACE_T.c
    conds = [t.project_id == project_id]
    if filters.workflow is not None:
        conds.append(t.workflow == filters.workflow)
    if filters.team is not None:
        conds.append(t.team == filters.team)
    if filters.feature is not None:
        conds.append(t.feature == filters.feature)
    if filters.task_id is not None:
        conds.append(t.task_id == filters.task_id)
    if filters.since is not None:
        conds.append(t.started_at >= filters.since)
    if filters.until is not None:
        conds.append(t.started_at < filters.until)
    if filters.has_error is True:
        conds.append(t.error_count > 0)
    elif filters.has_error is False:
        conds.append(t.error_count == 0)
    return conds


def _trace_cursor(cursor: str) -> tuple[Any, str]:
    """``(sort value or None, trace id)`` from a :func:`list_traces` cursor."""
    v, tid = decode_cursor(cursor)
    if not (v is None or (isinstance(v, int | float) and not isinstance(v, bool))) or (
        not isinstance(tid, str)
    ):
        raise BadRequest("cursor is malformed; pass back next_cursor unchanged")
    return v, tid


def list_traces(
    session: Session,
    *,
    project_id: int,
    filters: TraceFilters,
    order: str = "start",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[TracePublic], str | None]:
    """Traces newest first (``order=start``) or most expensive first (``order=cost``)."""
    t = TRACE_T.c
    if order == "start":
        sort_col = t.started_at
    elif order == "cost":
        sort_col = t.cost_usd
    else:
        raise BadRequest(f"order must be 'start' or 'cost', not {order!r}")
    conds = _trace_conds(project_id, filters)
    # Nodes without timestamps leave started_at NULL. Such traces come after all others, in
    # trace_id order: a second keyset phase whose cursor carries a null sort value.
    after = _trace_cursor(cursor) if cursor else None
    rows: list[Row[Any]] = []
    if after is None or after[0] is not None:
        keyset = [] if after is None else [
            or_(sort_col < after[0], and_(sort_col == after[0], t.trace_id < after[1]))
        ]
        rows = list(session.execute(
            select(TRACE_T)
            .where(*conds, sort_col.is_not(None), *keyset)
            .order_by(sort_col.desc(), t.trace_id.desc())
            .limit(limit + 1)
        ).all())
    if len(rows) <= limit:
        keyset = [] if after is None or after[0] is not None else [t.trace_id < after[1]]
        rows += session.execute(
            select(TRACE_T)
            .where(*conds, sort_col.is_(None), *keyset)
            .order_by(t.trace_id.desc())
            .limit(limit + 1 - len(rows))
        ).all()
    items = [trace_public(r._mapping) for r in rows[:limit]]
    nxt = None
    if len(rows) > limit:
        last = rows[limit - 1]._mapping
        nxt = encode_cursor([last[sort_col.name], last["trace_id"]])
    return items, nxt


def load_trace_rows(
    session: Session, *, project_id: int, trace_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The trace row, its node rows (by start time) and its stored edges, as dicts."""
    trow = session.execute(
        select(TRACE_T).where(TRACE_T.c.project_id == project_id, TRACE_T.c.trace_id == trace_id)
    ).first()
    if trow is None:
        raise NotFound(f"trace {trace_id!r} not found")
    # The trace's month beside its id: PostgreSQL reads one partition of nodes and of edges.
    month = trow._mapping["trace_month"]
    n, e = NODE_T.c, EDGE_T.c
    nodes = [
        dict(r._mapping)
        for r in session.execute(
            select(NODE_T)
            .where(n.project_id == project_id, n.trace_id == trace_id,
                   *(() if month is None else (n.trace_month == month,)))
            # ``start + 0``: ordered after the trace's rows are found by the primary key; a
            # bare ``start`` let SQLite walk ix_nodes_project_start over every node of the
            # project to return them in order (0.65 s a trace page at 1M nodes).
            .order_by(n.start + 0, n.node_id)
        )
    ]
    edges = [
        dict(r._mapping)
        for r in session.execute(
            select(EDGE_T).where(e.project_id == project_id, e.trace_id == trace_id,
                                 *(() if month is None else (e.trace_month == month,)))
        )
    ]
    return dict(trow._mapping), nodes, edges


# Looked up once: ``NodePublic.model_fields`` is a property, and reading it for every column of
# every node was a third of the CPU of ``GET /api/v1/traces/{id}`` (bench/RESULTS.md).
_NODE_FIELDS = frozenset(NodePublic.model_fields)


def _node_public(n: dict[str, Any]) -> NodePublic:
    data = {k: v for k, v in n.items() if k in _NODE_FIELDS}
    data["start"], data["end"] = iso(n["start"]), iso(n["end"])
    return NodePublic(**data)


def finding_public(m: Any) -> FindingPublic:
    """The wire form of a ``findings`` row (a row mapping), shared by the trace detail and
    ``GET /findings``."""
    return FindingPublic(
        id=m["id"],
        trace_id=m["trace_id"],
        workflow=m["workflow"],
        analyzer=m["analyzer"],
        code=m["code"],
        node_ids=list(m["node_ids"] or ()),
        wasted_tokens=m["wasted_tokens"],
        wasted_cost_usd=m["wasted_cost_usd"],
        savings_usd=m["savings_usd"],
        confidence=m["confidence"],
        evidence=m["evidence"] or {},
        message=m["message"],
        trace_started_at=iso(m["trace_started_at"]),
        created_at=iso(m["created_at"]),
    )


def _seconds(durations: dict[tuple[str, str], float], f: FindingPublic) -> float | None:
    spans = [durations[(f.trace_id, n)] for n in f.node_ids if (f.trace_id, n) in durations]
    return round(sum(spans), 6) if spans else None


def add_wasted_seconds(session: Session, *, project_id: int,
                       findings: Sequence[FindingPublic]) -> None:
    """Set each finding's ``wasted_seconds`` from its nodes' stored start and end (one read of
    the findings' traces' node times, by the primary key)."""
    if not findings:
        return
    n = NODE_T.c
    # Nodes without both times are skipped here, not in SQL: with ``start IS NOT NULL`` beside
    # the trace ids SQLite walked ix_nodes_project_start (every node of the project; 2.8 s at
    # 1M nodes) instead of the primary key.
    rows = session.execute(select(n.trace_id, n.node_id, n.start, n.end).where(
        n.project_id == project_id, n.trace_id.in_({f.trace_id for f in findings})))
    durations = {(t, nid): max(float(e) - float(s), 0.0) for t, nid, s, e in rows
                 if s is not None and e is not None}
    for f in findings:
        f.wasted_seconds = _seconds(durations, f)


def get_trace(session: Session, *, project_id: int, trace_id: str) -> TraceDetail:
    """One trace with nodes, stored edges, outcomes of its task and findings."""
    trow, nodes, edges = load_trace_rows(session, project_id=project_id, trace_id=trace_id)
    pub = trace_public(trow)
    outcomes = [
        OutcomePublic(
            task_id=o["task_id"],
            status=o["status"],
            type=o["type"],
            value_usd=o["value_usd"],
            occurred_at=iso(o["occurred_at"]),
            trace_id=o["trace_id"],
            workflow=o["workflow"],
        )
        for o in (
            r._mapping
            for r in session.execute(
                select(OUTCOME_T).where(
                    OUTCOME_T.c.project_id == project_id,
                    or_(OUTCOME_T.c.task_id == trow["task_id"], OUTCOME_T.c.trace_id == trace_id),
                )
            )
        )
    ]
    findings = [
        finding_public(r._mapping)
        for r in session.execute(
            select(FINDING_T)
            .where(FINDING_T.c.project_id == project_id, FINDING_T.c.trace_id == trace_id)
            .order_by(FINDING_T.c.wasted_cost_usd.desc(), FINDING_T.c.id)
        )
    ]
    durations = {(trace_id, nd["node_id"]): max(float(nd["end"]) - float(nd["start"]), 0.0)
                 for nd in nodes if nd.get("start") is not None and nd.get("end") is not None}
    for f in findings:
        f.wasted_seconds = _seconds(durations, f)
    return TraceDetail(
        **pub.model_dump(),
        nodes=[_node_public(n) for n in nodes],
        edges=[EdgePublic(src=e["src"], dst=e["dst"], kind=e["kind"], inferred=e["inferred"])
               for e in edges],
        outcomes=outcomes,
        findings=findings,
    )
