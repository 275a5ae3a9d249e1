"""The weekly churn digest: ``GET /api/v1/digest/weekly?week=2026-W47&format=json|md|html``."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from tracestore.api.deps import EngineDep, ReadProjectDep, SettingsDep
from tracestore.api.problems import PROBLEM_RESPONSES
from tracestore.digest import render
from tracestore.digest.cache import cached_digest
from tracestore.digest.jsonout import SCHEMA_ID
from tracestore.digest.service import base_url_of, last_complete_week

router = APIRouter(prefix="/api/v1", tags=["digest"], responses=PROBLEM_RESPONSES)

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The digest: JSON (`api_schema/digest.schema.json`), Markdown or a "
        "self-contained HTML page",
        "content": {
            "application/json": {"schema": {"type": "object", "title": SCHEMA_ID,
                                            "description": "api_schema/digest.schema.json"}},
            "text/markdown": {"schema": {"type": "string"}},
            "text/html": {"schema": {"type": "string"}},
        },
    },
}


@router.get("/digest/weekly", summary="Weekly churn digest", response_class=Response,
            responses=_RESPONSES)
async def get_weekly_digest(
    project: ReadProjectDep,
    engine: EngineDep,
    settings: SettingsDep,
    week: Annotated[str | None, Query(
        description="ISO week, e.g. 2026-W47 (default: the last complete week, UTC); the "
        "years 2000 to 9998", pattern=r"^(2\d{3}|[3-9]\d{3})-W(0[1-9]|[1-4]\d|5[0-3])$",
        examples=["2026-W47"])] = None,
    format: Annotated[Literal["json", "md", "html"], Query(
        description="json, md (Markdown for chat/email) or html (a page with charts)")] = "json",
) -> Response:
    """Spend and its change, cost per successful outcome per workflow with the three-lever
    explanation, the top wasteful paths and findings in dollars, waste by code, coverage and
    the maturity rung (docs/digest.md). Trace links point at ``digest_base_url`` (or this
    server)."""
    now = time.time()
    week = week or last_complete_week(now)
    # A complete week's digest is stored and rebuilt only when its inputs change.
    digest = await run_in_threadpool(lambda: cached_digest(
        engine, project_id=project.id, project=project.name, week=week, now=now))
    # Links follow the configuration only, never the request's Host header (a client could
    # otherwise make a digest it forwards point wherever it likes).
    base = base_url_of(settings)
    body, media_type = render(digest, format, base_url=base)
    return Response(body, media_type=media_type)
