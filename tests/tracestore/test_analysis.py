"""The analysis runtime end to end, on every backend: ingest → analyse (API, background
worker, CLI) → findings over REST. Expected findings come from running the pure analyzers
directly on graphs loaded one trace at a time (``queries.load_trace_rows``), an independent
path from the runtime's batched loader."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracestore.analysis import Window, default_suite
from tracestore.analysis.prices import corpus_models, price_table, with_price_table
from tracestore.analysis.run import compute_corpus_baselines
from tracestore.api import create_app
from tracestore.cli.main import cli
from tracestore.config import Settings
from tracestore.schemas import to_epoch
from tracestore.store.engine import make_engine
from tracestore.store.graph import build_trace_graph
from tracestore.store.read import load_trace_rows
from tracestore.store.tables import FindingRow, Trace

DAY0 = to_epoch("2026-11-16T09:00:00Z")
N_TRACES = 12


def _llm(nid: str, t: float, parent: str = "root", model: str = "gpt-4o",
         name: str = "plan") -> dict[str, Any]:
    return {"node_id": nid, "parent_id": parent, "kind": "llm", "name": name,
            "provider": "openai", "model": model, "input_tokens": 1200, "output_tokens": 150,
            "start": t, "end": t + 1}


def _tool(nid: str, t: float, q: str, parent: str = "root") -> dict[str, Any]:
    return {"node_id": nid, "parent_id": parent, "kind": "tool", "name": "search_kb",
            "tool_name": "search_kb", "args": {"q": q}, "result": f"3 articles about {q}",
            "start": t + 1, "end": t + 1.5}


def make_trace(i: int) -> dict[str, Any]:
    """Trace i: every third one is clean; the others repeat one tool call 2 + i % 3 times."""
    t0 = DAY0 + i * 3600
    wf = "support_triage" if i % 2 == 0 else "billing"
    nodes: list[dict[str, Any]] = [{"node_id": "root", "kind": "agent", "name": wf,
                                    "start": t0, "end": t0 + 60}]
    repeats = 1 if i % 3 == 0 else 2 + i % 3
    for k in range(repeats):
        t = t0 + 1 + 5 * k
        nodes.append(_llm(f"l{k}", t))
        nodes.append(_tool(f"k{k}", t, "refund policy"))
    nodes.append(_llm("answer", t0 + 40, name="answer"))
    return {"trace_id": f"tr{i:03d}", "workflow": wf, "nodes": nodes,
            "outcome": {"status": "success", "type": "ticket_resolved"}}


def ingest_all(client: TestClient) -> None:
    r = client.post("/api/v1/traces", json=[make_trace(i) for i in range(N_TRACES)])
    assert r.status_code == 200, r.text
    assert r.json()["accepted_traces"] == N_TRACES


def expected_findings(url: str) -> dict[str, dict[str, Any]]:
    """Findings of the pure analyzers on every stored trace, loaded trace by trace."""
    suite = default_suite()
    engine = make_engine(url)
    graphs = []
    with Session(engine) as s:
        for tid in s.execute(select(Trace.trace_id).order_by(Trace.trace_id)).scalars():
            graphs.append(build_trace_graph(*load_trace_rows(s, project_id=1, trace_id=tid)))
    engine.dispose()
    samples = [x for G in graphs for x in suite.collect_samples(G)]
    baselines = suite.compute_baselines(samples)
    models = {m for G in graphs for m in corpus_models(G)}
    newest = max(G.graph["started_at"] for G in graphs)
    config = with_price_table(suite.config, price_table(models, book=None, ts=newest))
    suite = dataclasses.replace(suite, config=config)
    out = {}
    for G in graphs:
        for f in suite.analyze(G, baselines):
            out[f.id] = {"trace_id": f.trace_id, "code": f.code, "node_ids": list(f.node_ids),
                         "wasted_cost_usd": pytest.approx(f.wasted_cost_usd, rel=1e-9),
                         "wasted_tokens": f.wasted_tokens, "message": f.message}
    return out


def all_findings(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        q = {**params, "limit": 3, **({"cursor": cursor} if cursor else {})}
        r = client.get("/api/v1/findings", params=q)
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _key(f: dict[str, Any]) -> tuple[Any, ...]:
    return (f["id"], f["trace_id"], f["code"], tuple(f["node_ids"]), f["wasted_tokens"],
            f["wasted_cost_usd"], f["savings_usd"], f["confidence"], f["message"])


def test_analyze_then_list_findings_with_every_filter(client: TestClient, db_url: str) -> None:
    ingest_all(client)
    r = client.post("/api/v1/analyze")
    assert r.status_code == 200, r.text
    counts = r.json()
    expected = expected_findings(db_url)
    assert counts["traces_analyzed"] == N_TRACES
    assert counts["findings"] == len(expected) > 0
    got = all_findings(client)
    assert {f["id"]: {k: f[k] for k in ("trace_id", "code", "node_ids", "wasted_cost_usd",
                                       "wasted_tokens", "message")} for f in got} == expected
    assert counts["wasted_cost_usd"] == pytest.approx(sum(f["wasted_cost_usd"] for f in got))
    # default order: largest waste first, ties by id; pages neither skip nor repeat
    assert [(-f["wasted_cost_usd"], f["id"]) for f in got] == sorted(
        (-f["wasted_cost_usd"], f["id"]) for f in got)
    assert len({f["id"] for f in got}) == len(got)
    # every trace with repeats has a churn finding; clean ones have none
    flagged = {f["trace_id"] for f in got if f["analyzer"] == "churn"}
    assert flagged == {f"tr{i:03d}" for i in range(N_TRACES) if i % 3}

    def ids(**params: Any) -> set[str]:
        return {f["id"] for f in all_findings(client, **params)}

    assert ids(trace_id="tr001") == {f["id"] for f in got if f["trace_id"] == "tr001"} != set()
    assert ids(workflow="billing") == {f["id"] for f in got if f["workflow"] == "billing"}
    assert ids(analyzer="churn") == {f["id"] for f in got if f["analyzer"] == "churn"}
    code = got[0]["code"]
    assert ids(code=code) == {f["id"] for f in got if f["code"] == code}
    cut = sorted(f["wasted_cost_usd"] for f in got)[len(got) // 2]
    assert ids(min_cost=cut) == {f["id"] for f in got if f["wasted_cost_usd"] >= cut}
    since, until = "2026-11-16T12:00:00.000Z", "2026-11-16T16:00:00.000Z"
    assert ids(since=since, until=until) == {
        f["id"] for f in got if since <= f["trace_started_at"] < until}
    created = all_findings(client, order="created")
    assert sorted(map(_key, created)) == sorted(map(_key, got))
    # the trace detail shows the same FindingPublic objects
    detail = client.get("/api/v1/traces/tr001").json()["findings"]
    assert detail == [f for f in got if f["trace_id"] == "tr001"]
    assert client.get("/api/v1/traces/tr001").json()["analyzed_at"] is not None


def test_runs_price_counterfactuals_with_the_price_book(client: TestClient, db_url: str) -> None:
    ingest_all(client)
    engine = make_engine(db_url)
    baselines, suite = compute_corpus_baselines(engine, project_id=1, window=Window(),
                                                suite=default_suite())
    engine.dispose()
    assert set(baselines) == {"support_triage", "billing"}
    table = suite.config.price_table
    # genai-prices' OpenAI list prices (USD per million tokens) for the corpus' gpt-4o and
    # for gpt-4o-mini, the cheaper model routing prices the counterfactual on
    assert table["gpt-4o"] == {"input_mtok": 2.5, "output_mtok": 10.0,
                               "cache_read_mtok": 1.25, "cache_write_mtok": 2.5}
    assert table["gpt-4o-mini"]["input_mtok"] == 0.15
    # a contracted price in the project's book wins over the list price
    r = client.put("/api/v1/prices", json={"overrides": [
        {"model_pattern": "gpt-4o-mini*", "input_mtok": 0.1, "output_mtok": 0.4,
         "basis": "contracted"}]})
    assert r.status_code == 200, r.text
    engine = make_engine(db_url)
    _, suite = compute_corpus_baselines(engine, project_id=1, window=Window(),
                                        suite=default_suite())
    engine.dispose()
    mini = suite.config.price_table["gpt-4o-mini"]
    assert (mini["input_mtok"], mini["output_mtok"]) == (0.1, 0.4)
    assert suite.config.price_table["gpt-4o"]["input_mtok"] == 2.5


def test_analyze_window_and_workflow_limit_the_traces(client: TestClient) -> None:
    ingest_all(client)
    r = client.post("/api/v1/analyze", json={"since": "2026-11-16T11:00:00Z",
                                             "until": "2026-11-16T15:00:00Z"})
    assert r.json()["traces_analyzed"] == 4  # tr002..tr005 started in that window
    r = client.post("/api/v1/analyze", params={"workflow": "billing"})
    assert r.json()["traces_analyzed"] == N_TRACES // 2
    analysed = {t["trace_id"] for t in client.get("/api/v1/traces", params={"limit": 100})
                .json()["items"] if t["analyzed_at"]}
    assert analysed == {f"tr{i:03d}" for i in range(N_TRACES) if i % 2 or 2 <= i <= 5}


def test_reanalysis_replaces_findings_and_is_deterministic(
    client: TestClient, db_url: str
) -> None:
    ingest_all(client)
    client.post("/api/v1/analyze")
    first = sorted(map(_key, all_findings(client)))
    client.post("/api/v1/analyze")
    assert sorted(map(_key, all_findings(client))) == first
    engine = make_engine(db_url)
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(FindingRow)).scalar() == len(first)
    # tr001 is re-sent with distinct queries: its repeat findings must disappear
    fixed = make_trace(1)
    for n in fixed["nodes"]:
        if n["kind"] == "tool":
            n["args"] = {"q": n["node_id"]}
            n["result"] = f"about {n['node_id']}"
    client.post("/api/v1/traces", json=fixed)
    client.post("/api/v1/analyze")
    after = all_findings(client, trace_id="tr001")
    assert not [f for f in after if f["code"] in ("churn.exact_repeat", "churn.tight_loop")]
    engine.dispose()


def test_background_worker_analyses_a_settled_trace(db_url: str) -> None:
    settings = Settings(database_url=db_url, settle_seconds=0.2)
    with TestClient(create_app(settings)) as client:
        client.post("/api/v1/traces", json=make_trace(1))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            t = client.get("/api/v1/traces/tr001").json()
            if t["analyzed_at"] is not None:
                break
            time.sleep(0.1)
        assert t["analyzed_at"] is not None, "the background worker never analysed tr001"
        assert {f["code"] for f in t["findings"]} & {"churn.exact_repeat", "churn.tight_loop"}
        worker = client.app.state.analysis_worker  # type: ignore[attr-defined]
    assert not worker.is_alive()  # stopped with the app


def test_worker_is_off_when_settle_seconds_is_zero(client: TestClient) -> None:
    assert client.app.state.analysis_worker is None  # type: ignore[attr-defined]


def test_cli_analyze_with_two_workers_matches_the_api(
    client: TestClient, db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the CLI comparison runs on SQLite")
    ingest_all(client)
    client.post("/api/v1/analyze")
    api = sorted(map(_key, all_findings(client)))
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        s.execute(FindingRow.__table__.delete())  # type: ignore[attr-defined]
    engine.dispose()
    assert all_findings(client) == []
    r = CliRunner().invoke(cli, ["analyze", "--workers", "2", "--database-url", db_url])
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"analysed {N_TRACES} traces")
    assert f"{len(api)} findings" in r.output
    assert sorted(map(_key, all_findings(client))) == api


def test_cli_rejects_a_reversed_window(db_url: str) -> None:
    r = CliRunner().invoke(cli, ["analyze", "--since", "2026-11-17", "--until", "2026-11-16",
                                 "--database-url", db_url])
    assert r.exit_code == 2 and "must be before" in r.output


BAD_REQUESTS: list[tuple[str, str, dict[str, str], dict[str, Any] | None, int]] = [
    ("GET", "/api/v1/findings", {"min_cost": "-1"}, None, 422),
    ("GET", "/api/v1/findings", {"analyzer": "speed"}, None, 422),
    ("GET", "/api/v1/findings", {"code": "DROP TABLE"}, None, 422),
    ("GET", "/api/v1/findings", {"order": "cost"}, None, 422),
    ("GET", "/api/v1/findings", {"limit": "0"}, None, 422),
    ("GET", "/api/v1/findings", {"since": "yesterday"}, None, 422),
    ("GET", "/api/v1/findings", {"cursor": "!!!"}, None, 400),
    ("POST", "/api/v1/analyze", {}, {"since": "not a time"}, 422),
    ("POST", "/api/v1/analyze", {}, {"window": "week"}, 422),
]


def test_a_reversed_api_window_is_empty(client: TestClient) -> None:
    # The CLI refuses it (above); over HTTP every schema-valid request is answered
    # (tests/test_schemathesis.py), and [since, until) with since >= until holds nothing.
    window = {"since": "2026-11-17", "until": "2026-11-16"}
    r = client.get("/api/v1/findings", params=window)
    assert r.status_code == 200 and r.json()["items"] == [], r.text
    r = client.post("/api/v1/analyze", params=window)
    assert r.status_code == 200 and r.json()["traces_analyzed"] == 0, r.text


def test_bad_filters_are_problem_json(client: TestClient) -> None:
    for method, path, params, body, status in BAD_REQUESTS:
        r = client.request(method, path, params=params, json=body)
        assert r.status_code == status, (params, body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == status and r.json()["detail"]


def test_post_analysis_steps_reuse_the_graphs_just_analysed(client: TestClient,
                                                             db_url: str) -> None:
    from tracestore.store.load import iter_trace_graphs, preloaded

    ingest_all(client)
    engine = make_engine(db_url)
    with Session(engine) as s:
        first = list(iter_trace_graphs(s, project_id=1, trace_ids=["tr001", "tr002"]))
        with preloaded(1, first):
            again = list(iter_trace_graphs(s, project_id=1, trace_ids=["tr002", "tr001"]))
            assert [lt.trace_id for lt in again] == ["tr002", "tr001"]
            assert again[1] is first[0]  # served from memory, not re-read
            other = list(iter_trace_graphs(s, project_id=1, trace_ids=["tr001", "tr003"]))
            assert other[0] is not first[0]  # not all preloaded: read from the store
        fresh = list(iter_trace_graphs(s, project_id=1, trace_ids=["tr001"]))
    engine.dispose()
    assert fresh[0] is not first[0]
    assert dict(fresh[0].graph.nodes(data=True)) == dict(first[0].graph.nodes(data=True))
