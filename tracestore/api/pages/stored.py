"""The overview, workflow, paths and prices pages of a complete week, built once and served from
``stored_results`` until one of their inputs changes (:mod:`tracestore.store.stored`).

What is stored is each page's data (the numbers the template renders), keyed by the page and
its normalised parameters (every field of the :class:`PageWindow`, the workflow's name, the
path signature); a request recomputes the page's fingerprint and rebuilds on a mismatch. A
week not over yet (its end after ``now``) is built on every request and never stored. The
fingerprint of each page covers the trace-start range its reports read:

- overview: the week and the one before (``compare=previous``), the workflow settings;
  with ``workflow=`` only that workflow's traces (every section of the page is filtered by it);
- workflow: the nine weeks of its history (eight, each compared with the week before) of that
  workflow's traces, the settings and the price book (the savings simulator prices with it);
  its baseline and description are read on every request, not stored;
- paths: the week and the one before (with ``workflow=``, that workflow's traces);
- prices: unpriced models by *node* start in the week; a node of the week may belong to a trace
  started earlier, so besides the week and the one before it covers the count of the older
  traces and their latest ``updated_at``. The price book itself is read on every request.

``PAGE_FORMAT`` is part of every fingerprint, so a release that changes what a page shows does
not serve data built by the previous one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from analyzers.digest import week_bounds
from tracestore.api.pages import data
from tracestore.api.pages.window import PageWindow
from tracestore.pricing.book import UnpricedModel, unpriced_models
from tracestore.pricing.pricer import Pricer
from tracestore.reports.latency import LatencyGroup
from tracestore.reports.paths import GroupPublic, PathPublic, paths_report
from tracestore.reports.simulate import SimulationPublic
from tracestore.schemas import FindingPublic
from tracestore.store.stored import (
    book_part,
    digest_of,
    older_part,
    settings_part,
    stored_or_built,
    window_part,
)
from tracestore.store.tables import SETTING_T

__all__ = ["PAGE_FORMAT", "overview", "paths", "prices", "workflow"]

# Bumped whenever what one of these pages shows changes.
PAGE_FORMAT = "2026-12-06.pages"
WEEK = 7 * 86400

M = TypeVar("M", bound=BaseModel)


class OverviewData(BaseModel):
    spend: float
    waste: float
    waste_share: float | None
    unpriced_calls: int
    untagged_share: float | None
    groups: list[GroupPublic]
    paths: list[PathPublic]
    findings: list[FindingPublic]
    chart: str


class WorkflowData(BaseModel):
    history: list[GroupPublic]
    paths: list[PathPublic]
    findings: list[FindingPublic]
    fixes: SimulationPublic | None
    latency: list[LatencyGroup]


class PathsData(BaseModel):
    paths: list[PathPublic]
    traces: list[dict[str, Any]] | None


class PricesData(BaseModel):
    unpriced: list[UnpricedModel]


def _fields(m: BaseModel) -> dict[str, Any]:
    """The model's fields as the template's context (nested models kept as models)."""
    return {k: getattr(m, k) for k in type(m).model_fields}


def _complete(w: PageWindow, now: float) -> bool:
    return w.until <= now and (w.since, w.until) == week_bounds(w.week)[2:]


def _stored(session: Session, *, project_id: int, page: str, w: PageWindow,
            extra: dict[str, Any], model: type[M], parts: Callable[[], list[Any]],
            build: Callable[[], M], now: float | None = None) -> M:
    """The page's data: stored and unchanged, else built (and stored when the week is
    complete)."""
    now = time.time() if now is None else now
    params = {**dataclasses.asdict(w), **extra}
    return stored_or_built(session, project_id=project_id, page=page, params=params,
                           complete=_complete(w, now),
                           fingerprint=lambda: digest_of([PAGE_FORMAT, page, params, *parts()]),
                           build=build, load=model.model_validate_json,
                           dump=lambda result: result.model_dump_json(), now=now)


def overview(session: Session, project_id: int, w: PageWindow,
             now: float | None = None) -> dict[str, Any]:
    """:func:`tracestore.api.pages.data.overview`, stored for a complete week."""
    def parts() -> list[Any]:
        return [*window_part(session, project_id=project_id, since=w.since - WEEK,
                             until=w.until, workflow=w.workflow),
                settings_part(session, project_id=project_id)]
    return _fields(_stored(session, project_id=project_id, page="overview", w=w, extra={},
                           model=OverviewData, parts=parts, now=now,
                           build=lambda: OverviewData(**data.overview(session, project_id, w))))


def workflow(session: Session, project_id: int, name: str, w: PageWindow, pricer: Pricer,
             now: float | None = None) -> dict[str, Any]:
    """:func:`tracestore.api.pages.data.workflow_view`, stored for a complete week (the
    workflow's settings read on every request)."""
    def parts() -> list[Any]:
        return [*window_part(session, project_id=project_id, since=w.until - 9 * WEEK,
                             until=w.until, workflow=name),
                settings_part(session, project_id=project_id),
                book_part(session, project_id=project_id)]

    def build() -> WorkflowData:
        view = data.workflow_view(session, project_id, name, w, pricer)
        return WorkflowData(**{k: view[k] for k in WorkflowData.model_fields})
    stored = _stored(session, project_id=project_id, page="workflow", w=w,
                     extra={"name": name}, model=WorkflowData, parts=parts, build=build,
                     now=now)
    s = SETTING_T.c
    setting = session.execute(select(s.baseline_cost_per_outcome_usd, s.outcome_value_usd,
                                     s.description)
                              .where(s.project_id == project_id, s.name == name)).first()
    return {"name": name, "setting": setting, **_fields(stored)}


def paths(session: Session, project_id: int, w: PageWindow, signature: str | None,
          now: float | None = None) -> dict[str, Any]:
    """The paths page's top 100 paths by waste and the traces on ``signature``."""
    def parts() -> list[Any]:
        return window_part(session, project_id=project_id, since=w.since - WEEK,
                           until=w.until, workflow=w.workflow)

    def build() -> PathsData:
        top = paths_report(session, project_id=project_id, since=w.since, until=w.until,
                           order="waste", limit=100, **w.dims).paths
        on = data.traces_on_path(session, project_id, w, signature) if signature else None
        return PathsData(paths=top, traces=on)
    return _fields(_stored(session, project_id=project_id, page="paths", w=w,
                           extra={"signature": signature}, model=PathsData, parts=parts,
                           build=build, now=now))


def prices(session: Session, project_id: int, w: PageWindow,
           now: float | None = None) -> list[UnpricedModel]:
    """The unpriced models of the week (by node start)."""
    def parts() -> list[Any]:
        return [*window_part(session, project_id=project_id, since=w.since - WEEK,
                             until=w.until),
                older_part(session, project_id=project_id, before=w.since - WEEK)]

    def build() -> PricesData:
        return PricesData(unpriced=unpriced_models(session, project_id=project_id,
                                                   since=w.since, until=w.until))
    return _stored(session, project_id=project_id, page="prices", w=w, extra={},
                   model=PricesData, parts=parts, build=build, now=now).unpriced
