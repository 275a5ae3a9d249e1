"""Alert evaluation against the store, event records, webhook delivery, and the scheduler.

What each rule measures (over the rolling ``window_days`` ending now; traces by start time):

- ``cost_per_outcome_above_baseline``: the workflow's cost per successful outcome (the
  attribution report's number) against its stored baseline (``PUT /workflows/{name}``);
- ``cost_per_outcome_increase``: the same, in percent against the window before;
- ``spend_over_budget``: the summed trace cost of the project, or of one workflow, team,
  feature or user, against ``threshold`` dollars;
- ``unpriced_share_over``: unpriced model calls over all model calls.

A firing is recorded in ``alert_events`` and posted (with the digest's retries) to the rule's
webhook as Slack-compatible JSON ``{"text": …}``; the rule then stays quiet until an evaluation
finds the condition gone (a ``cleared`` event, not posted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session

from tracestore.alerts.rules import AlertRuleIn, decide, describe
from tracestore.digest.webhook import post_with_retry
from tracestore.reports.economics import unit_economics, workflow_settings
from tracestore.store.locks import exclusive
from tracestore.store.tables import ALERT_EVENT_T, ALERT_RULE_T, TRACE_T

__all__ = ["AlertScheduler", "evaluate_project", "list_events", "load_rules", "replace_rules",
           "slack_text"]

log = logging.getLogger("tracestore.alerts")
DAY = 86400.0
_DIMENSION_COLUMNS = {"workflow": "workflow", "team": "team", "feature": "feature",
                      "user": "user_id"}


def slack_text(text: str) -> str:
    """Escape for Slack mrkdwn: the three characters Slack asks to encode (``&``, ``<``,
    ``>``), so a producer string cannot become a link or a ``<!channel>`` mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def load_rules(session: Session, project_id: int) -> list[dict[str, Any]]:
    r = ALERT_RULE_T.c
    return [dict(m) for m in session.execute(
        select(ALERT_RULE_T).where(r.project_id == project_id).order_by(r.name)).mappings()]


def replace_rules(session: Session, project_id: int, rules: list[AlertRuleIn]) -> None:
    """The project's rules become exactly ``rules``; a rule sent again unchanged keeps its
    state (so re-sending the set does not re-fire what is firing). Does not commit."""
    r = ALERT_RULE_T.c
    old = {m["name"]: m for m in load_rules(session, project_id)}
    session.execute(delete(ALERT_RULE_T).where(r.project_id == project_id))
    for rule in rules:
        body = rule.model_dump()
        kept = old.get(rule.name)
        state = ({k: kept[k] for k in ("firing", "fired_at", "last_value", "evaluated_at")}
                 if kept is not None and kept["rule"] == body else {"firing": False})
        session.execute(insert(ALERT_RULE_T).values(project_id=project_id, name=rule.name,
                                                    rule=body, **state))


def _cost_per_outcome(session: Session, project_id: int, workflow: str, since: float,
                      until: float) -> float | None:
    groups = unit_economics(session, project_id=project_id, since=since, until=until,
                            group_by=("workflow",), workflow=workflow)
    return groups[0].levers.cost_per_outcome if groups else None


def _spend(session: Session, project_id: int, rule: AlertRuleIn, since: float) -> float:
    t = TRACE_T.c
    conds = [t.project_id == project_id, t.started_at >= since]
    if rule.dimension != "project":
        conds.append(t[_DIMENSION_COLUMNS[rule.dimension]] == rule.value)
    return float(session.execute(select(func.coalesce(func.sum(t.cost_usd), 0.0))
                                 .where(*conds)).scalar() or 0.0)


def _unpriced_share(session: Session, project_id: int, since: float) -> float | None:
    t = TRACE_T.c
    calls, unpriced = session.execute(
        select(func.coalesce(func.sum(t.llm_calls), 0),
               func.coalesce(func.sum(t.unpriced_count), 0))
        .where(t.project_id == project_id, t.started_at >= since)).one()
    return float(unpriced) / float(calls) if calls else None


