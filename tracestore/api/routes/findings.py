"""Analysis on demand (``POST /analyze``) and the findings it stored (``GET /findings``)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tracestore.alerts.service import evaluate_project
from tracestore.analysis import AnalyzerSuite, Window, analyze_window, default_suite
from tracestore.analysis.queries import FindingFilters, list_findings
from tracestore.api.deps import EngineDep, ProjectDep, SessionDep, SettingsDep
from tracestore.api.params import ModelQuery
from tracestore.api.problems import PROBLEM_RESPONSES
from tracestore.schemas import FindingPublic, NulFree, Page, Timestamp, iso

router = APIRouter(prefix="/api/v1", tags=["findings"], responses=PROBLEM_RESPONSES)

TimeQuery = Annotated[Timestamp | None, Query(description="ISO 8601 or epoch seconds")]


class AnalyzeIn(NulFree):
    """Which traces to analyse: ``since <= started_at < until``, optionally one workflow."""

    model_config = ConfigDict(extra="forbid")

    since: Timestamp | None = None
    until: Timestamp | None = None
    workflow: str | None = None


class AnalyzeResult(BaseModel):
    traces_analyzed: int = Field(description="Traces whose findings were replaced.")
    findings: int = Field(description="Findings stored for those traces.")
    wasted_cost_usd: float = Field(description="Sum of the stored findings' waste (USD).")
    since: str | None
    until: str | None
    workflow: str | None


def _suite(request: Request) -> AnalyzerSuite:
    suite: AnalyzerSuite | None = getattr(request.app.state, "analyzer_suite", None)
    if suite is None:
        suite = request.app.state.analyzer_suite = default_suite()
    return suite


@router.post("/analyze", response_model=AnalyzeResult, summary="Analyse traces now")
def post_analyze(
    request: Request,
    project: ProjectDep,
    engine: EngineDep,
    settings: SettingsDep,
    body: Annotated[AnalyzeIn | None, Body()] = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    workflow: str | None = None,
) -> AnalyzeResult:
    """Analyse the traces that started in ``[since, until)`` (either bound open) now,
    replacing their findings, and return the counts. The window may come as query parameters
    or a JSON body (body values win)."""
    if body is not None:
        since = body.since if body.since is not None else since
        until = body.until if body.until is not None else until
        workflow = body.workflow if body.workflow is not None else workflow
    # since >= until is an empty window (nothing analysed), as every schema-valid request is
    # answered rather than refused (tests/test_schemathesis.py)
    counts = analyze_window(
        engine,
        project_id=project.id,
        window=Window(since=since, until=until, workflow=workflow),
        suite=_suite(request),
        baseline_days=settings.baseline_days,
        now=time.time(),
    )
    # Alerts are evaluated after analysis too (their numbers read the fresh findings).
    evaluate_project(engine, project.id, now=time.time(), default_url=settings.alert_webhook_url)
    return AnalyzeResult(
        traces_analyzed=counts.traces,
        findings=counts.findings,
        wasted_cost_usd=round(counts.wasted_cost_usd, 10),
        since=iso(since),
        until=iso(until),
        workflow=workflow,
    )


@router.get("/findings", response_model=Page[FindingPublic], summary="List findings")
def get_findings(
    project: ProjectDep,
    session: SessionDep,
    trace_id: str | None = None,
    workflow: str | None = None,
    analyzer: Literal["churn", "bloat", "routing"] | None = None,
    code: Annotated[str | None, Query(pattern=r"^(churn|bloat|routing)\.[a-z_]+$",
                                      description="A finding code, e.g. churn.exact_repeat")]
    = None,
    min_cost: Annotated[float | None, Query(ge=0, description="Least wasted_cost_usd")] = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    team: Annotated[str | None, Query(description="The trace's team")] = None,
    feature: Annotated[str | None, Query(description="The trace's feature")] = None,
    model: ModelQuery = None,
    order: Literal["wasted_cost", "created"] = "wasted_cost",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> Page[FindingPublic]:
    """Findings, largest waste first (``order=wasted_cost``) or newest analysis first
    (``order=created``). ``since``/``until`` bound the start time of the finding's trace
    (``since >= until`` is an empty window)."""
    items, nxt = list_findings(
        session,
        project_id=project.id,
        filters=FindingFilters(trace_id, workflow, analyzer, code, min_cost, since, until,
                               team, feature, model),
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page[FindingPublic](items=items, next_cursor=nxt)
