"""Results stored for a complete week, checked against a fingerprint of their inputs.

A page of a finished week (overview, workflow, paths, prices, and the weekly digest:
:mod:`tracestore.digest.cache`) is built once and kept in ``stored_results``, keyed by (project,
page, the page's normalised parameters), with a fingerprint of everything it was built
from. A request recomputes the fingerprint (a few aggregate reads on indexed columns) and
rebuilds when it differs: exactness comes from checking, not from hooks. The parts a caller
combines:

- :func:`window_part`: over a range of trace start times (optionally one workflow's traces),
  ``traces``: count, latest ``updated_at`` (every write of a trace, its nodes or its outcome
  node stamps it), latest ``analyzed_at`` and the sums of the cost roll-ups; and
  ``trace_summaries``: count, latest ``summarized_at`` and the task-level columns a late
  outcome, or a trace of the same task outside the range, refreshes without a timestamp
  (attempt index, attempts, the attempt an outcome is counted on, the task's outcome status
  and value), each summed weighted by the attempt's start time, so a success that moves from
  one attempt to another changes the sum;
- :func:`settings_part`: the project's workflow settings (baselines, outcome values);
- :func:`book_part`: the project's price overrides (what a simulation prices with);
- :func:`older_part`: for results read by node time (a node of the week may belong to a trace
  started earlier): the count of the project's traces started before a time and the latest
  ``updated_at`` among them.

Re-pricing rewrites node costs without stamping the traces, so it calls :func:`forget_stored`
in the same transaction. Rows are bounded: at most :data:`MAX_STORED` per project, the oldest
built evicted first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from tracestore.store.engine import upsert
from tracestore.store.load import window_conds
from tracestore.store.sums import clamp_usd, usd_sum
from tracestore.store.tables import PRICE_T, SETTING_T, STORED_T, SUMMARY_T, TRACE_T

__all__ = ["MAX_STORED", "book_part", "digest_of", "forget_stored", "load_stored", "older_part",
           "save_stored", "settings_part", "stored_or_built", "window_part"]

T = TypeVar("T")

# Stored results kept per project (each a page's data for one week and set of filters).
MAX_STORED = 500


def window_part(session: Session, *, project_id: int, since: float, until: float,
                workflow: str | None = None) -> list[Any]:
    """The traces' and summaries' aggregates over trace start in ``[since, until)``: two
    range reads on the start-time indexes (the workflow's, when given)."""
    t, s = TRACE_T.c, SUMMARY_T.c
    tc = window_conds(TRACE_T, project_id, since, until, {"workflow": workflow})
    sc = window_conds(SUMMARY_T, project_id, since, until, {"workflow": workflow})
    traces = session.execute(select(
        func.count(), func.max(t.updated_at), func.max(t.analyzed_at), usd_sum(t.cost_usd),
        func.sum(t.unpriced_count), func.sum(t.llm_calls), func.sum(t.node_count),
    ).where(*tc)).one()
    at = s.started_at
    summaries = session.execute(select(
        func.count(), func.max(s.summarized_at), func.sum(s.attempt_index * at),
        func.sum(s.task_attempts * at), func.sum(case((s.outcome_here.is_(True), at))),
        func.sum(case((s.outcome_status == "success", at))),
        func.sum(case((s.outcome_status.is_not(None), at))),
        func.sum(clamp_usd(s.outcome_value_usd) * at),  # clamped: no overflow (store/sums.py)
    ).where(*sc)).one()
    return [list(traces), list(summaries)]


def settings_part(session: Session, *, project_id: int) -> list[Any]:
    """The project's workflow settings: name, baseline, outcome value."""
    w = SETTING_T.c
    return [list(r) for r in session.execute(
        select(w.name, w.baseline_cost_per_outcome_usd, w.outcome_value_usd)
        .where(w.project_id == project_id).order_by(w.name))]


def book_part(session: Session, *, project_id: int) -> list[Any]:
    """Every column of the project's price overrides, in key order."""
    cols = list(PRICE_T.c)
    key = [c for c in cols if c.primary_key]
    return [list(r) for r in session.execute(
        select(*cols).where(PRICE_T.c.project_id == project_id).order_by(*key))]


def older_part(session: Session, *, project_id: int, before: float) -> list[Any]:
    """Count of the project's traces started before ``before`` and the latest ``updated_at``
    among them (a write to an old trace, or its deletion, changes one of them)."""
    t = TRACE_T.c
    conds = [t.project_id == project_id, t.started_at < before]
    count = session.execute(select(func.count()).where(*conds)).scalar()
    latest = session.execute(select(t.updated_at).where(*conds)
                             .order_by(t.updated_at.desc()).limit(1)).scalar()
    return [count, latest]


def digest_of(parts: list[Any]) -> str:
    """SHA-256 of the parts as JSON (the fingerprint)."""
    return hashlib.sha256(orjson.dumps(parts, default=str)).hexdigest()


def _key(params: dict[str, Any]) -> tuple[str, str]:
    text = orjson.dumps(params, option=orjson.OPT_SORT_KEYS).decode()
    return hashlib.sha256(text.encode()).hexdigest(), text


def stored_or_built(session: Session, *, project_id: int, page: str, params: dict[str, Any],
                    complete: bool, fingerprint: Callable[[], str], build: Callable[[], T],
                    load: Callable[[str], T], dump: Callable[[T], str], now: float) -> T:
    """``page``'s result for ``params``: built (``build``) and not stored when its week is not
    ``complete``; else the stored body (``load``) while ``fingerprint()`` still matches it,
    or built and stored (``dump``; committed). The stored pages and the weekly digest both
    come through here."""
    if not complete:
        return build()
    key = fingerprint()
    body = load_stored(session, project_id=project_id, page=page, params=params,
                       fingerprint=key)
    if body is not None:
        return load(body)
    result = build()
    save_stored(session, project_id=project_id, page=page, params=params, fingerprint=key,
                body=dump(result), now=now)
    session.commit()
    return result


def load_stored(session: Session, *, project_id: int, page: str, params: dict[str, Any],
                fingerprint: str) -> str | None:
    """The stored body of ``page`` for ``params`` when its fingerprint is ``fingerprint``."""
    c = STORED_T.c
    row = session.execute(select(c.fingerprint, c.body).where(
        c.project_id == project_id, c.page == page, c.key == _key(params)[0])).first()
    return row[1] if row is not None and row[0] == fingerprint else None


def save_stored(session: Session, *, project_id: int, page: str, params: dict[str, Any],
                fingerprint: str, body: str, now: float) -> None:
    """Store (or replace) a body, then evict the project's oldest beyond :data:`MAX_STORED`.
    Does not commit."""
    key, text = _key(params)
    upsert(session, STORED_T, [{"project_id": project_id, "page": page, "key": key,
                                "params": text, "fingerprint": fingerprint, "body": body,
                                "built_at": now}], keys=("project_id", "page", "key"))
    c = STORED_T.c
    edge = session.execute(select(c.built_at).where(c.project_id == project_id)
                           .order_by(c.built_at.desc()).offset(MAX_STORED).limit(1)).scalar()
    if edge is not None:
        session.execute(delete(STORED_T).where(c.project_id == project_id,
                                               c.built_at <= edge, c.key != key))


def forget_stored(session: Session, *, project_id: int) -> None:
    """Drop every stored result of the project (after a re-pricing). Does not commit."""
    session.execute(delete(STORED_T).where(STORED_T.c.project_id == project_id))
