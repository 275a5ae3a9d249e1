"""The digest end to end on both backends: traces in through the real API, analysis, summaries,
then ``GET /api/v1/digest/weekly`` and ``tracestore digest``; the dollar figures are checked
against sums computed independently from the stored traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from analyzers.digest import week_bounds
from tracestore.cli.main import cli
from tracestore.config import Settings

W46, W47 = week_bounds("2026-W46")[2], week_bounds("2026-W47")[2]


def _trace(tid: str, wf: str, task: str, t0: float, tokens: int, *, ok: bool = True,
           model: str = "gpt-4o", team: str | None = "ops") -> dict[str, Any]:
    return {
        "trace_id": tid, "workflow": wf, "task_id": task, "team": team,
        "nodes": [
            {"node_id": "a", "kind": "agent", "name": wf, "start": t0, "end": t0 + 5},
            {"node_id": "l", "parent_id": "a", "kind": "llm", "name": "answer",
             "provider": "openai", "model": model, "input_tokens": tokens,
             "output_tokens": 200, "start": t0 + 1, "end": t0 + 4,
             "status": "ok" if ok else "error"},
        ],
    }


def _corpus() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """support: context doubles in W47; claims: one retry per task in W47."""
    traces, outcomes = [], []
    for week, start in (("46", W46), ("47", W47)):
        for i in range(6):
            t0 = start + 86400 * (i % 5) + 3600 * i
            task = f"S{week}-{i}"
            traces.append(_trace(f"s{week}{i:02d}", "support_triage", task, t0,
                                 2000 if week == "46" else 4000))
            outcomes.append({"task_id": task, "status": "success", "occurred_at": t0 + 60})
            task = f"C{week}-{i}"
            if week == "47":
                traces.append(_trace(f"c{week}{i:02d}r", "claims_processing", task, t0 + 10,
                                     1500, ok=False))
            traces.append(_trace(f"c{week}{i:02d}", "claims_processing", task, t0 + 20, 1500))
            outcomes.append({"task_id": task, "status": "success", "occurred_at": t0 + 90})
    return traces, outcomes


def _load(client: TestClient) -> None:
    traces, outcomes = _corpus()
    assert client.post("/api/v1/traces", json=traces).status_code == 200
    assert client.post("/api/v1/outcomes", json=outcomes).status_code == 200
    _analyse(client)


def _spend(client: TestClient, since: float, until: float, workflow: str | None = None
           ) -> tuple[float, int]:
    params: dict[str, Any] = {"since": since, "until": until, "limit": 500}
    if workflow:
        params["workflow"] = workflow
    items = client.get("/api/v1/traces", params=params).json()["items"]
    return sum(t["cost_usd"] for t in items), len(items)


def test_weekly_digest_names_levers_and_dollars(client: TestClient) -> None:
    _load(client)
    r = client.get("/api/v1/digest/weekly", params={"week": "2026-W47", "format": "json"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    d = r.json()
    spend, n = _spend(client, W47, W47 + 7 * 86400)
    prev, _ = _spend(client, W46, W47)
    assert n == 18 and d["headline"]["traces"] == 18
    assert d["headline"]["spend_usd"] == pytest.approx(spend, abs=1e-6)
    assert d["headline"]["change_usd"] == pytest.approx(spend - prev, abs=1e-6)
    assert sum(d["daily_spend_usd"]) == pytest.approx(spend, abs=1e-5)
    wf = {w["workflow"]: w for w in d["workflows"]}
    assert wf["support_triage"]["levers"]["dominant"] == "tokens_per_attempt"
    assert wf["claims_processing"]["levers"]["dominant"] == "attempts_per_outcome"
    for name in wf:
        now, _ = _spend(client, W47, W47 + 7 * 86400, name)
        before, _ = _spend(client, W46, W47, name)
        change = now / 6 - before / 6  # six successful outcomes per workflow per week
        assert wf[name]["change_usd"] == pytest.approx(change, abs=1e-5)
        parts = wf[name]["levers"]
        assert sum(parts[k] for k in ("cost_per_token", "tokens_per_attempt",
                                      "attempts_per_outcome")) == pytest.approx(change, abs=1e-5)
    assert wf["claims_processing"]["attempts_per_outcome"] == 2.0
    assert wf["support_triage"]["tokens_per_attempt"] == 4200.0  # 4000 in + 200 out
    assert d["maturity"]["rung"] in ("Unit-economic", "Optimized")


@pytest.mark.parametrize("params,status", [
    ({"week": "2026-W60"}, 422), ({"week": "yesterday"}, 422),
    ({"week": "2026-W47", "format": "pdf"}, 422),
])
def test_bad_queries_are_problems(client: TestClient, params: dict[str, str],
                                  status: int) -> None:
    r = client.get("/api/v1/digest/weekly", params=params)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")


def test_empty_project_week(client: TestClient) -> None:
    d = client.get("/api/v1/digest/weekly", params={"week": "2026-W47"}).json()
    assert d["headline"]["spend_usd"] == 0 and d["maturity"]["rung"] == "Blind"
    assert d["notes"] == ["No traces were recorded in 2026-W47."]
    assert d["daily_spend_usd"] == [0.0] * 7


def test_markdown_html_and_cli_formats(client: TestClient, settings: Settings,
                                       tmp_path: Path) -> None:
    _load(client)
    md = client.get("/api/v1/digest/weekly", params={"week": "2026-W47", "format": "md"})
    assert md.headers["content-type"].startswith("text/markdown")
    assert "mostly **tokens/attempt**" in md.text and "mostly **attempts/outcome**" in md.text
    page = client.get("/api/v1/digest/weekly", params={"week": "2026-W47", "format": "html"})
    assert page.headers["content-type"].startswith("text/html") and page.text.count("<svg") == 3
    runner = CliRunner()
    for fmt in ("md", "json", "html"):
        out = tmp_path / f"d.{fmt}"
        r = runner.invoke(cli, ["digest", "--week", "2026-W47", "--format", fmt, "--out",
                                str(out), "--database-url", settings.database_url])
        assert r.exit_code == 0, r.output
        assert out.stat().st_size > 500
    doc = orjson.loads((tmp_path / "d.json").read_bytes())
    api = client.get("/api/v1/digest/weekly", params={"week": "2026-W47"}).json()
    assert doc["headline"] == api["headline"] and doc["workflows"] == api["workflows"]
    r = runner.invoke(cli, ["digest", "--week", "2026-W99", "--database-url",
                            settings.database_url])
    assert r.exit_code == 1 and "2026-W99" in str(r.exception)


def _analyse(client: TestClient) -> None:
    """Analyse both weeks; the analysis runtime also writes the per-trace summaries."""
    r = client.post("/api/v1/analyze", json={"since": W46, "until": W47 + 7 * 86400})
    assert r.status_code == 200, r.text


def test_a_week_without_outcomes(client: TestClient) -> None:
    traces = [_trace(f"n{i}", "support_triage", f"N-{i}", W47 + 3600 * i, 1000)
              for i in range(3)]
    assert client.post("/api/v1/traces", json=traces).status_code == 200
    _analyse(client)
    d = client.get("/api/v1/digest/weekly", params={"week": "2026-W47"}).json()
    spend, _ = _spend(client, W47, W47 + 7 * 86400)
    assert spend > 0 and d["headline"]["spend_usd"] == pytest.approx(spend, abs=1e-6)
    assert d["headline"]["outcomes"] == 0 and d["headline"]["cost_per_outcome_usd"] is None
    (w,) = d["workflows"]
    assert w["cost_per_outcome_usd"] is None and w["levers"] is None
    assert "undefined" in w["note"]
    assert "No successful outcomes were recorded" in " ".join(d["notes"])
    assert d["maturity"]["rung"] == "Attributed"  # priced and tagged, but no outcomes


def test_a_week_of_only_unpriced_models(client: TestClient) -> None:
    traces = [_trace(f"u{i}", "support_triage", f"U-{i}", W47 + 3600 * i, 1000,
                     model="in-house-llm-7") for i in range(3)]
    assert client.post("/api/v1/traces", json=traces).status_code == 200
    outcomes = [{"task_id": f"U-{i}", "status": "success"} for i in range(3)]
    assert client.post("/api/v1/outcomes", json=outcomes).status_code == 200
    _analyse(client)
    d = client.get("/api/v1/digest/weekly", params={"week": "2026-W47"}).json()
    assert d["headline"]["spend_usd"] == 0 and d["headline"]["traces"] == 3
    assert d["coverage"]["unpriced_calls"] == 3 and d["coverage"]["unpriced_share"] == 1.0
    assert d["maturity"]["rung"] == "Blind"
    assert "3 of 3 model calls have no known price" in " ".join(d["notes"])
    md = client.get("/api/v1/digest/weekly", params={"week": "2026-W47", "format": "md"}).text
    assert "100% of model calls unpriced (3/3)" in md
