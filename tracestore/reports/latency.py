"""Latency: p50/p95 durations per workflow (whole traces), per step and per model (nodes), for a
window (``GET /api/v1/latency``, docs/api.md).

Durations come from the stored start and end times (a node or trace without both is left
out and counted in ``without_times``). Percentiles are the linear interpolation of numpy's
default method, computed in this process from one read of the window's durations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from tracestore.reports.queries import trace_conds
from tracestore.store.partitions import window_months
from tracestore.store.tables import NODE_T, TRACE_T

__all__ = ["GROUPS", "LatencyGroup", "LatencyReport", "latency_report"]

GROUPS = ("workflow", "step", "model")
Group = Literal["workflow", "step", "model"]


class LatencyGroup(BaseModel):
    key: dict[str, str | None]
    count: int = Field(description="Traces (group_by=workflow) or nodes measured.")
    p50_s: float
    p95_s: float
    mean_s: float
    total_s: float = Field(description="Sum of the durations: time spent, not wall time.")


class LatencyReport(BaseModel):
    group_by: str
    since: float | None
    until: float | None
    without_times: int = Field(description="Rows left out for lack of a start or end.")
    groups: list[LatencyGroup]


def _summary(key: dict[str, str | None], values: list[float]) -> LatencyGroup:
    arr = np.asarray(values, dtype=float)
    p50, p95 = np.percentile(arr, [50, 95])
    return LatencyGroup(key=key, count=len(values), p50_s=round(float(p50), 6),
                        p95_s=round(float(p95), 6), mean_s=round(float(arr.mean()), 6),
                        total_s=round(float(arr.sum()), 6))


def _rows(session: Session, project_id: int, group_by: Group, since: float | None,
          until: float | None, workflow: str | None) -> Iterable[tuple[tuple[str | None, ...],
                                                                   float | None, float | None]]:
    t, n = TRACE_T.c, NODE_T.c
    conds = trace_conds(project_id, since, until, {"workflow": workflow or None})
    if group_by == "workflow":
        for wf, start, end in session.execute(select(t.workflow, t.started_at, t.ended_at)
                                              .where(*conds)):
            yield (wf,), start, end
        return
    cols = (t.workflow, n.step, n.name) if group_by == "step" else (n.provider, n.model)
    stmt = (select(*cols, n.start, n.end)
            .join(NODE_T, and_(n.project_id == t.project_id, n.trace_id == t.trace_id))
            .where(*conds, window_months(session, conds, n.trace_month)))
    if group_by == "model":
        stmt = stmt.where(n.model.is_not(None))
    for row in session.execute(stmt):
        *key, start, end = tuple(row)
        if group_by == "step":  # (workflow, step, name): the step key is step, else name
            key = [key[0], key[1] or key[2]]
        yield tuple(key), start, end


def latency_report(session: Session, *, project_id: int, group_by: Group = "workflow",
                   since: float | None = None, until: float | None = None,
                   workflow: str | None = None) -> LatencyReport:
    """Durations of the window's traces or nodes, grouped; slowest p95 first."""
    names = {"workflow": ("workflow",), "step": ("workflow", "step"),
             "model": ("provider", "model")}[group_by]
    buckets: dict[tuple[str | None, ...], list[float]] = defaultdict(list)
    missing = 0
    for key, start, end in _rows(session, project_id, group_by, since, until, workflow):
        if start is None or end is None or end < start:
            missing += 1
            continue
        buckets[key].append(float(end) - float(start))
    groups = [_summary(dict(zip(names, key, strict=True)), values)
              for key, values in buckets.items()]
    groups.sort(key=lambda g: (-g.p95_s, tuple(v or "" for v in g.key.values())))
    return LatencyReport(group_by=group_by, since=since, until=until, without_times=missing,
                         groups=groups)
