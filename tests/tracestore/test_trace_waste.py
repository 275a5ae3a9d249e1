"""``trace_waste``, the reports' one source of waste by code: after analysis it holds one row
per code of every wasteful summary (the summary's ``waste_by_code``, with its columns); a
rewritten summary replaces its rows (codes gone, waste gone); and the reports read it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from tracestore.demo.run import generate_demo_traces
from tracestore.reports.summaries import write_summaries
from tracestore.store.engine import make_engine, session_scope
from tracestore.store.tables import SUMMARY_T


def _waste(db_url: str) -> list[tuple[Any, ...]]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = sorted(tuple(r) for r in conn.execute(text(
            "SELECT trace_id, code, wasted_usd, workflow, path_signature, primary_model, week "
            "FROM trace_waste")))
    engine.dispose()
    return rows


def _from_summaries(db_url: str) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        summaries = [dict(r) for r in conn.execute(select(SUMMARY_T)).mappings()]
    engine.dispose()
    want = sorted((s["trace_id"], code, usd, s["workflow"], s["path_signature"],
                   s["primary_model"], s["week"])
                  for s in summaries if s["waste_usd"] > 0
                  for code, usd in s["waste_by_code"].items())
    return want, summaries


def test_waste_rows_follow_the_summaries(client: TestClient, db_url: str) -> None:
    data = generate_demo_traces(seed=5, n=80)
    assert client.post("/api/v1/traces", json=data.traces).status_code == 200
    assert client.post("/api/v1/analyze").status_code == 200
    want, summaries = _from_summaries(db_url)
    assert len(want) >= 10
    assert _waste(db_url) == want
    # the reports' waste by code is these rows
    codes = client.get("/api/v1/attribution", params={"since": "2000-01-01",
                                                      "group_by": "workflow"}).json()["groups"]
    by_code: dict[str, float] = {}
    for r in want:
        by_code[r[1]] = by_code.get(r[1], 0.0) + r[2]
    got: dict[str, float] = {}
    for g in codes:
        for code, usd in g["waste_by_code"].items():
            got[code] = got.get(code, 0.0) + usd
    assert got.keys() == by_code.keys()
    assert all(abs(got[c] - by_code[c]) < 1e-9 for c in got)

    # a rewritten summary replaces its rows: one trace loses a code, another all its waste
    wasteful = [s for s in summaries if s["waste_usd"] > 0]
    one, two = dict(wasteful[0]), dict(wasteful[1])
    one["waste_by_code"] = {"test.only": 0.25}
    two.update(waste_usd=0.0, waste_by_code={})
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        write_summaries(session, project_id=one["project_id"], rows=[one, two])
    engine.dispose()
    got_rows = _waste(db_url)
    assert [r for r in got_rows if r[0] == one["trace_id"]] == [
        (one["trace_id"], "test.only", 0.25, one["workflow"], one["path_signature"],
         one["primary_model"], one["week"])]
    assert [r for r in got_rows if r[0] == two["trace_id"]] == []
    assert _waste(db_url) == _from_summaries(db_url)[0]
