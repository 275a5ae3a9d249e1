"""``GET /api/v1/findings``: filtered, ordered, keyset-paginated reads of stored findings.

Orders: ``wasted_cost`` (largest booked waste first, the default) and ``created`` (newest
analysis first); ties break on the finding id, so pages never skip or repeat a finding. The
cursor is :func:`tracestore.store.read.encode_cursor` of the last row's (sort value, id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from tracestore.errors import BadRequest
from tracestore.reports.queries import primary_model_traces
from tracestore.schemas import FindingPublic
from tracestore.store.read import (
    add_wasted_seconds,
    decode_cursor,
    encode_cursor,
    finding_public,
)
from tracestore.store.tables import FINDING_T, TRACE_T

__all__ = ["ORDERS", "FindingFilters", "list_findings"]


ORDERS = {"wasted_cost": "wasted_cost_usd", "created": "created_at"}


@dataclass(frozen=True)
class FindingFilters:
    """Every field narrows the result; ``since``/``until`` bound the trace's start time;
    ``team``/``feature`` are the trace's dimensions (the same filters as ``/attribution``)."""

    trace_id: str | None = None
    workflow: str | None = None
    analyzer: str | None = None
    code: str | None = None
    min_cost: float | None = None
    since: float | None = None
    until: float | None = None
    team: str | None = None
    feature: str | None = None
    model: str | None = None  # the trace's primary model (the key of group_by=model)


def _conds(project_id: int, f: FindingFilters) -> list[Any]:
    c = FINDING_T.c
    conds: list[Any] = [c.project_id == project_id]
    for col, value in ((c.trace_id, f.trace_id), (c.workflow, f.workflow),
                       (c.analyzer, f.analyzer), (c.code, f.code)):
        if value is not None:
            conds.append(col == value)
    if f.min_cost is not None:
        conds.append(c.wasted_cost_usd >= f.min_cost)
    if f.since is not None:
        conds.append(c.trace_started_at >= f.since)
    if f.until is not None:
        conds.append(c.trace_started_at < f.until)
    dims = [(TRACE_T.c[col], v) for col, v in (("team", f.team), ("feature", f.feature))
            if v is not None]
    if dims:
        # the trace's dimensions, as /attribution filters them (its summaries copy the trace's)
        conds.append(c.trace_id.in_(select(TRACE_T.c.trace_id).where(
            TRACE_T.c.project_id == project_id, *(col == v for col, v in dims))))
    if f.model is not None:
        conds.append(c.trace_id.in_(primary_model_traces(project_id, f.model)))
    return conds


def list_findings(
    session: Session,
    *,
    project_id: int,
    filters: FindingFilters,
    order: str = "wasted_cost",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[FindingPublic], str | None]:
    """One page of findings and the cursor of the next page (None on the last page)."""
    if order not in ORDERS:
        raise BadRequest(f"order must be one of {sorted(ORDERS)}, not {order!r}")
    c = FINDING_T.c
    sort_col = c[ORDERS[order]]
    conds = _conds(project_id, filters)
    if cursor:
        v, fid = decode_cursor(cursor)
        if isinstance(v, bool) or not isinstance(v, int | float) or not isinstance(fid, str):
            raise BadRequest("cursor is malformed; pass back next_cursor unchanged")
        conds.append(or_(sort_col < v, and_(sort_col == v, c.id > fid)))
    rows = session.execute(
        select(FINDING_T).where(*conds).order_by(sort_col.desc(), c.id).limit(limit + 1)
    ).mappings().all()
    items = [finding_public(r) for r in rows[:limit]]
    add_wasted_seconds(session, project_id=project_id, findings=items)
    nxt = None
    if len(rows) > limit:
        last = rows[limit - 1]
        nxt = encode_cursor([last[sort_col.name], last["id"]])
    return items, nxt
