"""``POST /api/v1/simulate``: the savings simulator (re-prices a window under a scenario)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from tracestore.api.deps import ReadProjectDep, SessionDep, WriterDep
from tracestore.api.problems import PROBLEM_RESPONSES
from tracestore.errors import ValidationFailed
from tracestore.reports.simulate import SimulateIn, SimulationPublic, simulate

router = APIRouter(prefix="/api/v1", tags=["simulate"], responses=PROBLEM_RESPONSES)


@router.post("/simulate", response_model=SimulationPublic,
             summary="What the window would have cost under a scenario")
def post_simulate(body: Annotated[SimulateIn, Body()], project: ReadProjectDep,
                  session: SessionDep, writer: WriterDep) -> SimulationPublic:
    """Re-price the stored traces of ``[since, until)`` (optionally one workflow) with the
    scenario's routes, fixes and prices, without changing them: ``before`` and ``after`` per
    workflow and per step with the three levers, and the outcome risks of each route
    (docs/simulate.md). Needs only the read scope."""
    if body.since is not None and body.until is not None and body.since >= body.until:
        raise ValidationFailed("since must be before until")
    return simulate(session, project_id=project.id, q=body, pricer=writer.pricer)
