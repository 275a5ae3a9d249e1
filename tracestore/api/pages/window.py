"""The window and filters every page takes: an ISO week (default: the latest complete week
that has data) and workflow/team/feature/model."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from analyzers.digest import previous_week, week_bounds, week_of
from tracestore.errors import ValidationFailed
from tracestore.store.tables import TRACE_T

__all__ = ["PageWindow", "default_week", "page_window"]


@dataclass(frozen=True)
class PageWindow:
    """The week shown and the filters, with the query string that keeps them across links."""

    week: str
    since: float
    until: float
    workflow: str | None = None
    team: str | None = None
    feature: str | None = None
    model: str | None = None

    @property
    def dims(self) -> dict[str, str | None]:
        """The filters as the report functions take them (``model``: the primary model)."""
        return {"workflow": self.workflow, "team": self.team, "feature": self.feature,
                "model": self.model}

    @property
    def summary_dims(self) -> dict[str, str | None]:
        """The filters as ``trace_summaries`` columns (for :func:`summary_conds`)."""
        return {"workflow": self.workflow, "team": self.team, "feature": self.feature,
                "primary_model": self.model}

    @property
    def previous(self) -> str:
        return previous_week(self.week)

    def query(self, **override: str | None) -> str:
        """``?week=…&workflow=…`` for links that keep this window (``override`` replaces)."""
        params = {"week": self.week, "workflow": self.workflow, "team": self.team,
                  "feature": self.feature, "model": self.model, **override}
        return "?" + urlencode({k: v for k, v in params.items() if v})


def default_week(session: Session, project_id: int, now: float) -> str:
    """The latest complete ISO week (UTC) that holds a trace; the last complete week when the
    store is empty."""
    this_monday = week_bounds(week_of(now))[2]
    t = TRACE_T.c
    latest = session.execute(select(func.max(t.started_at)).where(
        t.project_id == project_id, t.started_at < this_monday)).scalar()
    return week_of(float(latest)) if latest is not None else previous_week(week_of(now))


def page_window(session: Session, project_id: int, now: float, *, week: str | None,
                workflow: str | None = None, team: str | None = None,
                feature: str | None = None, model: str | None = None) -> PageWindow:
    week = week or default_week(session, project_id, now)
    try:
        _, _, since, until = week_bounds(week)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    if not 2000 <= int(week[:4]) <= 2100:
        raise ValidationFailed(f"week {week!r} is outside 2000-2100")
    return PageWindow(week, since, until, workflow or None, team or None, feature or None,
                      model or None)
