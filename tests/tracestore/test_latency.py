"""GET /api/v1/latency on both backends: percentiles checked against numpy by hand."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tracestore.api import create_app
from tracestore.config import Settings

T0 = 1794787200  # 2026-11-16T00:00:00Z


def test_latency_per_workflow_step_and_model(db_url: str) -> None:
    traces = []
    for i, secs in enumerate((1.0, 2.0, 3.0, 4.0, 10.0)):
        start = T0 + 100 * i
        traces.append({"trace_id": f"t{i}", "workflow": "w", "nodes": [
            {"node_id": "root", "kind": "agent", "name": "run", "start": start,
             "end": start + secs},
            {"node_id": "l", "parent_id": "root", "kind": "llm", "name": "draft",
             "provider": "openai", "model": "gpt-4o", "start": start, "end": start + secs / 2},
            {"node_id": "x", "parent_id": "root", "kind": "tool", "name": "search",
             "start": start}]})  # no end: not measured
    with TestClient(create_app(Settings(database_url=db_url, settle_seconds=0))) as c:
        assert c.post("/api/v1/traces", json=traces).status_code == 200
        wf = c.get("/api/v1/latency", params={"since": T0, "until": T0 + 86400}).json()
        step = c.get("/api/v1/latency", params={"group_by": "step"}).json()
        model = c.get("/api/v1/latency", params={"group_by": "model"}).json()
        assert c.get("/api/v1/latency", params={"group_by": "team"}).status_code == 422
    (g,) = wf["groups"]
    # numpy's linear percentiles of 1, 2, 3, 4, 10: p50 = 3, p95 = 4 + 0.8 * 6 = 8.8
    assert (g["key"], g["count"], g["p50_s"], g["p95_s"], g["total_s"]) == (
        {"workflow": "w"}, 5, 3.0, 8.8, 20.0)
    by_step = {g["key"]["step"]: g for g in step["groups"]}
    assert by_step["draft"]["p50_s"] == 1.5 and by_step["run"]["p95_s"] == 8.8
    assert "search" not in by_step and step["without_times"] == 5
    assert step["groups"][0]["key"]["step"] == "run"  # slowest p95 first
    (m,) = model["groups"]
    assert m["key"] == {"provider": "openai", "model": "gpt-4o"} and m["p95_s"] == 4.4
