"""``GET /api/v1/export/focus``: cost rows in FOCUS column names, as CSV or JSON Lines."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from tracestore.api.deps import EngineDep, ReadProjectDep
from tracestore.api.problems import PROBLEM_RESPONSES
from tracestore.reports.focus import (
    ALLOCATION_METHOD_ID,
    FOCUS_VERSION,
    FocusQuery,
    focus_rows,
    write_csv,
    write_jsonl,
)
from tracestore.schemas import Timestamp

router = APIRouter(prefix="/api/v1", tags=["export"], responses=PROBLEM_RESPONSES)

TimeQ = Annotated[Timestamp | None, Query(description="ISO 8601 or epoch seconds; traces are "
                                          "exported by start time, since <= t < until")]
MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl"}


@router.get("/export/focus", summary="Cost rows in FinOps FOCUS columns (CSV or JSON Lines)",
            response_class=StreamingResponse,
            responses={200: {"description": "FOCUS rows", "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/jsonl": {"schema": {"type": "string"}}}}})
def export_focus(
    project: ReadProjectDep,
    engine: EngineDep,
    since: TimeQ = None,
    until: TimeQ = None,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    team: Annotated[str | None, Query(max_length=200)] = None,
    feature: Annotated[str | None, Query(max_length=200)] = None,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl")] = "csv",
) -> StreamingResponse:
    """One row per trace and model, FOCUS 1.3 column names plus ``x_`` columns for waste and
    outcome; the waste allocation method is named on every row (docs/export.md)."""
    rows = focus_rows(engine, FocusQuery(project.id, since, until, workflow, team, feature))
    body = write_csv(rows) if format == "csv" else write_jsonl(rows)
    return StreamingResponse(body, media_type=MEDIA[format], headers={
        "x-focus-version": FOCUS_VERSION, "x-focus-allocation-method": ALLOCATION_METHOD_ID,
        "content-disposition": f'attachment; filename="focus.{format}"'})
