"""Deleting data (issue 20 item 8) on SQLite and PostgreSQL: ``DELETE /api/v1/traces/{id}``
(admin scope), ``tracestore prune --before``, and the ``retention_days`` setting remove traces
with their nodes, edges, findings, summaries and queue rows, and every report reflects it at
once."""

from __future__ import annotations

import time
from typing import Any

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text

from tracestore.analysis.background import AnalysisWorker
from tracestore.api import create_app
from tracestore.cli.main import cli
from tracestore.config import Settings
from tracestore.demo.run import generate_demo_traces
from tracestore.schemas import iso
from tracestore.store.engine import create_schema, make_engine

PER_TRACE = ("nodes", "edges", "findings", "trace_summaries", "trace_waste", "analysis_queue",
             "traces")


def _load(client: TestClient) -> list[dict[str, Any]]:
    data = generate_demo_traces(seed=3, n=90)
    assert client.post("/api/v1/traces", json=data.traces).status_code == 200
    assert client.post("/api/v1/outcomes", json=data.outcomes).status_code == 200
    assert client.post("/api/v1/analyze").status_code == 200
    return data.traces


def _rows(db_url: str, trace_ids: list[str] | None = None) -> dict[str, int]:
    engine = make_engine(db_url)
    out = {}
    with engine.connect() as conn:
        for table in PER_TRACE:
            where = ""
            params: dict[str, Any] = {}
            if trace_ids is not None:
                where = " WHERE trace_id IN (" + ", ".join(
                    f":t{i}" for i in range(len(trace_ids))) + ")"
                params = {f"t{i}": t for i, t in enumerate(trace_ids)}
            out[table] = conn.execute(text(f"SELECT count(*) FROM {table}{where}"),
                                      params).scalar_one()
    engine.dispose()
    return out


def _reports(client: TestClient) -> tuple[float, int, int, int]:
    """Spend and attempts (/attribution), traces on /paths, traces listed."""
    since = {"since": "2000-01-01"}
    groups = client.get("/api/v1/attribution", params=since).json()["groups"]
    paths = client.get("/api/v1/paths", params={**since, "limit": 1000}).json()["paths"]
    listed = client.get("/api/v1/traces", params={"limit": 1000}).json()["items"]
    return (sum(g["spend_usd"] for g in groups), sum(g["attempts"] for g in groups),
            sum(p["traces"] for p in paths), len(listed))


def test_delete_a_trace_and_every_report_reflects_it(client: TestClient, db_url: str) -> None:
    _load(client)
    victim = client.get("/api/v1/findings", params={"limit": 1}).json()["items"][0]["trace_id"]
    detail = client.get(f"/api/v1/traces/{victim}").json()
    assert _rows(db_url, [victim])["findings"] >= 1
    assert _rows(db_url, [victim])["trace_waste"] >= 1
    spend, attempts, on_paths, listed = _reports(client)

    r = client.delete(f"/api/v1/traces/{victim}")
    assert r.status_code == 204 and r.content == b""
    assert _rows(db_url, [victim]) == dict.fromkeys(PER_TRACE, 0)
    assert client.get(f"/api/v1/traces/{victim}").status_code == 404
    assert client.get("/api/v1/findings", params={"trace_id": victim}).json()["items"] == []
    spend2, attempts2, on_paths2, listed2 = _reports(client)
    assert (attempts2, on_paths2, listed2) == (attempts - 1, on_paths - 1, listed - 1)
    assert abs(spend - spend2 - detail["cost_usd"]) < 1e-9
    gone = client.delete(f"/api/v1/traces/{victim}")
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"
    assert victim in gone.json()["detail"]


def test_prune_cli_and_retention(client: TestClient, db_url: str) -> None:
    traces = _load(client)
    starts = sorted(min(n["start"] for n in t["nodes"] if n.get("start") is not None)
                    for t in traces)
    cutoff = starts[len(starts) // 3]
    total = _rows(db_url)
    result = CliRunner().invoke(cli, ["prune", "--before", str(iso(cutoff)), "--database-url",
                                      db_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    engine = make_engine(db_url)
    with engine.connect() as conn:
        early = conn.execute(text("SELECT count(*) FROM traces WHERE started_at < :c"),
                             {"c": cutoff}).scalar_one()
        orphans = {t: conn.execute(text(
            f"SELECT count(*) FROM {t} x WHERE NOT EXISTS (SELECT 1 FROM traces y WHERE "
            "y.project_id = x.project_id AND y.trace_id = x.trace_id)")).scalar_one()
            for t in PER_TRACE[:-1]}
    engine.dispose()
    after = _rows(db_url)
    removed = total["traces"] - after["traces"]
    assert early == 0 and removed == sum(1 for s in starts if s < cutoff) > 0
    assert f"deleted {removed} traces" in result.output
    assert orphans == dict.fromkeys(PER_TRACE[:-1], 0)
    assert after["trace_summaries"] == after["traces"]
    assert _reports(client)[1] == after["traces"]  # attempts on /attribution

    # retention: everything older than "now - retention_days" goes on the worker's next pass
    days = (time.time() - starts[-1] + 5) / 86_400  # the newest trace is just inside
    worker = AnalysisWorker(make_engine(db_url), settle_seconds=0, baseline_days=28,
                            retention_days=days)
    deleted = worker.maybe_prune(time.time())
    newest = sum(1 for s in starts if s >= starts[-1] - 5)
    assert deleted is not None and deleted.traces == after["traces"] - newest
    assert worker.maybe_prune(time.time()) is None  # at most hourly
    worker.engine.dispose()
    assert _rows(db_url)["traces"] == newest


def test_prune_needs_a_date_or_a_retention(db_url: str) -> None:
    r = CliRunner().invoke(cli, ["prune", "--database-url", db_url])
    assert r.exit_code == 2 and "TRACESTORE_RETENTION_DAYS" in r.output
    r = CliRunner().invoke(cli, ["prune", "--before", "last tuesday", "--database-url", db_url])
    assert r.exit_code == 2 and "--before" in r.output


def test_delete_needs_the_admin_scope(db_url: str) -> None:
    from tests.tracestore.test_auth import _bearer, _mint

    engine = make_engine(db_url)
    create_schema(engine)
    engine.dispose()
    read, admin = _mint(db_url, "p", "read"), _mint(db_url, "p", "admin")
    with TestClient(create_app(Settings(database_url=db_url, settle_seconds=0))) as c:
        body = {"trace_id": "t1", "nodes": [{"node_id": "n", "kind": "agent", "start": 1.79e9}]}
        assert c.post("/api/v1/traces", json=body, headers=_bearer(admin)).status_code == 200
        assert c.delete("/api/v1/traces/t1", headers=_bearer(read)).status_code == 403
        assert c.delete("/api/v1/traces/t1", headers=_bearer(admin)).status_code == 204
