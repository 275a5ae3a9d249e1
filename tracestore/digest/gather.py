"""Read one ISO week (and the week before) from the store and build its digest.

Aggregation is not re-derived here: spend, levers, waste by code and unpriced calls come from
:func:`tracestore.reports.economics.unit_economics` over the per-trace summaries, paths from
:func:`tracestore.reports.economics.wasteful_paths`, baselines from
:func:`tracestore.reports.economics.workflow_settings`, the savings from the simulator
(:func:`tracestore.reports.simulate.simulate`). Findings are read here as plain rows (code,
workflow, dollars, ids, message: no evidence or node lists) and grouped by the pure
:func:`analyzers.digest.group_findings`. What the reports do not expose is read here too:
the spend of traces whose task has an outcome, and the human-override count (the findings of
code ``churn.overridden``: model output a human rejected or replaced; their cost is the waste
attribution booked under that code, the same figure "waste by code" shows).

Counting is by trace start time in ``[Monday 00:00, next Monday 00:00)`` UTC, the window the
summaries and findings are filtered on.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from analyzers.digest import (
    TOP_N,
    build_digest,
    group_findings,
    previous_week,
    top_fix_codes,
    week_bounds,
)
from analyzers.digest_types import (
    Digest,
    FindingGroup,
    PathStat,
    SavingsRisk,
    SimulatedWorkflow,
    SimulationIn,
    WeekAggregates,
    WorkflowSettingIn,
    WorkflowWeek,
)
from analyzers.findings import Finding
from tracestore.analysis.queries import FindingFilters, list_findings
from tracestore.errors import ValidationFailed
from tracestore.pricing.pricer import Pricer
from tracestore.reports.economics import (
    GroupEconomics,
    unit_economics,
    wasteful_paths,
    workflow_settings,
)
from tracestore.reports.queries import usd_sum
from tracestore.reports.simulate import ScenarioIn, SimulateIn, simulate
from tracestore.store.tables import FINDING_T, TraceSummary

__all__ = ["OVERRIDE_CODE", "load_digest", "parse_week", "savings_request", "week_aggregates",
           "week_finding_groups", "week_findings", "week_simulation"]

OVERRIDE_CODE = "churn.overridden"
DAY = 86_400.0
# Findings read per page while collecting a week's findings.
_PAGE = 1000


def parse_week(week: str) -> tuple[float, float]:
    """``"2026-W47"`` → (start, end) epoch seconds; a malformed week, or one outside the years
    2000-9998 (stored times start in 2000; the digest also reads the week before and after),
    is a 422."""
    if week[:4].isdigit() and not 2000 <= int(week[:4]) <= 9998:
        raise ValidationFailed(f"week {week[:40]!r} is outside the years 2000 to 9998")
    try:
        _, _, start, end = week_bounds(week)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    return start, end


def _total(session: Session, pid: int, since: float, until: float) -> GroupEconomics | None:
    groups = unit_economics(session, project_id=pid, since=since, until=until, group_by=())
    return groups[0] if groups else None


def week_aggregates(session: Session, *, project_id: int, start: float,
                    overrides: int = 0, daily: bool = True) -> WeekAggregates:
    """The :class:`WeekAggregates` of the week starting at ``start``."""
    end = start + 7 * DAY
    total = _total(session, project_id, start, end)
    if total is None:
        return WeekAggregates(daily_spend_usd=(0.0,) * 7 if daily else ())
    per_wf = unit_economics(session, project_id=project_id, since=start, until=end,
                            group_by=("workflow",))
    teams = unit_economics(session, project_id=project_id, since=start, until=end,
                           group_by=("team",))
    days: tuple[float, ...] = ()
    if daily:
        days = tuple(g.spend_usd if g else 0.0 for g in (
            _total(session, project_id, start + i * DAY, start + (i + 1) * DAY)
            for i in range(7)))
    s = TraceSummary.__table__.c  # type: ignore[attr-defined]
    with_outcome = session.execute(
        select(func.coalesce(usd_sum(s.cost_usd), 0.0)).where(
            s.project_id == project_id, s.started_at >= start, s.started_at < end,
            s.outcome_status.is_not(None))
    ).scalar_one()
    return WeekAggregates(
        spend_usd=total.spend_usd, traces=total.attempts, daily_spend_usd=days,
        workflows=tuple(
            WorkflowWeek(workflow=str(g.key["workflow"] or "(none)"), cost_usd=g.spend_usd,
                         tokens=g.tokens, attempts=g.attempts, outcomes=g.successes,
                         value_usd=g.value_usd or 0.0)
            for g in per_wf),
        priced_kind_calls=total.model_calls, unpriced_calls=total.unpriced_calls,
        untagged_spend_usd=sum(g.spend_usd for g in teams if not g.key["team"]),
        spend_with_outcome_usd=float(with_outcome),
        overrides=overrides,
        override_cost_usd=total.waste_by_code.get(OVERRIDE_CODE, 0.0),
        waste_by_code=tuple(total.waste_by_code.items()),
    )


def week_findings(session: Session, *, project_id: int, start: float) -> list[Finding]:
    """Every stored finding on traces started in the week, as :class:`Finding` values."""
    filters = FindingFilters(since=start, until=start + 7 * DAY)
    out: list[Finding] = []
    cursor: str | None = None
    while True:
        page, cursor = list_findings(session, project_id=project_id, filters=filters,
                                     limit=_PAGE, cursor=cursor)
        out += [Finding(id=f.id, trace_id=f.trace_id, workflow=f.workflow, analyzer=f.analyzer,
                        code=f.code, node_ids=tuple(f.node_ids), wasted_tokens=f.wasted_tokens,
                        wasted_cost_usd=f.wasted_cost_usd, savings_usd=f.savings_usd,
                        confidence=f.confidence, evidence=f.evidence, message=f.message)
                for f in page]
        if cursor is None:
            return out


class _FindingRow(NamedTuple):
    code: str
    workflow: str | None
    wasted_cost_usd: float
    savings_usd: float
    trace_id: str
    id: str
    message: str


def week_finding_groups(session: Session, *, project_id: int,
                        start: float) -> tuple[FindingGroup, ...]:
    """The findings on traces started in the week, grouped by
    :func:`analyzers.digest.group_findings`: one read of the seven plain columns the grouping
    uses (no evidence, node list or durations, which :func:`week_findings` decodes)."""
    f = FINDING_T.c
    rows = session.execute(
        select(f.code, f.workflow, f.wasted_cost_usd, f.savings_usd, f.trace_id, f.id,
               f.message)
        .where(f.project_id == project_id, f.trace_started_at >= start,
               f.trace_started_at < start + 7 * DAY))
    return group_findings(_FindingRow(code, wf, float(wasted or 0.0), float(saved or 0.0),
                                      tid, fid, message or "")
                          for code, wf, wasted, saved, tid, fid, message in rows)


def savings_request(start: float, codes: tuple[str, ...]) -> SimulateIn:
    """The ``POST /api/v1/simulate`` body the savings section answers: the week, every
    workflow, the fixes of ``codes``."""
    return SimulateIn(since=start, until=start + 7 * DAY,
                      scenario=ScenarioIn(fix_codes=list(codes)))


def week_simulation(session: Session, *, project_id: int, start: float,
                    codes: tuple[str, ...]) -> SimulationIn | None:
    """The savings simulator's answer for the week with the fixes of ``codes`` applied
    (None when there is no code to fix). A fix-only scenario re-prices nothing, so the pricer
    is never consulted."""
    if not codes:
        return None
    sim = simulate(session, project_id=project_id, q=savings_request(start, codes),
                   pricer=Pricer())
    return SimulationIn(
        fix_codes=codes, spend_usd=sim.before.spend_usd, after_spend_usd=sim.after.spend_usd,
        saving_usd=sim.saving_usd,
        workflows=tuple(SimulatedWorkflow(
            workflow=g.workflow or "(none)", spend_usd=g.before.spend_usd,
            after_spend_usd=g.after.spend_usd, saving_usd=g.saving_usd,
            cost_per_outcome_usd=g.before.cost_per_outcome_usd,
            after_cost_per_outcome_usd=g.after.cost_per_outcome_usd) for g in sim.workflows),
        risks=tuple(SavingsRisk(r.workflow, r.step, r.to_model, r.reason) for r in sim.risks))


def load_digest(session: Session, *, project_id: int, project: str, week: str) -> Digest:
    """The digest of ``week`` for one project, read from the store."""
    start, end = parse_week(week)
    prev_start = week_bounds(previous_week(week))[2]
    groups = week_finding_groups(session, project_id=project_id, start=start)
    overrides = sum(g.count for g in groups if g.code == OVERRIDE_CODE)
    current = week_aggregates(session, project_id=project_id, start=start, overrides=overrides)
    previous = week_aggregates(session, project_id=project_id, start=prev_start, daily=False)
    paths = [PathStat(workflow=p.workflow or "(none)", signature=p.signature, traces=p.traces,
                      successes=p.successes, decided=p.decided, cost_usd=p.cost_usd,
                      waste_usd=p.waste_usd, example_trace_ids=p.example_trace_ids)
             for p in wasteful_paths(session, project_id=project_id, since=start, until=end,
                                     order="waste", limit=TOP_N)]
    settings = [WorkflowSettingIn(name, row.get("baseline_cost_per_outcome_usd"),
                                  row.get("outcome_value_usd"))
                for name, row in workflow_settings(session, project_id=project_id).items()]
    simulation = week_simulation(session, project_id=project_id, start=start,
                                 codes=top_fix_codes(current.waste_by_code))
    return build_digest(project=project, week=week, current=current, previous=previous,
                        finding_groups=groups, paths=paths, settings=settings,
                        simulation=simulation)
