"""Alert rules and their events: ``GET|PUT /api/v1/alerts``, ``GET /api/v1/alerts/events``,
``POST /api/v1/alerts/evaluate`` (docs/alerts.md)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel

from tracestore.alerts.rules import AlertRuleIn, AlertsIn
from tracestore.alerts.service import evaluate_project, list_events, load_rules, replace_rules
from tracestore.api.deps import AdminProjectDep, EngineDep, ProjectDep, SessionDep, SettingsDep
from tracestore.api.problems import PROBLEM_RESPONSES
from tracestore.schemas import iso

router = APIRouter(prefix="/api/v1", tags=["alerts"], responses=PROBLEM_RESPONSES)


class AlertRulePublic(AlertRuleIn):
    firing: bool
    fired_at: str | None
    last_value: float | None
    evaluated_at: str | None


class AlertsPublic(BaseModel):
    rules: list[AlertRulePublic]


class AlertEventPublic(BaseModel):
    rule: str
    event: str
    at: str | None
    value: float
    threshold: float
    message: str
    url: str | None
    status: str
    attempts: int
    http_status: int | None
    error: str | None


def _public(rows: list[dict[str, Any]]) -> AlertsPublic:
    return AlertsPublic(rules=[AlertRulePublic(
        **r["rule"], firing=r["firing"], fired_at=iso(r["fired_at"]),
        last_value=r["last_value"], evaluated_at=iso(r["evaluated_at"])) for r in rows])


@router.get("/alerts", response_model=AlertsPublic, summary="The project's alert rules")
def get_alerts(project: ProjectDep, session: SessionDep) -> AlertsPublic:
    """Each rule with its state: firing since when, the last measured value."""
    return _public(load_rules(session, project.id))


@router.put("/alerts", response_model=AlertsPublic, summary="Replace the alert rules")
def put_alerts(body: Annotated[AlertsIn, Body()], project: AdminProjectDep,
               session: SessionDep) -> AlertsPublic:
    """The project's rules become exactly ``rules``; a rule sent again unchanged keeps its
    state, so it does not fire again while its condition holds."""
    replace_rules(session, project.id, body.rules)
    session.commit()
    return _public(load_rules(session, project.id))


@router.get("/alerts/events", response_model=list[AlertEventPublic],
            summary="Alert firings and clearings, newest first")
def get_alert_events(project: ProjectDep, session: SessionDep,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100
                     ) -> list[AlertEventPublic]:
    return [AlertEventPublic(**{**e, "at": iso(e["at"])})
            for e in list_events(session, project.id, limit)]


@router.post("/alerts/evaluate", response_model=list[AlertEventPublic],
             summary="Evaluate the alert rules now")
def post_evaluate(project: AdminProjectDep, engine: EngineDep,
                  settings: SettingsDep) -> list[AlertEventPublic]:
    """What the scheduler does every ``alert_interval_seconds``; returns the events written."""
    events = evaluate_project(engine, project.id, now=time.time(),
                              default_url=settings.alert_webhook_url)
    return [AlertEventPublic(**{"status": "not_sent", "attempts": 0, "http_status": None,
                                "error": None, **e, "at": iso(e["at"])}) for e in events]
