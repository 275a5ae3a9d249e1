"""Reads of one trace's nodes (the trace detail behind ``GET /api/v1/traces/{id}`` and the trace
page, and the findings' wasted seconds behind ``GET /findings`` and the findings page) go
through the nodes' primary key on SQLite, never through ``ix_nodes_project_start``: walking
that index visits every node of the project (0.65 s a trace page and 2.8 s a findings page at
1M nodes; bench/RESULTS.md). SQLite plans without statistics, so a small store shows the plan
a large one gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from tracestore.api import create_app
from tracestore.config import Settings
from tracestore.schemas import FindingPublic
from tracestore.store.engine import make_engine
from tracestore.store.read import add_wasted_seconds, get_trace


def _finding(trace_id: str) -> FindingPublic:
    return FindingPublic(id="f1", trace_id=trace_id, workflow="w", analyzer="churn",
                         code="churn.exact_repeat", node_ids=["b", "c"], wasted_tokens=10,
                         wasted_cost_usd=0.01, savings_usd=0.01, confidence=1.0, evidence={},
                         message="m", trace_started_at=None, created_at=None)


def test_one_traces_nodes_are_read_by_the_primary_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    nodes = [{"node_id": "a", "kind": "agent", "name": "run", "start": "2026-11-17T10:00:00Z",
              "end": "2026-11-17T10:00:09Z"}]
    nodes += [{"node_id": nid, "parent_id": "a", "kind": "llm", "name": "call",
               "model": "gpt-4o", "provider": "openai", "input_tokens": 100,
               "output_tokens": 10, "start": f"2026-11-17T10:00:0{i}Z",
               "end": f"2026-11-17T10:00:0{i + 1}Z"} for i, nid in enumerate("bcd", 1)]
    with TestClient(create_app(Settings(database_url=url, settle_seconds=0))) as c:
        for tid in ("t1", "t2"):
            r = c.post("/api/v1/traces", json={"trace_id": tid, "workflow": "w",
                                               "nodes": nodes})
            assert r.status_code == 200, r.text
    engine = make_engine(url)
    seen: list[tuple[str, Any]] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, stmt, params, _ctx, _many: seen.append((stmt, params)))
    try:
        with Session(engine) as s:
            detail = get_trace(s, project_id=1, trace_id="t1")
            assert [n.node_id for n in detail.nodes] == ["a", "b", "c", "d"]  # by start
            f = _finding("t1")
            add_wasted_seconds(s, project_id=1, findings=[f])
            assert f.wasted_seconds == 2.0  # b and c ran a second each
            reads = [(st, p) for st, p in seen if "FROM nodes" in st]
            assert len(reads) == 2
            for stmt, params in reads:
                plan = " ".join(str(r[-1]) for r in s.connection().exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + stmt, params))
                assert "ix_nodes_project_start" not in plan, (stmt, plan)
                assert "sqlite_autoindex_nodes_1 (project_id=? AND trace_id=?)" in plan, plan
    finally:
        engine.dispose()
