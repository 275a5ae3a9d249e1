"""Outcomes, cost per outcome and wasteful paths through the real app, on every backend.

Every LLM call below is gpt-4o with 2,000 input and 500 output tokens: at the bundled
genai-prices list price ($2.50 in / $10 out per MTok) that is exactly $0.01 a call.

Week 2026-W47 (from Monday 2026-11-16), workflow ``support``:

* task T1: attempts a1 and a2 fail, a3 succeeds (outcome node, value $30);
* task T2: one trace; a draft answer nobody used (a $0.01 ``churn.dead_end`` finding: the
  answer declared its inputs with ``uses`` and the draft is not among them), then the answer;
* task T3: one trace, its outcome ($50) arrives late over REST, after analysis.

Week 2026-W46: task T0, one successful single-call trace.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tracestore.ingest.pipeline import project_id_for
from tracestore.store.engine import make_engine

W47 = 1794787200.0  # Monday 2026-11-16 00:00 UTC
W46 = W47 - 7 * 86400
DAY = 86400.0


def llm(node_id: str, t: float, name: str = "answer", **kw: Any) -> dict[str, Any]:
    return {"node_id": node_id, "parent_id": "R", "kind": "llm", "name": name,
            "provider": "openai", "model": "gpt-4o", "input_tokens": 2000,
            "output_tokens": 500, "start": t + 1, "end": t + 2, **kw}


def trace(trace_id: str, task: str, t: float, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"trace_id": trace_id, "task_id": task, "workflow": "support", "team": "care",
            "nodes": [{"node_id": "R", "kind": "agent", "name": "support", "start": t,
                       "end": t + 10}, *nodes]}


def retrieval(t: float) -> dict[str, Any]:
    return {"node_id": "r", "parent_id": "R", "kind": "retrieval", "name": "kb_search",
            "start": t + 0.5, "end": t + 0.6, "documents": [{"id": "doc1"}]}


def outcome(t: float, value: float | None = None) -> dict[str, Any]:
    return {"node_id": "o", "parent_id": "R", "kind": "outcome", "name": "resolved",
            "outcome_status": "success", "outcome_type": "ticket_resolved",
            "outcome_value_usd": value, "start": t + 5}


TRACES = [
    trace("a1", "T1", W47 + 1 * 3600, [llm("l", W47 + 3600, status="error")]),
    trace("a2", "T1", W47 + 2 * 3600, [llm("l", W47 + 7200, status="error")]),
    trace("a3", "T1", W47 + 3 * 3600, [retrieval(W47 + 10800),
                                       llm("l", W47 + 10800, uses=["doc1"]),
                                       outcome(W47 + 10800, 30.0)]),
    trace("b1", "T2", W47 + DAY, [retrieval(W47 + DAY), llm("d", W47 + DAY, name="draft"),
                                  {**llm("l", W47 + DAY + 2, uses=["doc1"])},
                                  outcome(W47 + DAY + 3)]),
    trace("c1", "T3", W47 + 2 * DAY, [llm("l", W47 + 2 * DAY)]),
    trace("z1", "T0", W46 + DAY, [llm("l", W46 + DAY), outcome(W46 + DAY)]),
]


@pytest.fixture
def loaded(client: TestClient) -> TestClient:
    r = client.post("/api/v1/traces", json=TRACES)
    assert r.status_code == 200, r.text
    assert client.get("/api/v1/traces/a1").json()["cost_usd"] == pytest.approx(0.01)
    # analysis stores the findings and, in the same transaction, the per-trace summaries
    r = client.post("/api/v1/analyze", json={})
    assert r.status_code == 200 and r.json()["traces_analyzed"] == len(TRACES), r.text
    r = client.put("/api/v1/workflows/support",
                   json={"baseline_cost_per_outcome_usd": 0.05, "outcome_value_usd": 10.0})
    assert r.status_code == 200, r.text
    return client


def week(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/api/v1/attribution", params={"since": W47, "until": W47 + 7 * DAY,
                                                   **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_task_with_two_failed_attempts_and_a_late_outcome(loaded: TestClient) -> None:
    (g,) = week(loaded)["groups"]
    # Before T3's outcome: 5 attempts, $0.06, successes T1 (on a3) and T2.
    assert g["key"] == {"workflow": "support"}
    assert (g["attempts"], g["tasks"], g["successes"]) == (5, 3, 2)
    assert g["spend_usd"] == pytest.approx(0.06) and g["tokens"] == 15000
    assert g["cost_per_outcome_usd"] == pytest.approx(0.03)
    r = loaded.post("/api/v1/outcomes", json={"task_id": "T3", "status": "success",
                                               "value_usd": 50.0})
    assert r.status_code == 200, r.text
    (g,) = week(loaded)["groups"]  # no re-analysis: the summaries were refreshed
    assert g["outcomes"] == {"success": 3}
    assert g["cost_per_outcome_usd"] == pytest.approx(0.02)
    assert g["cost_per_token_usd"] == pytest.approx(0.06 / 15000)
    assert g["tokens_per_attempt"] == pytest.approx(3000)
    assert g["attempts_per_outcome"] == pytest.approx(5 / 3)
    assert math.isclose(g["cost_per_token_usd"] * g["tokens_per_attempt"]
                        * g["attempts_per_outcome"], g["cost_per_outcome_usd"], rel_tol=1e-12)
    # first attempts decided: a1 (failed; T1 succeeded later), b1, c1 -> p = 2/3
    assert g["first_attempt_success_rate"] == pytest.approx(2 / 3)
    assert g["mean_attempt_cost_usd"] == pytest.approx(0.012)
    assert g["retry_tail_usd"] == pytest.approx(0.018)
    # value: a3's $30 + T2 the workflow's $10 + T3's $50, over $0.06
    assert g["value_usd"] == pytest.approx(90.0) and g["value_per_dollar"] == pytest.approx(1500)
    assert g["baseline_cost_per_outcome_usd"] == 0.05
    assert g["vs_baseline_usd"] == pytest.approx(-0.03)
    assert g["waste_usd"]["churn"] == pytest.approx(0.01)
    assert g["waste_by_code"] == {"churn.dead_end": pytest.approx(0.01)}
    assert g["productive_usd"] == pytest.approx(0.05)
    assert g["unpriced_calls"] == 0 and g["unpriced_share"] == 0.0


def test_lmdi_split_against_the_previous_week(loaded: TestClient) -> None:
    loaded.post("/api/v1/outcomes", json=[{"task_id": "T3", "status": "success"}])
    (g,) = week(loaded, compare="previous")["groups"]
    ch = g["change"]
    # W46: $0.01, 2,500 tokens, 1 attempt, 1 success -> $0.01; W47 -> $0.02
    assert ch["before_usd"] == pytest.approx(0.01) and ch["after_usd"] == pytest.approx(0.02)
    L = 0.01 / math.log(2)
    assert ch["parts"]["cost_per_token"] == pytest.approx(0.0, abs=1e-15)
    assert ch["parts"]["tokens_per_attempt"] == pytest.approx(L * math.log(3000 / 2500))
    assert ch["parts"]["attempts_per_outcome"] == pytest.approx(L * math.log(5 / 3))
    assert sum(ch["parts"].values()) == pytest.approx(ch["change_usd"], rel=1e-12)
    assert ch["dominant"] == "attempts_per_outcome"
    rows = loaded.get("/api/v1/attribution", params={
        "since": W46, "until": W47 + 7 * DAY, "period": "week", "compare": "previous"}).json()
    by_week = {r["key"]["week"]: r for r in rows["groups"]}
    assert set(by_week) == {"2026-W46", "2026-W47"}
    assert by_week["2026-W47"]["change"]["change_usd"] == pytest.approx(0.01)
    assert by_week["2026-W46"]["change"] is None


def test_group_by_dimensions(loaded: TestClient) -> None:
    rows = week(loaded, group_by="team,model")["groups"]
    assert [r["key"] for r in rows] == [{"team": "care", "model": "gpt-4o"}]
    rows = loaded.get("/api/v1/attribution", params={"group_by": "week"}).json()["groups"]
    assert {r["key"]["week"]: r["attempts"] for r in rows} == {"2026-W47": 5, "2026-W46": 1}


def test_wasteful_paths(loaded: TestClient) -> None:
    loaded.post("/api/v1/outcomes", json={"task_id": "T3", "status": "success"})
    r = loaded.get("/api/v1/paths", params={"workflow": "support", "since": W47,
                                            "until": W47 + 7 * DAY})
    assert r.status_code == 200, r.text
    paths = r.json()["paths"]
    assert [p["signature"] for p in paths] == [
        "retrieval:kb_search > llm:answer[frontier]", "llm:answer[frontier]"]
    rag, bare = paths
    assert (rag["traces"], rag["successes"], rag["success_rate"]) == (2, 2, 1.0)
    assert rag["cost_per_outcome_usd"] == pytest.approx(0.015)
    assert rag["waste_usd"] == pytest.approx(0.01)
    assert rag["top_codes"] == {"churn.dead_end": pytest.approx(0.01)}
    assert rag["example_trace_ids"] == ["b1", "a3"]
    assert (bare["traces"], bare["successes"]) == (3, 1)
    assert bare["example_trace_ids"] == ["c1", "a2", "a1"]  # no waste: the most recent first
    assert bare["success_rate"] == pytest.approx(1 / 3)
    assert bare["mean_cost_usd"] == pytest.approx(0.01)
    assert bare["cost_per_outcome_usd"] == pytest.approx(0.03)
    by_cpo = loaded.get("/api/v1/paths", params={"workflow": "support", "since": W47,
                                                 "order": "cost_per_outcome"}).json()["paths"]
    assert [p["signature"] for p in by_cpo] == ["llm:answer[frontier]",
                                                "retrieval:kb_search > llm:answer[frontier]"]
    # path -> trace -> its detail (the analyst's drill-down by ids)
    assert loaded.get(f"/api/v1/traces/{rag['example_trace_ids'][0]}").status_code == 200


def test_workflow_settings_round_trip(client: TestClient) -> None:
    assert client.get("/api/v1/workflows/support").status_code == 404
    r = client.put("/api/v1/workflows/support", json={"baseline_cost_per_outcome_usd": 4.5,
                                                      "description": "BPO price per ticket"})
    assert r.status_code == 200, r.text
    assert client.get("/api/v1/workflows/support").json() == {
        "name": "support", "baseline_cost_per_outcome_usd": 4.5, "outcome_value_usd": None,
        "description": "BPO price per ticket"}


def test_compare_previous_without_a_window_compares_the_last_complete_week(
        client: TestClient) -> None:
    r = client.get("/api/v1/attribution", params={"compare": "previous"})
    assert r.status_code == 200, r.text
    body = r.json()
    since = datetime.fromisoformat(body["since"])
    assert since.weekday() == 0 and since.hour == 0  # a Monday, 00:00 UTC
    assert (datetime.fromisoformat(body["until"]) - since).days == 7
    r = client.get("/api/v1/attribution", params={"compare": "previous",
                                                  "since": "2026-11-16T00:00:00Z"})
    assert r.json()["until"] == "2026-11-23T00:00:00.000Z"


@pytest.mark.parametrize(("method", "path", "kw", "status"), [
    ("get", "/api/v1/attribution", {"params": {"group_by": "workflow,colour"}}, 422),
    ("get", "/api/v1/attribution", {"params": {"compare": "last"}}, 422),
    ("get", "/api/v1/attribution", {"params": {"compare": "2026-W60"}}, 422),
    ("get", "/api/v1/attribution", {"params": {"since": "yesterday"}}, 422),
    ("get", "/api/v1/paths", {"params": {"order": "fun"}}, 422),
    ("put", "/api/v1/workflows/w", {"json": {"baseline_cost_per_outcome_usd": -1}}, 422),
    ("put", "/api/v1/workflows/w", {"json": {"baseline": 1}}, 422),
])
def test_bad_input_is_a_problem_document(client: TestClient, method: str, path: str,
                                         kw: dict[str, Any], status: int) -> None:
    r = getattr(client, method)(path, **kw)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_cli_outcomes_import_and_reports(loaded: TestClient, tmp_path: Any) -> None:
    import orjson
    from click.testing import CliRunner

    from tracestore.cli.main import cli

    url = loaded.app.state.settings.database_url  # type: ignore[attr-defined]
    f = tmp_path / "outcomes.jsonl"
    f.write_bytes(b'{"task_id": "T3", "status": "success", "value_usd": 50}\n'
                  b'{"task_id": "T9", "status": "maybe"}\n')
    runner = CliRunner()
    r = runner.invoke(cli, ["outcomes", "import", str(f), "--database-url", url])
    assert r.exit_code == 1 and "1 outcomes; rejected 1" in r.output
    r = runner.invoke(cli, ["report", "attribution", "--week", "2026-W47", "--json",
                            "--database-url", url])
    assert r.exit_code == 0, r.output
    (g,) = orjson.loads(r.output)["groups"]
    assert g["outcomes"] == {"success": 3} and g["cost_per_outcome_usd"] == pytest.approx(0.02)
    # Tables take the terminal's width (COLUMNS when piped): wide, a signature is one line;
    # at 80 columns every line fits and the signature wraps.
    r = runner.invoke(cli, ["report", "paths", "--week", "2026-W47", "--database-url", url],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "retrieval:kb_search > llm:answer[frontier]" in r.output and "b1 a3" in r.output
    r = runner.invoke(cli, ["report", "paths", "--week", "2026-W47", "--database-url", url],
                      env={"COLUMNS": "80"})
    assert r.exit_code == 0 and max(len(line) for line in r.output.splitlines()) <= 80
    assert "b1" in r.output and "a3" in r.output  # every column kept, folded not cut
    r = runner.invoke(cli, ["report", "attribution", "--since", "2026-11-16", "--compare",
                            "previous", "--database-url", url])
    assert r.exit_code != 0  # compare=previous needs an until


def test_the_analysis_runtime_writes_summaries(client: TestClient) -> None:
    assert client.post("/api/v1/traces", json=TRACES).status_code == 200
    assert client.get("/api/v1/attribution").json()["groups"] == []  # nothing analysed yet
    r = client.post("/api/v1/analyze")
    assert r.status_code == 200, r.text
    (g,) = client.get("/api/v1/attribution").json()["groups"]
    assert (g["attempts"], g["tasks"], g["successes"]) == (6, 4, 3)
    assert g["spend_usd"] == pytest.approx(0.07)
    assert g["productive_usd"] + sum(g["waste_usd"].values()) == pytest.approx(0.07)


def test_sql_path_grouping_matches_the_pure_reference(loaded: TestClient) -> None:
    """economics.wasteful_paths groups in SQL; analyzers.paths.group_paths is the reference."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from analyzers.paths import TracePath, group_paths
    from tracestore.reports.economics import wasteful_paths
    from tracestore.store.tables import TraceSummary

    loaded.post("/api/v1/outcomes", json={"task_id": "T3", "status": "failure"})
    settings = loaded.app.state.settings  # type: ignore[attr-defined]
    engine = make_engine(settings.database_url)
    try:
        pid = project_id_for(engine, settings.project)
        with Session(engine) as s:
            rows = s.execute(select(TraceSummary).where(TraceSummary.project_id == pid)
                             ).scalars().all()
            expected = group_paths(TracePath(
                r.trace_id, r.path_signature or "", r.cost_usd, r.waste_by_code or {},
                r.outcome_here and r.outcome_status == "success", r.outcome_status is not None,
                r.workflow, r.started_at) for r in rows)
            got = wasteful_paths(s, project_id=pid)
    finally:
        engine.dispose()
    def key(g: Any) -> tuple[Any, ...]:
        return (g.workflow, g.signature)

    assert len(got) == len(expected) == 2
    for a, b in zip(sorted(got, key=key), sorted(expected, key=key), strict=True):
        assert (a.traces, a.successes, a.decided, a.example_trace_ids) == (
            b.traces, b.successes, b.decided, b.example_trace_ids)
        assert a.cost_usd == pytest.approx(b.cost_usd) and a.waste_usd == pytest.approx(b.waste_usd)
        assert dict(a.top_codes) == pytest.approx(dict(b.top_codes))
