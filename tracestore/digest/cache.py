"""A built digest stored per (project, week) once the week is complete, so the digest page and
``GET /api/v1/digest/weekly`` do not re-gather a finished week on every request. It is kept
with the stored pages, in ``stored_results`` (page ``"digest"``, parameters ``{"week": …}``;
:mod:`tracestore.store.stored`).

Exactness comes from checking, not from hooks: the stored digest carries a fingerprint of
everything it was built from, and a request recomputes the fingerprint (a few aggregate reads
on indexed columns) and rebuilds when it differs. The fingerprint covers the digest's two weeks
(the week and the one before, by trace start):

- ``traces``: count, latest ``updated_at`` (every write of a trace, its nodes or its
  outcome node stamps it), latest ``analyzed_at`` (every analysis or re-analysis), and the sums
  of the cost roll-ups (``tracestore reprice`` rewrites costs without touching ``updated_at``);
- ``trace_summaries``: count, latest ``summarized_at`` (every analysis), and the task-level
  columns that a late outcome, or a trace of the same task outside the weeks, refreshes without
  a timestamp (``tracestore.reports.summaries.refresh_tasks``): attempt index, attempts, the
  attempt an outcome is counted on, the task's outcome status and value. Each is summed
  weighted by the attempt's start time, so it is the set of attempts that changes the sum, not
  only its size: a success that moves from one attempt to another changes it;
- the project's workflow settings (baselines, outcome values).

Re-pricing (``tracestore reprice``, ``POST /api/v1/reprice``) rewrites node costs without
stamping the traces, so both drop the project's stored results
(:func:`~tracestore.store.stored.forget_stored`) in the same transaction; the cost sums above
would almost always notice it anyway, but "almost" is not exact.

A week that is not complete yet (its end is after ``now``) is built on every request and not
stored. ``DIGEST_FORMAT`` is part of the fingerprint, so a release that changes the digest's
content does not serve digests built by the previous one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from pydantic import TypeAdapter
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from analyzers.digest import previous_week, week_bounds
from analyzers.digest_types import Digest
from tracestore.digest.gather import load_digest, parse_week
from tracestore.store.stored import digest_of, settings_part, stored_or_built, window_part

__all__ = ["DIGEST_FORMAT", "DIGEST_PAGE", "cached_digest", "fingerprint"]

# Bumped whenever what a digest contains changes (a new section, a new rule).
DIGEST_FORMAT = "2026-12-06.savings"


# The digest's name among the stored results.
DIGEST_PAGE = "digest"


@cache
def _adapter() -> TypeAdapter[Digest]:
    return TypeAdapter(Digest)


def fingerprint(session: Session, *, project_id: int, week: str) -> str:
    """SHA-256 of the aggregates :mod:`tracestore.store.stored` names, over ``week`` and the
    week before: two range reads on the start-time indexes and the settings."""
    since, until = week_bounds(previous_week(week))[2], week_bounds(week)[3]
    window = window_part(session, project_id=project_id, since=since, until=until)
    return digest_of([DIGEST_FORMAT, week, *window, settings_part(session, project_id=project_id)])


def cached_digest(engine: Engine, *, project_id: int, project: str, week: str,
                  now: float) -> Digest:
    """The digest of ``week`` for one project (:func:`tracestore.digest.gather.load_digest`),
    served from the store when the week is complete and nothing it was built from changed."""
    return _cached(engine, project_id=project_id, week=week, now=now,
                   build=lambda session: load_digest(session, project_id=project_id,
                                                     project=project, week=week))


def _cached(engine: Engine, *, project_id: int, week: str, now: float,
            build: Callable[[Session], Digest]) -> Digest:
    """The stored digest of ``week`` when the week is complete and its fingerprint still
    matches, else ``build(session)``, stored when the week is complete."""
    with Session(engine) as session:
        return stored_or_built(
            session, project_id=project_id, page=DIGEST_PAGE, params={"week": week},
            complete=parse_week(week)[1] <= now,
            fingerprint=lambda: fingerprint(session, project_id=project_id, week=week),
            build=lambda: build(session), load=_adapter().validate_json,
            dump=lambda digest: _adapter().dump_json(digest).decode(), now=now)
