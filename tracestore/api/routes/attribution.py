"""Cost per outcome, wasteful paths and workflow settings:
``GET /api/v1/attribution``, ``GET /api/v1/paths``, ``GET|PUT /api/v1/workflows/{name}``.

Reports read the precomputed ``trace_summaries`` (written at analysis time), never nodes.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query
from pydantic import ConfigDict, Field
from sqlalchemy import select

from tracestore.api.deps import ProjectDep, SessionDep
from tracestore.api.params import ModelQuery
from tracestore.api.problems import PROBLEM_RESPONSES
from tracestore.digest.service import last_complete_week
from tracestore.errors import NotFound
from tracestore.reports.paths import (
    WEEK,
    AttributionReport,
    PathsReport,
    attribution_report,
    paths_report,
    week_window,
)
from tracestore.schemas import NulFree, Timestamp
from tracestore.store.engine import upsert
from tracestore.store.tables import WorkflowSetting

router = APIRouter(prefix="/api/v1", tags=["attribution"], responses=PROBLEM_RESPONSES)
_NAME = "(workflow|team|feature|user|model|week)"
_GROUP_BY = rf"^ *({_NAME} *(, *{_NAME} *)*)?$"  # parse_group_by's names, in the contract

TimeQ = Annotated[Timestamp | None, Query(description="ISO 8601 or epoch seconds; traces "
                                          "are counted by start time, since <= t < until")]


@router.get("/attribution", response_model=AttributionReport,
            summary="Cost per successful outcome, its levers and waste, per group")
def get_attribution(
    project: ProjectDep,
    session: SessionDep,
    group_by: Annotated[str, Query(description="Comma-separated: workflow, team, feature, "
                                   "user, model (a trace's primary model), week",
                                   pattern=_GROUP_BY)] = "workflow",
    since: TimeQ = None,
    until: TimeQ = None,
    period: Annotated[Literal["week"] | None, Query(description="Add the ISO week to the "
                                                    "grouping")] = None,
    compare: Annotated[str | None, Query(
        description="`previous` (the previous period) or an ISO week like 2026-W46: adds the "
        "LMDI split of the change in cost per outcome among the three levers",
        pattern=r"^(previous|\d{4}-W(0[1-9]|[1-4]\d|5[0-3]))$")] = None,
    workflow: str | None = None,
    team: str | None = None,
    feature: str | None = None,
    model: ModelQuery = None,
) -> AttributionReport:
    """Per group: spend, unpriced share, attempts, outcomes by status, cost per successful
    outcome = cost/token × tokens/attempt × attempts/outcome, first-attempt success rate
    p and the retry tail T/p, waste by analyzer, value per dollar and the workflow baseline.
    ``compare=previous`` needs a bounded window: a missing bound is a week from the other,
    and with neither the window is the last complete ISO week (UTC); the response's
    ``since``/``until`` say which."""
    if compare == "previous" and (since is None or until is None):
        if since is not None:
            until = since + WEEK
        elif until is not None:
            since = until - WEEK
        else:
            since, until = week_window(last_complete_week(time.time()))
    return attribution_report(session, project_id=project.id, group_by=group_by, since=since,
                              until=until, period=period, compare=compare, workflow=workflow,
                              team=team, feature=feature, model=model)


@router.get("/paths", response_model=PathsReport, summary="Wasteful paths by signature")
def get_paths(
    project: ProjectDep,
    session: SessionDep,
    workflow: str | None = None,
    since: TimeQ = None,
    until: TimeQ = None,
    order: Literal["waste", "cost_per_outcome"] = "waste",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    team: str | None = None,
    feature: str | None = None,
    model: ModelQuery = None,
) -> PathsReport:
    """Each productive path signature with its traces, success rate, mean cost, cost per
    outcome, waste, top finding codes and example trace ids; the traces of one workflow,
    team, feature or primary model when given (the same filters as ``/attribution``)."""
    return paths_report(session, project_id=project.id, workflow=workflow, since=since,
                        until=until, order=order, limit=limit, team=team, feature=feature,
                        model=model)


class WorkflowIn(NulFree):
    """A workflow's reference numbers."""

    model_config = ConfigDict(extra="forbid")

    baseline_cost_per_outcome_usd: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = \
        Field(None, description="What one outcome costs without the agent, e.g. the BPO or "
              "human price per resolved ticket.")
    outcome_value_usd: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        None, description="Value of one successful outcome when outcomes carry none.")
    description: Annotated[str, Field(max_length=2000)] | None = None


class WorkflowPublic(WorkflowIn):
    name: str


def _setting(session: SessionDep, project_id: int, name: str) -> WorkflowPublic:
    w = WorkflowSetting.__table__.c  # type: ignore[attr-defined]
    row = session.execute(select(w.name, w.baseline_cost_per_outcome_usd, w.outcome_value_usd,
                                 w.description)
                          .where(w.project_id == project_id, w.name == name)).first()
    if row is None:
        raise NotFound(f"workflow {name!r} has no settings; set them with PUT")
    return WorkflowPublic(**row._mapping)


@router.get("/workflows/{name}", response_model=WorkflowPublic, summary="A workflow's settings")
def get_workflow(name: str, project: ProjectDep, session: SessionDep) -> WorkflowPublic:
    """The baseline cost per outcome and outcome value of one workflow."""
    return _setting(session, project.id, name)


@router.put("/workflows/{name}", response_model=WorkflowPublic,
            summary="Set a workflow's baseline cost per outcome and outcome value")
def put_workflow(name: str, body: Annotated[WorkflowIn, Body()], project: ProjectDep,
                 session: SessionDep) -> WorkflowPublic:
    """Replace the workflow's settings (fields left out become null)."""
    upsert(session, WorkflowSetting.__table__,  # type: ignore[attr-defined]
           [{"project_id": project.id, "name": name, **body.model_dump()}],
           keys=["project_id", "name"])
    session.commit()
    return _setting(session, project.id, name)
