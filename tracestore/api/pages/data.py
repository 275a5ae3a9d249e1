"""What the pages show, read through the same report functions as the REST routes, so a page
and ``/api/v1/...`` give the same numbers for the same window and filters."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from analyzers.findings import CODES
from tracestore.analysis.queries import FindingFilters, list_findings
from tracestore.api.pages.charts import WaterfallRow, day_chart, waterfall
from tracestore.api.pages.window import PageWindow
from tracestore.pricing.pricer import Pricer
from tracestore.reports.latency import latency_report
from tracestore.reports.paths import attribution_report, paths_report
from tracestore.reports.queries import (
    primary_model_traces,
    summary_conds,
    trace_conds,
    usd_sum,
)
from tracestore.reports.simulate import ScenarioIn, SimulateIn, SimulationPublic, simulate
from tracestore.schemas import FindingPublic, TraceDetail
from tracestore.store.tables import SETTING_T, SUMMARY_T, TRACE_T

__all__ = ["findings_page", "overview", "spend_by_day", "trace_view", "traces_on_path",
           "untagged_spend", "workflow_view"]

TOP = 10


def findings_page(session: Session, project_id: int, w: PageWindow, *, code: str | None = None,
              analyzer: str | None = None, limit: int = TOP,
              cursor: str | None = None) -> tuple[list[FindingPublic], str | None]:
    filters = FindingFilters(workflow=w.workflow, code=code, analyzer=analyzer, since=w.since,
                             until=w.until, team=w.team, feature=w.feature, model=w.model)
    return list_findings(session, project_id=project_id, filters=filters, order="wasted_cost",
                         limit=limit, cursor=cursor)


def spend_by_day(session: Session, project_id: int, w: PageWindow) -> list[tuple[str, float]]:
    """Spend of the window's traces per UTC day, summed in SQL (one row a day reaches Python;
    the window starts at midnight UTC)."""
    t = TRACE_T.c
    conds = trace_conds(project_id, w.since, w.until,
                        {"workflow": w.workflow, "team": w.team, "feature": w.feature})
    if w.model is not None:  # the primary model is a summary column
        conds.append(t.trace_id.in_(primary_model_traces(project_id, w.model)))
    day = case(*((t.started_at < w.since + (i + 1) * 86400, i) for i in range(6)), else_=6)
    stmt = select(day.label("day"), usd_sum(t.cost_usd)).where(*conds).group_by(day)
    days = {int(d): float(cost or 0.0) for d, cost in session.execute(stmt)}
    first = datetime.fromtimestamp(w.since, UTC).date()
    return [((first + timedelta(days=i)).isoformat(), round(days.get(i, 0.0), 6))
            for i in range(7)]


def untagged_spend(session: Session, project_id: int, w: PageWindow) -> float:
    """Spend of the window's traces without a team: the ``team: null`` group of
    ``/attribution?group_by=team`` (the same clamped sum over the same summary rows), in one
    aggregate instead of the whole report."""
    s = SUMMARY_T.c
    conds = summary_conds(project_id, w.since, w.until, w.summary_dims)
    total = session.execute(select(usd_sum(s.cost_usd)).where(*conds, s.team.is_(None))).scalar()
    return float(total or 0.0)


def overview(session: Session, project_id: int, w: PageWindow) -> dict[str, Any]:
    """Spend, waste and its share, cost per successful outcome per workflow with its change and
    lever, spend by day, top paths and findings, unpriced and untagged shares."""
    report = attribution_report(session, project_id=project_id, group_by="workflow",
                                since=w.since, until=w.until, compare="previous", **w.dims)
    groups = report.groups
    spend = sum(g.spend_usd for g in groups)
    waste = sum(sum(g.waste_usd.values()) for g in groups)
    calls = sum(g.unpriced_calls for g in groups)
    untagged = untagged_spend(session, project_id, w)
    findings, _ = findings_page(session, project_id, w)
    paths = paths_report(session, project_id=project_id, since=w.since, until=w.until,
                         order="waste", limit=TOP, **w.dims).paths
    return {
        "spend": spend, "waste": waste, "waste_share": waste / spend if spend else None,
        "unpriced_calls": calls,
        "untagged_share": untagged / spend if spend else None,
        "groups": groups, "paths": paths, "findings": findings,
        "chart": day_chart(spend_by_day(session, project_id, w)),
    }


def workflow_view(session: Session, project_id: int, name: str, w: PageWindow, pricer: Pricer,
                  weeks: int = 8) -> dict[str, Any]:
    """Cost per outcome over the last ``weeks`` weeks with the three levers, the workflow's
    paths and findings, and its baseline and outcome value."""
    scoped = PageWindow(w.week, w.since, w.until, name, w.team, w.feature, w.model)
    history = attribution_report(session, project_id=project_id, group_by="workflow",
                                 since=w.until - weeks * 7 * 86400, until=w.until,
                                 period="week", compare="previous", **scoped.dims).groups
    history.sort(key=lambda g: g.key.get("week") or "")
    s = SETTING_T.c
    setting = session.execute(select(s.baseline_cost_per_outcome_usd, s.outcome_value_usd,
                                     s.description)
                              .where(s.project_id == project_id, s.name == name)).first()
    findings, _ = findings_page(session, project_id, scoped)
    paths = paths_report(session, project_id=project_id, since=w.since, until=w.until,
                         order="waste", limit=TOP, **scoped.dims).paths
    fixes = _all_fixes(session, project_id, scoped, pricer)
    steps = latency_report(session, project_id=project_id, group_by="step", since=w.since,
                           until=w.until, workflow=name).groups
    return {"name": name, "history": history, "setting": setting, "paths": paths,
            "findings": findings, "fixes": fixes, "latency": steps}


def _all_fixes(session: Session, project_id: int, w: PageWindow,
               pricer: Pricer) -> SimulationPublic | None:
    """The savings simulator with every finding code of the week fixed: what the fixes would
    have saved (the same numbers as POST /api/v1/simulate)."""
    q = SimulateIn(since=w.since, until=w.until, workflow=w.workflow,
                   scenario=ScenarioIn(fix_codes=sorted(CODES)))
    result = simulate(session, project_id=project_id, q=q, pricer=pricer)
    return result if result.saving_usd > 0 else None


def traces_on_path(session: Session, project_id: int, w: PageWindow, signature: str,
                   limit: int = 100) -> list[dict[str, Any]]:
    """The traces in the window whose productive path has ``signature``."""
    s = SUMMARY_T.c
    conds = [*summary_conds(project_id, w.since, w.until, w.summary_dims),
             s.path_signature == signature]
    rows = session.execute(select(s.trace_id, s.workflow, s.started_at, s.cost_usd)
                           .where(*conds).order_by(s.cost_usd.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]


def _depths(detail: TraceDetail) -> dict[str, int]:
    parents = {n.node_id: n.parent_id for n in detail.nodes}
    depth: dict[str, int] = {}
    for nid in parents:
        d, cur, seen = 0, parents.get(nid), {nid}
        while cur is not None and cur in parents and cur not in seen:
            seen.add(cur)
            d, cur = d + 1, parents[cur]
        depth[nid] = d
    return depth


def _epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def trace_view(detail: TraceDetail) -> dict[str, Any]:
    """The waterfall (span tree order: by start, then id), flagged nodes with their codes, the
    extra edges, and each node's detail."""
    codes: dict[str, list[str]] = defaultdict(list)
    for f in detail.findings:
        for nid in f.node_ids:
            codes[nid].append(f.code)
    depth = _depths(detail)
    nodes = sorted(detail.nodes, key=lambda n: (_epoch(n.start) or 0.0, n.node_id))
    rows = []
    for n in nodes:
        start = _epoch(n.start) or 0.0
        end = _epoch(n.end) or start
        rows.append(WaterfallRow(n.model_dump(), depth[n.node_id], start, max(end, start),
                                 tuple(dict.fromkeys(codes.get(n.node_id, ())))))
    index = {n.node_id: i for i, n in enumerate(nodes)}
    edges = _extra_edges(detail)
    extra = [(index[a], index[b], kind) for a, b, kind in edges if a in index and b in index]
    return {"svg": waterfall(rows, extra), "rows": rows, "codes": codes, "edges": edges}


def _extra_edges(detail: TraceDetail) -> list[tuple[str, str, str]]:
    out = [(e.src, e.dst, e.kind) for e in detail.edges if e.kind != "parent"]
    for n in detail.nodes:
        if n.retry_of:
            out.append((n.retry_of, n.node_id, "retry_of"))
        if n.review_target:
            out.append((n.review_target, n.node_id, "reviews"))
    return list(dict.fromkeys(out))
