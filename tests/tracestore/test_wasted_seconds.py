"""Time spent in waste: each finding's ``wasted_seconds`` (its nodes' summed durations) beside
its dollars, in GET /findings and in the trace detail, on both backends."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tracestore.api import create_app
from tracestore.config import Settings

T0 = 1794787200  # 2026-11-16T00:00:00Z


def test_findings_carry_the_seconds_their_nodes_ran(db_url: str) -> None:
    nodes = [{"node_id": f"s{i}", "kind": "tool", "name": "search", "tool_name": "search",
              "args": {"q": "same"}, "result": "same", "start": T0 + 10 * i,
              "end": T0 + 10 * i + 1.5 + i} for i in range(4)]  # 1.5, 2.5, 3.5, 4.5 s
    with TestClient(create_app(Settings(database_url=db_url, settle_seconds=0))) as c:
        assert c.post("/api/v1/traces", json={"trace_id": "t", "workflow": "w",
                                              "nodes": nodes}).status_code == 200
        assert c.post("/api/v1/analyze", json={}).status_code == 200
        listed = c.get("/api/v1/findings").json()["items"]
        detail = c.get("/api/v1/traces/t").json()["findings"]
    assert listed, "repeated identical calls must give a finding"
    duration = {n["node_id"]: n["end"] - n["start"] for n in nodes}
    for f in listed:
        assert f["wasted_seconds"] == sum(duration[n] for n in f["node_ids"] if n in duration)
    assert {f["id"]: f["wasted_seconds"] for f in detail} == {
        f["id"]: f["wasted_seconds"] for f in listed}
