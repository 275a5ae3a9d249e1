"""The attribution and paths reports: one function each, shared by the REST API and the CLI,
returning wire models (``*Public``) built from :mod:`tracestore.reports.economics`.

``period="week"`` adds the ISO week to the grouping; ``compare="previous"`` sets each group's
``change`` to the LMDI split against the same group one period earlier (the previous week
with ``period="week"``, else the window of equal length just before ``since``), and
``compare="2026-W46"`` compares against that ISO week.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from analyzers.paths import PathGroup
from tracestore.errors import BadRequest
from tracestore.reports.economics import (
    GroupEconomics,
    lever_changes,
    parse_group_by,
    unit_economics,
)
from tracestore.reports.economics import wasteful_paths as _paths
from tracestore.schemas import iso

__all__ = [
    "AttributionReport",
    "GroupPublic",
    "LeverChangePublic",
    "PathPublic",
    "PathsReport",
    "attribution_report",
    "paths_report",
    "week_window",
]

WEEK = 7 * 86_400.0


class LeverChangePublic(BaseModel):
    before_usd: float = Field(description="Cost per successful outcome in the earlier period.")
    after_usd: float
    change_usd: float
    parts: dict[str, float] = Field(
        description="USD of the change each lever explains (LMDI); they sum to change_usd.")
    dominant: str


class GroupPublic(BaseModel):
    key: dict[str, str | None]
    spend_usd: float
    unpriced_share: float | None = Field(description="Share of model calls with no price.")
    unpriced_calls: int
    tokens: int
    attempts: int = Field(description="Traces; a task retried three times has three.")
    tasks: int = Field(description="Tasks whose first attempt is in this group.")
    outcomes: dict[str, int] = Field(description="Outcomes counted in this group, by status.")
    successes: int
    cost_per_outcome_usd: float | None = Field(description="Spend per successful outcome.")
    cost_per_token_usd: float | None
    tokens_per_attempt: float | None
    attempts_per_outcome: float | None
    first_attempt_success_rate: float | None = Field(description="p: first attempts that "
                                                     "succeeded, over first attempts decided.")
    mean_attempt_cost_usd: float | None = Field(description="T: spend per attempt.")
    retry_tail_usd: float | None = Field(description="T/p: expected cost per success.")
    p95_attempts: int | None
    productive_usd: float
    waste_usd: dict[str, float] = Field(description="Waste by analyzer (churn, bloat, routing).")
    waste_by_code: dict[str, float]
    value_usd: float | None
    value_per_dollar: float | None
    baseline_cost_per_outcome_usd: float | None
    vs_baseline_usd: float | None = Field(description="Cost per outcome minus the baseline.")
    change: LeverChangePublic | None = None


class AttributionReport(BaseModel):
    group_by: list[str]
    since: str | None
    until: str | None
    period: str | None
    compare: str | None
    groups: list[GroupPublic]


class PathPublic(BaseModel):
    workflow: str | None
    signature: str
    traces: int
    successes: int
    success_rate: float | None
    mean_cost_usd: float
    cost_usd: float
    cost_per_outcome_usd: float | None
    waste_usd: float
    top_codes: dict[str, float] = Field(description="Finding codes with the most waste, USD.")
    example_trace_ids: list[str] = Field(description="Follow to GET /api/v1/traces/{id} "
                                         "and GET /api/v1/findings?trace_id={id}.")


class PathsReport(BaseModel):
    workflow: str | None
    team: str | None = None
    feature: str | None = None
    model: str | None = None
    since: str | None
    until: str | None
    order: str
    paths: list[PathPublic]


def group_public(g: GroupEconomics) -> GroupPublic:
    lv, ch = g.levers, g.change
    return GroupPublic(
        key=g.key, spend_usd=g.spend_usd, unpriced_share=g.unpriced_share,
        unpriced_calls=g.unpriced_calls, tokens=g.tokens, attempts=g.attempts, tasks=g.tasks,
        outcomes=g.outcomes, successes=g.successes, cost_per_outcome_usd=g.cost_per_outcome_usd,
        cost_per_token_usd=lv.cost_per_token, tokens_per_attempt=lv.tokens_per_attempt,
        attempts_per_outcome=lv.attempts_per_outcome,
        first_attempt_success_rate=g.first_attempt_success_rate,
        mean_attempt_cost_usd=g.mean_attempt_cost_usd, retry_tail_usd=g.retry_tail_usd,
        p95_attempts=g.p95_attempts, productive_usd=g.productive_usd, waste_usd=g.waste_usd,
        waste_by_code=g.waste_by_code, value_usd=g.value_usd, value_per_dollar=g.value_per_dollar,
        baseline_cost_per_outcome_usd=g.baseline_cost_per_outcome_usd,
        vs_baseline_usd=g.vs_baseline_usd,
        change=None if ch is None else LeverChangePublic(
            before_usd=ch.before, after_usd=ch.after, change_usd=ch.total, parts=ch.parts,
            dominant=ch.dominant),
    )


def week_window(week: str) -> tuple[float, float]:
    """``"2026-W47"`` → [Monday 00:00, next Monday 00:00) UTC as epoch seconds.

    >>> week_window("2026-W47")
    (1794787200.0, 1795392000.0)
    """
    try:
        y, w = week.split("-W")
        start = date.fromisocalendar(int(y), int(w), 1)
    except ValueError:
        raise BadRequest(f"not an ISO week like 2026-W47: {week!r}") from None
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()
    return t0, t0 + WEEK


def _shift_week(key: dict[str, str | None]) -> dict[str, str | None]:
    """A previous-period group key → the key of the week after it."""
    week = key.get("week")
    if not week:
        return key
    year, num = week.split("-W")
    y, w, _ = (date.fromisocalendar(int(year), int(num), 1) + timedelta(days=7)).isocalendar()
    return {**key, "week": f"{y}-W{w:02d}"}


def attribution_report(
    session: Session, *, project_id: int, group_by: str = "workflow", since: float | None = None,
    until: float | None = None, period: str | None = None, compare: str | None = None,
    workflow: str | None = None, team: str | None = None, feature: str | None = None,
    model: str | None = None,
) -> AttributionReport:
    """The cost-per-outcome table (``GET /api/v1/attribution``)."""
    names = parse_group_by(group_by)
    if period not in (None, "week"):
        raise BadRequest(f"period must be 'week', not {period!r}")
    if period == "week" and "week" not in names:
        names = (*names, "week")
    filters = {"workflow": workflow, "team": team, "feature": feature, "model": model}
    groups = unit_economics(session, project_id=project_id, since=since, until=until,
                            group_by=names, **filters)
    if compare is not None:
        shift = None
        if compare == "previous":
            if since is None or until is None:
                raise BadRequest("compare=previous needs since and until")
            if period == "week":  # each week against the same group's week before
                p_since, p_until = since - WEEK, until - WEEK
                shift = _shift_week
            else:
                p_since, p_until = since - (until - since), since
        else:
            p_since, p_until = week_window(compare)
        prev = unit_economics(session, project_id=project_id, since=p_since, until=p_until,
                              group_by=names, **filters)
        groups = lever_changes(prev, groups, shift=shift)
    return AttributionReport(group_by=list(names), since=iso(since), until=iso(until),
                             period=period, compare=compare,
                             groups=[group_public(g) for g in groups])


def path_public(p: PathGroup) -> PathPublic:
    return PathPublic(
        workflow=p.workflow, signature=p.signature, traces=p.traces, successes=p.successes,
        success_rate=p.success_rate, mean_cost_usd=p.mean_cost_usd, cost_usd=p.cost_usd,
        cost_per_outcome_usd=p.cost_per_outcome_usd, waste_usd=p.waste_usd,
        top_codes=dict(p.top_codes), example_trace_ids=list(p.example_trace_ids))


def paths_report(
    session: Session, *, project_id: int, workflow: str | None = None,
    since: float | None = None, until: float | None = None, order: str = "waste",
    limit: int = 50, team: str | None = None, feature: str | None = None,
    model: str | None = None,
) -> PathsReport:
    """Wasteful paths (``GET /api/v1/paths``), for one workflow, team, feature or primary
    model if given."""
    groups = _paths(session, project_id=project_id, workflow=workflow, since=since, until=until,
                    order=order, limit=limit, team=team, feature=feature, model=model)
    return PathsReport(workflow=workflow, team=team, feature=feature, model=model,
                       since=iso(since), until=iso(until), order=order,
                       paths=[path_public(p) for p in groups])
