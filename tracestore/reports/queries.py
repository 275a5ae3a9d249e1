"""Aggregating reads of ``trace_summaries``, done in SQL so a report costs a few grouped
queries whatever the number of traces (no row reaches Python except per group).

Waste by code is read from ``trace_waste`` (one row a wasteful trace and code, with the
summary columns the reports filter and group on: an index range read, no JSON unnesting,
which cost PostgreSQL ~3.5 µs a trace; bench/RESULTS.md). Example traces per group use
``ROW_NUMBER() OVER (PARTITION BY …)`` (SQLite ≥ 3.25, PostgreSQL). Every function takes the
filter conditions from :func:`summary_conds` and the summary column names to group by, and
returns a dict keyed by the tuple of those columns' values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnClause, ColumnElement
from sqlalchemy.sql.visitors import ExternallyTraversible, replacement_traverse

from tracestore.store.load import window_conds
from tracestore.store.sums import usd_sum
from tracestore.store.tables import SUMMARY_T, TRACE_T, WASTE_T

__all__ = [
    "OUTCOME_STATUSES",
    "example_traces",
    "group_totals",
    "path_totals",
    "primary_model_traces",
    "summary_conds",
    "usd_sum",
    "waste_by_code",
]

Key = tuple[Any, ...]
OUTCOME_STATUSES = ("success", "failure", "partial", "escalated")  # schemas.OutcomeStatus
# Latest rows read in one pass to find example traces of the common groups (then one small
# query per group still lacking): 50 groups × 3 examples, with room for skewed traffic.
_LOOKBACK = 2000


def summary_conds(project_id: int, since: float | None, until: float | None,
                  equals: dict[str, str | None]) -> list[Any]:
    """Scope to the project, ``since <= started_at < until`` and ``column == value``."""
    return window_conds(SUMMARY_T, project_id, since, until, equals)


def trace_conds(project_id: int, since: float | None, until: float | None,
                equals: dict[str, str | None]) -> list[Any]:
    """The same window and filters on ``traces`` (reads that need the raw roll-ups or a join
    to nodes): the project, ``since <= started_at < until`` and ``column == value``."""
    return window_conds(TRACE_T, project_id, since, until, equals)


def primary_model_traces(project_id: int, model: str) -> Any:
    """The ids of the project's traces whose primary model (the summary's, the key of
    ``group_by=model``) is ``model``: a subquery, for ``trace_id IN (…)`` on tables without
    that column (``traces``, ``findings``)."""
    s = SUMMARY_T.c
    return select(s.trace_id).where(s.project_id == project_id, s.primary_model == model)


def _cols(cols: Sequence[str]) -> list[Any]:
    return [SUMMARY_T.c[c] for c in cols]


def _success() -> Any:
    s = SUMMARY_T.c
    return s.outcome_here.is_(True) & (s.outcome_status == "success")


def group_totals(session: Session, conds: list[Any], cols: Sequence[str],
                 default_values: dict[str, float] | None = None) -> dict[Key, dict[str, Any]]:
    """Sums and counts per group in one pass: spend, tokens, attempts, tasks (started in the
    group: their first attempt is in it; cheaper than a distinct count), waste by
    analyzer, p's numerator and denominator, decided attempts, the workflows present, the
    outcomes counted on the group's attempts by status (``n_<status>``), and the value of the
    successful ones (their ``value_usd``, else ``default_values[workflow]``) with
    ``valued``, how many successes had a value."""
    s = SUMMARY_T.c
    first = s.attempt_index == 1
    decided = s.outcome_status.is_not(None)
    counted = s.outcome_here.is_(True)
    default: Any = None
    if default_values:
        default = case(*((s.workflow == wf, v) for wf, v in default_values.items()), else_=None)
    value = func.coalesce(s.outcome_value_usd, default) if default is not None \
        else s.outcome_value_usd
    fields = {
        **{f"n_{st}": func.sum(case((counted & (s.outcome_status == st), 1), else_=0))
           for st in OUTCOME_STATUSES},
        "value": usd_sum(case((_success(), value), else_=None)),
        "valued": func.sum(case((_success() & value.is_not(None), 1), else_=0)),
        "cost": usd_sum(s.cost_usd), "tokens": func.sum(s.tokens), "attempts": func.count(),
        "tasks": func.sum(case((first, 1), else_=0)), "model_calls": func.sum(s.model_calls),
        "unpriced": func.sum(s.unpriced_count), "productive": usd_sum(s.productive_usd),
        "waste": usd_sum(s.waste_usd), "churn": usd_sum(s.waste_churn_usd),
        "bloat": usd_sum(s.waste_bloat_usd), "routing": usd_sum(s.waste_routing_usd),
        "first_decided": func.sum(case((first & decided, 1), else_=0)),
        "first_ok": func.sum(case((first & _success(), 1), else_=0)),
        "decided": func.sum(case((decided, 1), else_=0)),
        "wf_min": func.min(s.workflow), "wf_max": func.max(s.workflow),
        "wf_nulls": func.sum(case((s.workflow.is_(None), 1), else_=0)),
    }
    g = _cols(cols)
    stmt = select(*g, *(v.label(k) for k, v in fields.items())).where(*conds).group_by(*g)
    out: dict[Key, dict[str, Any]] = {}
    for r in session.execute(stmt).mappings():
        out[tuple(r[c] for c in cols)] = {k: r[k] for k in fields}
    return out


def path_totals(session: Session, conds: list[Any]) -> dict[Key, dict[str, Any]]:
    """Per (workflow, path_signature): attempts, successes, decided attempts, spend and
    waste — only what the paths report needs, so the covering index
    ``ix_summaries_paths`` answers it without reading the table rows."""
    s = SUMMARY_T.c
    fields = {
        "attempts": func.count(), "cost": usd_sum(s.cost_usd), "waste": usd_sum(s.waste_usd),
        "n_success": func.sum(case((_success(), 1), else_=0)),
        "decided": func.sum(case((s.outcome_status.is_not(None), 1), else_=0)),
    }
    stmt = (select(s.workflow, s.path_signature, *(v.label(k) for k, v in fields.items()))
            .where(*conds).group_by(s.workflow, s.path_signature))
    return {(r["workflow"], r["path_signature"]): {k: r[k] for k in fields}
            for r in session.execute(stmt).mappings()}


def waste_by_code(session: Session, conds: list[Any], cols: Sequence[str]
                  ) -> dict[Key, dict[str, float]]:
    """Per group: booked waste by finding code, summed over ``trace_waste`` (its rows carry
    the summary columns ``conds`` and ``cols`` name; only wasteful traces have rows)."""
    w = WASTE_T.c
    g = [w[c] for c in cols]
    stmt = (select(*g, w.code, usd_sum(w.wasted_usd))
            .where(*(_on_waste(c) for c in conds)).group_by(*g, w.code))
    out: dict[Key, dict[str, float]] = {}
    n = len(cols)
    for r in session.execute(stmt):
        out.setdefault(tuple(r[:n]), {})[r[n]] = float(r[n + 1] or 0.0)
    return out


def _on_waste(cond: ColumnElement[Any]) -> ColumnElement[Any]:
    """A condition on ``trace_summaries`` columns made on the same ``trace_waste`` columns."""
    def swap(element: ExternallyTraversible, **_kw: Any) -> ExternallyTraversible | None:
        if isinstance(element, ColumnClause) and element.table is SUMMARY_T:
            col: ExternallyTraversible = WASTE_T.c[element.name]
            return col
        return None
    opts: dict[str, Any] = {}
    out: ColumnElement[Any] = replacement_traverse(cond, opts, swap)
    return out


def example_traces(session: Session, conds: list[Any], cols: Sequence[str], n: int,
                   only: Sequence[Key]) -> dict[Key, list[str]]:
    """Up to ``n`` trace ids for each group in ``only``: its wasteful traces first (most waste,
    then costliest, then by id), then its most recent others (latest start, then id
    descending). The first part sorts only wasteful rows; the second walks the start-time
    index backwards and stops early, so neither sorts the whole window."""
    s = SUMMARY_T.c
    g = _cols(cols)
    last = [k[-1] for k in only]
    rank = func.row_number().over(partition_by=g, order_by=(s.waste_usd.desc(),
                                                            s.cost_usd.desc(), s.trace_id))
    sub = (select(*g, s.trace_id, rank.label("rn"))
           .where(*conds, s.waste_usd > 0, g[-1].in_(last)).subquery())
    stmt = select(*(sub.c[c] for c in cols), sub.c.trace_id).where(sub.c.rn <= n)
    out: dict[Key, list[str]] = {k: [] for k in only}
    k = len(cols)
    for r in session.execute(stmt.order_by(*(sub.c[c] for c in cols), sub.c.rn)):
        if tuple(r[:k]) in out:
            out[tuple(r[:k])].append(r[k])
    recent = (select(*g, s.trace_id).where(*conds, s.waste_usd <= 0)
              .order_by(s.started_at.desc(), s.trace_id.desc()))
    lacking = [key for key, ids in out.items() if len(ids) < n]
    if lacking:  # one pass over the latest rows serves the common groups
        for r in session.execute(recent.where(g[-1].in_([key[-1] for key in lacking]))
                                 .limit(_LOOKBACK)):
            ids = out.get(tuple(r[:k]))
            if ids is not None and len(ids) < n:
                ids.append(r[k])
    for key in [key for key, ids in out.items() if len(ids) < n]:  # rare groups
        conds_k = [c == v for c, v in zip(g, key, strict=True)]
        rows = session.execute(recent.where(*conds_k).limit(n)).all()
        out[key] += [r[k] for r in rows if r[k] not in out[key]][: n - len(out[key])]
    return out