def measure(session: Session, project_id: int, rule: AlertRuleIn, now: float
            ) -> tuple[float | None, float | None]:
    """(value, baseline) of ``rule`` at ``now``; value None when there is nothing to judge."""
    since = now - rule.window_days * DAY
    if rule.kind == "spend_over_budget":
        return _spend(session, project_id, rule, since), None
    if rule.kind == "unpriced_share_over":
        return _unpriced_share(session, project_id, since), None
    assert rule.workflow is not None  # the rule's validator requires it
    cpo = _cost_per_outcome(session, project_id, rule.workflow, since, now)
    if rule.kind == "cost_per_outcome_above_baseline":
        setting = workflow_settings(session, project_id=project_id).get(rule.workflow, {})
        return cpo, setting.get("baseline_cost_per_outcome_usd")
    before = _cost_per_outcome(session, project_id, rule.workflow,
                               since - rule.window_days * DAY, since)
    if cpo is None or not before:
        return None, None
    return 100.0 * (cpo / before - 1.0), None


def _deliver(url: str | None, text: str, **retry: Any) -> dict[str, Any]:
    if not url:
        return {"status": "not_sent", "attempts": 0}
    result = post_with_retry(url, orjson.dumps({"text": text}), **retry)
    return {"status": "ok" if result.ok else "failed", "attempts": result.attempts,
            "http_status": result.http_status, "error": result.error}


def evaluate_project(engine: Engine, project_id: int, *, now: float,
                     default_url: str = "", **retry: Any) -> list[dict[str, Any]]:
    """Evaluate every rule of the project; record and post what fires, record what clears.
    Returns the events written. One evaluation of a project at a time across every server
    process (:func:`~tracestore.store.locks.exclusive`): the scheduler of each server and
    the evaluation after an analysis would otherwise all see a rule newly true and post it."""
    with exclusive(engine, f"alerts:{project_id}"):
        return _evaluate(engine, project_id, now=now, default_url=default_url, **retry)


def _evaluate(engine: Engine, project_id: int, *, now: float, default_url: str,
              **retry: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with Session(engine) as session:
        rows = load_rules(session, project_id)
        decided = []
        for row in rows:
            rule = AlertRuleIn.model_validate(row["rule"])
            value, baseline = measure(session, project_id, rule, now)
            decided.append((row, rule, value, baseline,
                            decide(rule, value=value, firing=row["firing"], baseline=baseline)))
    for row, rule, value, baseline, verdict in decided:
        limit = baseline if rule.kind == "cost_per_outcome_above_baseline" else rule.threshold
        event: dict[str, Any] | None = None
        if verdict is not None and value is not None and limit is not None:
            message = describe(rule, value, limit)
            event = {"project_id": project_id, "rule": rule.name, "at": now,
                     "event": "fired" if verdict == "fire" else "cleared",
                     "value": value, "threshold": limit, "message": message,
                     "url": rule.webhook_url or default_url or None}
            if verdict == "fire":  # posted outside the store transaction (it retries)
                event.update(_deliver(event["url"], slack_text(
                    f"tracestore alert {rule.name}: {message}"), **retry))
        with Session(engine) as session, session.begin():
            r = ALERT_RULE_T.c
            state: dict[str, Any] = {"last_value": value, "evaluated_at": now}
            if verdict is not None:
                state.update(firing=verdict == "fire",
                             fired_at=now if verdict == "fire" else row["fired_at"])
            session.execute(update(ALERT_RULE_T).where(
                r.project_id == project_id, r.name == row["name"]).values(**state))
            if event is not None:
                session.execute(insert(ALERT_EVENT_T).values(**event))
                events.append(event)
    return events


def list_events(session: Session, project_id: int, limit: int = 100) -> list[dict[str, Any]]:
    e = ALERT_EVENT_T.c
    return [dict(m) for m in session.execute(
        select(ALERT_EVENT_T).where(e.project_id == project_id)
        .order_by(e.at.desc(), e.id.desc()).limit(limit)).mappings()]


class AlertScheduler:
    """The server thread that evaluates every project's rules each ``interval`` seconds."""

    def __init__(self, engine: Engine, *, interval: float, default_url: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.interval = interval
        self.default_url = default_url
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracestore-alerts",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def evaluate_all(self) -> int:
        with Session(self.engine) as session:
            projects = list(session.execute(
                select(ALERT_RULE_T.c.project_id).distinct()).scalars())
        return sum(len(evaluate_project(self.engine, pid, now=self.clock(),
                                        default_url=self.default_url)) for pid in projects)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.evaluate_all()
            except Exception:  # a bad evaluation must not stop the thread; it is logged
                log.exception("alert evaluation failed")

