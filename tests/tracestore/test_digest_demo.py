"""The demo's W47 story, told by the digest: the support_triage prompt change shows up as the
tokens/attempt lever, the claims_processing retry regression as attempts/outcome, each with the
dollar change in cost per successful outcome computed here independently from the stored
traces and outcomes."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from analyzers.digest import week_bounds
from tracestore.analysis.run import analyze_window
from tracestore.analysis.suite import default_suite
from tracestore.config import Settings
from tracestore.demo.run import run_demo
from tracestore.digest import render_markdown
from tracestore.digest.gather import load_digest
from tracestore.digest.markdown import CHAT_LIMIT
from tracestore.ingest.pipeline import project_id_for
from tracestore.store.load import Window
from tracestore.store.tables import Outcome, Trace

# Enough traffic per workflow and week for the injected effects to dominate sampling noise,
# small enough to load and analyse in a few seconds.
N_TRACES = 300
EXPECTED = {"support_triage": "tokens_per_attempt",
            "claims_processing": "attempts_per_outcome"}


def _cost_per_success(session: Session, pid: int, week: str) -> dict[str, float]:
    """Spend of the week's traces over the successful tasks whose last attempt started in the
    week (the attempt an outcome is counted on when it names no trace), per workflow."""
    _, _, start, end = week_bounds(week)
    rows = session.execute(select(Trace.trace_id, Trace.workflow, Trace.task_id,
                                  Trace.started_at, Trace.cost_usd)
                           .where(Trace.project_id == pid)).all()
    status = dict(session.execute(select(Outcome.task_id, Outcome.status)
                                  .where(Outcome.project_id == pid)).all())
    last: dict[str, tuple[float, str]] = {}
    for r in rows:
        last[r.task_id] = max(last.get(r.task_id, (float("-inf"), "")),
                              (r.started_at, r.trace_id))
    spend: dict[str, float] = defaultdict(float)
    wins: dict[str, int] = defaultdict(int)
    for r in rows:
        if start <= r.started_at < end:
            spend[r.workflow] += r.cost_usd
            if last[r.task_id][1] == r.trace_id and status.get(r.task_id) == "success":
                wins[r.workflow] += 1
    return {wf: spend[wf] / wins[wf] for wf in spend if wins[wf]}


def test_demo_w47_digest_names_the_injected_changes(db_url: str) -> None:
    settings = Settings(database_url=db_url, settle_seconds=0)
    run_demo(settings, n=N_TRACES, echo=lambda _: None)
    engine = create_engine(db_url)
    pid = project_id_for(engine, settings.project)
    analyze_window(engine, project_id=pid, window=Window(), suite=default_suite(),
                   baseline_days=settings.baseline_days, now=time.time())
    with Session(engine) as s:
        digest = load_digest(s, project_id=pid, project=settings.project, week="2026-W47")
        now = _cost_per_success(s, pid, "2026-W47")
        before = _cost_per_success(s, pid, "2026-W46")
        spend = sum(s.execute(select(Trace.cost_usd).where(
            Trace.project_id == pid, Trace.started_at >= week_bounds("2026-W47")[2],
            Trace.started_at < week_bounds("2026-W47")[3])).scalars())
    engine.dispose()
    assert digest.headline.spend_usd == pytest.approx(spend, abs=1e-5)
    wf = {w.workflow: w for w in digest.workflows}
    text = render_markdown(digest, base_url="http://demo")
    for name, lever in EXPECTED.items():
        w = wf[name]
        assert w.levers is not None, (name, w.note)
        change = now[name] - before[name]
        assert w.change_usd == pytest.approx(change, abs=1e-5), name
        assert w.levers.dominant == lever, (name, w.levers)
        # The named lever carries most of the rise, in dollars per outcome.
        assert getattr(w.levers, lever) > 0.5 * change > 0, (name, w.levers, change)
        label = {"tokens_per_attempt": "tokens/attempt",
                 "attempts_per_outcome": "attempts/outcome"}[lever]
        assert f"`{name}`" in text and f"mostly **{label}**" in text
    assert digest.findings and digest.paths and digest.maturity.rung != "Blind"
    assert len(text) < CHAT_LIMIT, len(text)
    top = digest.findings[0]
    assert f"(http://demo/traces/{top.example_trace_ids[0]})" in text
