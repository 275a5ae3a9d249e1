"""The digest's "what the top fixes would have saved" section reconciles with the savings
simulator: the same window and scenario posted to ``POST /api/v1/simulate`` answer the same
figures, on both backends; an empty week has no section and no error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from analyzers.digest import SAVINGS_CODES, week_bounds
from tracestore.analysis.run import analyze_window
from tracestore.analysis.suite import default_suite
from tracestore.api import create_app
from tracestore.config import Settings
from tracestore.demo.run import run_demo
from tracestore.digest.markdown import usd
from tracestore.ingest.pipeline import project_id_for
from tracestore.store.load import Window

WEEK = "2026-W47"
START, END = week_bounds(WEEK)[2], week_bounds(WEEK)[3]


@pytest.fixture
def demo_client(db_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=db_url, settle_seconds=0)
    run_demo(settings, n=150, echo=lambda _: None)
    engine = create_engine(db_url)
    analyze_window(engine, project_id=project_id_for(engine, settings.project),
                   window=Window(), suite=default_suite(),
                   baseline_days=settings.baseline_days, now=time.time())
    engine.dispose()
    with TestClient(create_app(settings)) as c:
        yield c


def _digest(client: TestClient, fmt: str = "json") -> Any:
    r = client.get("/api/v1/digest/weekly", params={"week": WEEK, "format": fmt})
    assert r.status_code == 200, r.text
    return r.json() if fmt == "json" else r.text


def test_savings_equal_the_simulator(demo_client: TestClient) -> None:
    d = _digest(demo_client)
    s = d["savings"]
    # The rule: the week's top codes by booked waste (the digest's waste by code).
    ranked = [c["code"] for c in d["waste_by_code"] if c["wasted_usd"] > 0]
    assert s["fix_codes"] == ranked[:SAVINGS_CODES] and len(s["fix_codes"]) == SAVINGS_CODES
    r = demo_client.post("/api/v1/simulate", json={
        "since": START, "until": END, "scenario": {"fix_codes": s["fix_codes"]}})
    assert r.status_code == 200, r.text
    sim = r.json()
    assert sim["saving_usd"] > 0
    assert s["spend_usd"] == round(sim["before"]["spend_usd"], 6)
    assert s["after_spend_usd"] == round(sim["after"]["spend_usd"], 6)
    assert s["saving_usd"] == round(sim["saving_usd"], 6)
    assert s["saving_pct"] == round(sim["saving_usd"] / sim["before"]["spend_usd"] * 100, 1)
    assert s["risks"] == sim["risks"] == []
    by_wf = {w["workflow"]: w for w in s["workflows"]}
    assert set(by_wf) == {g["workflow"] for g in sim["workflows"]}
    for g in sim["workflows"]:
        w = by_wf[g["workflow"]]
        assert w["spend_usd"] == round(g["before"]["spend_usd"], 6)
        assert w["after_spend_usd"] == round(g["after"]["spend_usd"], 6)
        assert w["saving_usd"] == round(g["saving_usd"], 6)
        for mine, theirs in (("cost_per_outcome_usd", g["before"]),
                             ("after_cost_per_outcome_usd", g["after"])):
            assert w[mine] == round(theirs["cost_per_outcome_usd"], 6), (w, g)
    # Fixing waste can only lower a workflow's cost per outcome.
    assert all(w["after_cost_per_outcome_usd"] <= w["cost_per_outcome_usd"]
               for w in s["workflows"])
    # The same figures in the Markdown, Slack-shaped webhook text and HTML forms.
    md = _digest(demo_client, "md")
    assert "*What the top fixes would have saved*" in md
    money = f"{usd(s['saving_usd'])} saved ({s['saving_pct']:.1f}%)"
    assert money in md
    html = _digest(demo_client, "html")
    assert f'data-savings="{s["saving_usd"]}"' in html and money in html
    page = demo_client.get("/digest", params={"week": WEEK})
    assert page.status_code == 200 and money in page.text


def test_slack_text_carries_the_section(demo_client: TestClient) -> None:
    from tracestore.digest.markdown import render_markdown
    from tracestore.digest.service import project_digest

    _, digest = project_digest(demo_client.app.state.engine,  # type: ignore[attr-defined]
                               project="default", week=WEEK)
    assert digest.savings is not None
    text = render_markdown(digest, base_url="http://x", flavor="slack")
    assert "What the top fixes would have saved" in text
    assert f"{usd(digest.savings.saving_usd)} saved" in text


def test_an_empty_week_has_no_savings_section(client: TestClient) -> None:
    d = client.get("/api/v1/digest/weekly", params={"week": WEEK}).json()
    assert d["savings"] is None
    md = client.get("/api/v1/digest/weekly", params={"week": WEEK, "format": "md"}).text
    assert "top fixes" not in md
    page = client.get("/digest", params={"week": WEEK})
    assert page.status_code == 200
    assert "nothing to save" in page.text


def test_findings_read_as_plain_rows_group_like_the_findings(
        demo_client: TestClient) -> None:
    """week_finding_groups (seven plain columns) == group_findings over the week's findings
    as list_findings returns them: every group, every field, before and after rounding."""
    from sqlalchemy.orm import Session

    from analyzers.digest import TOP_N, group_findings, rank_finding_groups
    from tracestore.digest import gather

    with Session(demo_client.app.state.engine) as s:  # type: ignore[attr-defined]
        rows = gather.week_finding_groups(s, project_id=1, start=START)
        findings = gather.week_findings(s, project_id=1, start=START)
    py = group_findings(findings)
    assert len(findings) > 50 and len(py) > TOP_N
    assert sorted(rows, key=repr) == sorted(py, key=repr)
    assert rank_finding_groups(rows) == rank_finding_groups(py)
