"""Traces: list, detail, the node-link graph, and deletion."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from tracestore.api.deps import AdminProjectDep, ProjectDep, SessionDep
from tracestore.api.problems import PROBLEM_RESPONSES
from tracestore.errors import NotFound
from tracestore.ingest.delete import delete_traces
from tracestore.schemas import Page, Timestamp, TraceDetail, TracePublic
from tracestore.store.graph import build_trace_graph, graph_to_json
from tracestore.store.read import TraceFilters, get_trace, list_traces, load_trace_rows

router = APIRouter(prefix="/api/v1", tags=["traces"], responses=PROBLEM_RESPONSES)


@router.get("/traces", response_model=Page[TracePublic], summary="List traces")
def get_traces(
    project: ProjectDep,
    session: SessionDep,
    workflow: str | None = None,
    team: str | None = None,
    feature: str | None = None,
    task_id: str | None = None,
    since: Annotated[Timestamp | None, Query(description="ISO 8601 or epoch seconds")] = None,
    until: Annotated[Timestamp | None, Query(description="ISO 8601 or epoch seconds")] = None,
    has_error: bool | None = None,
    order: Literal["start", "cost"] = "start",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> Page[TracePublic]:
    """Traces newest first (``order=start``) or most expensive first (``order=cost``)."""
    items, nxt = list_traces(
        session,
        project_id=project.id,
        filters=TraceFilters(workflow, team, feature, since, until, has_error, task_id),
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page[TracePublic](items=items, next_cursor=nxt)


@router.get("/traces/{trace_id}", response_model=TraceDetail, summary="One trace")
def get_trace_detail(trace_id: str, project: ProjectDep, session: SessionDep) -> TraceDetail:
    """Nodes (with costs), stored edges, roll-ups, outcomes of its task and findings."""
    return get_trace(session, project_id=project.id, trace_id=trace_id)


@router.get("/traces/{trace_id}/graph", response_model=dict[str, Any],
            summary="The trace graph as node-link JSON")
def get_trace_graph(trace_id: str, project: ProjectDep, session: SessionDep) -> dict[str, Any]:
    """All edges, including those derived from node fields (``parent``, ``retry_of``,
    ``uses``, ``reviews``), in networkx node-link form."""
    trace, nodes, edges = load_trace_rows(session, project_id=project.id, trace_id=trace_id)
    return graph_to_json(build_trace_graph(trace, nodes, edges))


@router.delete("/traces/{trace_id}", status_code=204, response_class=Response,
               summary="Delete a trace (admin)")
def delete_trace(trace_id: str, project: AdminProjectDep, session: SessionDep) -> Response:
    """Remove the trace with its nodes, edges, findings and summary at once (every report
    reflects it on the next request); the other traces of its task get their attempt
    columns recomputed. 404 when the project has no such trace."""
    deleted = delete_traces(session, project_id=project.id, trace_ids=[trace_id])
    if not deleted.traces:
        session.rollback()
        raise NotFound(f"trace {trace_id!r} not found")
    session.commit()
    return Response(status_code=204)
