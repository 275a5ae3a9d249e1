"""The small named traces in ``fixtures/traces/``: valid, 5–50 nodes with fixed ids, stored
exactly through the real API, and the clean ones yield no findings."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from analyzers.run import analyze_trace
from fixtures.findings import load
from tracestore.schemas import TraceIn

DIR = Path(__file__).resolve().parents[2] / "fixtures" / "traces"
NAMES = sorted(p.stem for p in DIR.glob("*.json"))
CLEAN = [n for n in NAMES if n.startswith("clean_")]


def _traces(name: str) -> list[dict[str, Any]]:
    doc = json.loads((DIR / f"{name}.json").read_text())
    return doc if isinstance(doc, list) else [doc]


def test_the_named_fixtures_exist() -> None:
    assert {"clean_support_triage", "clean_claims_processing", "clean_code_review",
            "retried_task"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_fixture_is_valid_small_and_fixed(name: str) -> None:
    for t in _traces(name):
        parsed = TraceIn.model_validate(t)
        assert 5 <= len(parsed.nodes) <= 50
        ids = [n.node_id for n in parsed.nodes]
        assert len(set(ids)) == len(ids)
        assert all(n.start is not None and n.end is not None for n in parsed.nodes)
        known = set(ids)
        assert all(n.parent_id in known for n in parsed.nodes if n.parent_id)
        assert all(e.src in known and e.dst in known for e in parsed.edges)


def test_fixtures_round_trip_through_the_api(client: TestClient) -> None:
    for name in NAMES:
        r = client.post("/api/v1/traces", json=_traces(name))
        assert r.status_code == 200, r.text
    for name in NAMES:
        for t in _traces(name):
            got = client.get(f"/api/v1/traces/{t['trace_id']}").json()
            assert got["node_count"] == len(t["nodes"])
            assert [n["node_id"] for n in got["nodes"]] == [n["node_id"] for n in t["nodes"]]
            assert got["unpriced_count"] == 0 and got["cost_usd"] > 0
    page = client.get("/api/v1/traces", params={"task_id": "TICKET-1002"}).json()
    assert len(page["items"]) == 2
    detail = client.get("/api/v1/traces/e1e1e1e1e1e1e1e1e1e1e1e1e1e1e102").json()
    assert [(o["task_id"], o["status"]) for o in detail["outcomes"]] == [("TICKET-1002",
                                                                          "success")]


@pytest.mark.parametrize("name", CLEAN)
def test_clean_fixture_yields_no_findings(name: str) -> None:
    for t in _traces(name):
        assert analyze_trace(load.trace_graph(t), baseline=None, config=load.config()) == []


def test_the_clean_check_is_live() -> None:
    """Repeat the support fixture's order lookup verbatim: now churn finds it."""
    t = copy.deepcopy(_traces("clean_support_triage")[0])
    nodes = t["nodes"]
    draft, tool = nodes[5], nodes[6]
    again, dup = copy.deepcopy(draft), copy.deepcopy(tool)
    again["node_id"], dup["node_id"] = "rep0000000000001", "rep0000000000002"
    again["start"], again["end"] = "2026-11-16T09:00:02.080Z", "2026-11-16T09:00:02.090Z"
    dup["start"], dup["end"] = "2026-11-16T09:00:02.095Z", "2026-11-16T09:00:02.100Z"
    dup["tool_call_id"] = "call_rep"
    nodes[7:7] = [again, dup]
    t["edges"].append({"src": again["node_id"], "dst": dup["node_id"], "kind": "tool_call"})
    codes = {f.code for f in analyze_trace(load.trace_graph(t), baseline=None,
                                           config=load.config())}
    assert "churn.exact_repeat" in codes
