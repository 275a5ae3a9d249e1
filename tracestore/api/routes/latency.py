"""``GET /api/v1/latency``: p50/p95 durations per workflow, step or model."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from tracestore.api.deps import ProjectDep, SessionDep
from tracestore.api.problems import PROBLEM_RESPONSES
from tracestore.reports.latency import LatencyReport, latency_report
from tracestore.schemas import Timestamp

router = APIRouter(prefix="/api/v1", tags=["attribution"], responses=PROBLEM_RESPONSES)

TimeQ = Annotated[Timestamp | None, Query(description="ISO 8601 or epoch seconds; traces "
                                          "by start time, since <= t < until")]


@router.get("/latency", response_model=LatencyReport,
            summary="p50/p95 durations per workflow, step or model")
def get_latency(
    project: ProjectDep,
    session: SessionDep,
    group_by: Annotated[Literal["workflow", "step", "model"], Query(
        description="workflow (whole traces), step (workflow + step key) or model")] = "workflow",
    since: TimeQ = None,
    until: TimeQ = None,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
) -> LatencyReport:
    """Durations from stored start/end times: count, p50, p95, mean and total seconds per
    group, slowest p95 first; rows without both times are counted in ``without_times``."""
    return latency_report(session, project_id=project.id, group_by=group_by, since=since,
                          until=until, workflow=workflow)
