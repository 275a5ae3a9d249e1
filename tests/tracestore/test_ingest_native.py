"""Native ingest through the real app, on every backend."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tracestore.api import create_app
from tracestore.config import Settings
from tracestore.pricing.pricer import GENAI_PRICES_SOURCE


def _trace(trace_id: str = "t1", **extra: Any) -> dict[str, Any]:
    return {
        "trace_id": trace_id,
        "workflow": "support_triage",
        "team": "support",
        "nodes": [
            {"node_id": "root", "kind": "agent", "name": "triage",
             "start": "2026-11-16T09:00:00Z", "end": "2026-11-16T09:00:05Z"},
            {"node_id": "l1", "parent_id": "root", "kind": "llm", "name": "classify",
             "provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 500,
             "start": "2026-11-16T09:00:01Z", "end": "2026-11-16T09:00:02Z"},
            {"node_id": "k1", "parent_id": "root", "kind": "tool", "name": "search_kb",
             "tool_name": "search_kb", "args": {"q": "refund", "k": 3}, "status": "error",
             "error_type": "timeout", "start": "2026-11-16T09:00:03Z"},
        ],
        **extra,
    }


def test_single_trace_is_stored_with_exact_rollups(client: TestClient) -> None:
    r = client.post("/api/v1/traces", json=_trace())
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted_traces": 1, "accepted_nodes": 3, "rejected_traces": 0,
                        "errors": []}
    t = client.get("/api/v1/traces/t1").json()
    assert t["node_count"] == 3
    assert t["llm_calls"] == 1
    assert (t["input_tokens"], t["output_tokens"]) == (1000, 500)
    # gpt-4o list price in the bundled genai-prices data: $2.50 in / $10 out per MTok.
    assert t["cost_usd"] == pytest.approx(0.0075)
    assert t["error_count"] == 1
    assert t["started_at"] == "2026-11-16T09:00:00.000Z"
    assert t["ended_at"] == "2026-11-16T09:00:05.000Z"
    assert t["duration_ms"] == 5000.0
    assert t["task_id"] == "t1"  # defaults to the trace id
    llm = next(n for n in t["nodes"] if n["node_id"] == "l1")
    assert llm["priced"] is True and llm["price_source"] == GENAI_PRICES_SOURCE
    tool = next(n for n in t["nodes"] if n["node_id"] == "k1")
    assert tool["args"] == {"q": "refund", "k": 3}
    assert tool["args_hash"] and len(tool["args_hash"]) == 32


def test_same_node_twice_is_stored_once_and_a_changed_node_replaces(client: TestClient) -> None:
    client.post("/api/v1/traces", json=_trace())
    client.post("/api/v1/traces", json=_trace())
    t = client.get("/api/v1/traces/t1").json()
    assert t["node_count"] == 3
    changed = {"trace_id": "t1", "nodes": [
        {"node_id": "l1", "parent_id": "root", "kind": "llm", "provider": "openai",
         "model": "gpt-4o", "input_tokens": 2000, "output_tokens": 500,
         "start": "2026-11-16T09:00:01Z"}]}
    assert client.post("/api/v1/traces", json=changed).status_code == 200
    t = client.get("/api/v1/traces/t1").json()
    assert t["node_count"] == 3
    assert t["input_tokens"] == 2000
    assert t["cost_usd"] == pytest.approx(0.01)
    # The later part omitted workflow/team: the stored values are kept.
    assert (t["workflow"], t["team"]) == ("support_triage", "support")


def test_parts_in_any_order_merge_children_before_parents(client: TestClient) -> None:
    whole = _trace()
    nodes = whole.pop("nodes")
    for node in reversed(nodes):  # children first, root last
        r = client.post("/api/v1/traces", json={"trace_id": "t1", "nodes": [node]})
        assert r.status_code == 200
    client.post("/api/v1/traces", json={**whole, "nodes": []})
    t = client.get("/api/v1/traces/t1").json()
    assert t["node_count"] == 3
    assert t["workflow"] == "support_triage"
    assert t["started_at"] == "2026-11-16T09:00:00.000Z"
    g = client.get("/api/v1/traces/t1/graph").json()
    parent_links = {(e["source"], e["target"]) for e in g["links"] if "parent" in e["kinds"]}
    assert parent_links == {("root", "l1"), ("root", "k1")}


def test_workflow_defaults_to_root_name(client: TestClient) -> None:
    t = _trace()
    del t["workflow"]
    client.post("/api/v1/traces", json=t)
    assert client.get("/api/v1/traces/t1").json()["workflow"] == "triage"


def test_invalid_items_are_named_and_valid_ones_still_stored(client: TestClient) -> None:
    bad = {"trace_id": "bad", "nodes": [{"node_id": "x", "kind": "llm", "input_tokens": -1}]}
    r = client.post("/api/v1/traces", json=[_trace("good"), bad, "nope"])
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["accepted_traces"] == 1 and body["rejected_traces"] == 2
    assert body["errors"][0]["item"] == 1
    assert body["errors"][0]["trace_id"] == "bad"
    assert body["errors"][0]["loc"] == ["nodes", 0, "input_tokens"]
    assert body["errors"][1]["item"] == 2
    assert client.get("/api/v1/traces/good").status_code == 200
    assert client.get("/api/v1/traces/bad").status_code == 404


def test_gzip_body_and_unknown_field(client: TestClient) -> None:
    import orjson

    body = gzip.compress(orjson.dumps(_trace()))
    r = client.post("/api/v1/traces", content=body,
                    headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 200, r.text
    bad = _trace("t2")
    bad["nodes"][0]["input_token"] = 3  # a typo is named, not silently dropped
    r = client.post("/api/v1/traces", json=bad)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["nodes", 0, "input_token"]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {"content-type": "application/json"}, 400),
        (b"", {"content-type": "application/json"}, 400),
        (b"<xml/>", {"content-type": "application/xml"}, 415),
        (b"\x1f\x8b garbage", {"content-type": "application/json", "content-encoding": "gzip"},
         400),
    ],
)
def test_bad_bodies_get_problem_json(client: TestClient, body: bytes, headers: dict[str, str],
                                     status: int) -> None:
    r = client.post("/api/v1/traces", content=body, headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status and r.json()["detail"]


def test_gzip_bomb_is_413_without_inflating(db_url: str) -> None:
    from tracestore.api import create_app
    from tracestore.config import Settings

    app = create_app(Settings(database_url=db_url, max_body_bytes=100_000))
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]")
    with TestClient(app) as c:
        r = c.post("/api/v1/traces", content=bomb,
                   headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 413
    assert r.json()["limit_bytes"] == 100_000


def test_outcome_inside_trace_and_late_outcome_update(client: TestClient) -> None:
    t = _trace(task_id="TICKET-1", outcome={"status": "failure", "type": "ticket_resolved"})
    client.post("/api/v1/traces", json=t)
    d = client.get("/api/v1/traces/t1").json()
    assert [(o["task_id"], o["status"]) for o in d["outcomes"]] == [("TICKET-1", "failure")]
    r = client.post("/api/v1/outcomes", json={"task_id": "TICKET-1", "status": "success",
                                              "value_usd": 12.5})
    assert r.status_code == 200 and r.json() == {"accepted": 1}
    d = client.get("/api/v1/traces/t1").json()
    assert [(o["status"], o["value_usd"]) for o in d["outcomes"]] == [("success", 12.5)]


def _native_store(url: str, workers: int) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """POST a mixed body (good, bad, redacted, NDJSON) to an app with ``workers`` ingest
    worker processes; the answers and the stored node rows."""
    s = Settings(database_url=url, settle_seconds=0, ingest_workers=workers,
                 max_content_chars=20, redact="emails")
    secret = {"node_id": "p", "parent_id": "root", "kind": "llm", "name": "ask",
              "prompt": "mail me at ann@example.com about the refund policy please",
              "provider": "openai", "model": "gpt-4o", "input_tokens": 10}
    answers: list[Any] = []
    with TestClient(create_app(s)) as client:
        assert (client.app.state.otlp_pool is None) == (workers == 0)  # type: ignore[attr-defined]
        r = client.post("/api/v1/traces", json=[_trace("a"), {"trace_id": "b", "nodes": [
            {"node_id": "x", "kind": "nonsense"}]}, _trace("c", nodes=[secret])])
        answers.append((r.status_code, r.json()))
        nd = b"\n".join(orjson.dumps(_trace(t)) for t in ("d", "e"))
        r = client.post("/api/v1/traces", content=nd,
                        headers={"content-type": "application/x-ndjson"})
        answers.append((r.status_code, r.json()))
        r = client.post("/api/v1/traces", content=b"{nope",
                        headers={"content-type": "application/json"})
        answers.append((r.status_code, r.json()["detail"]))
    engine = create_engine(url)
    with engine.connect() as conn:
        nodes = [tuple(r) for r in conn.execute(text(
            "SELECT trace_id, node_id, prompt, prompt_hash, cost_usd, priced, price_source "
            "FROM nodes ORDER BY trace_id, node_id"))]
    engine.dispose()
    return answers, nodes


def test_worker_processes_prepare_native_bodies_as_the_request_thread_does(
        tmp_path: Path) -> None:
    pooled = _native_store(f"sqlite:///{tmp_path / 'pool.db'}", 2)
    local = _native_store(f"sqlite:///{tmp_path / 'local.db'}", 0)
    assert pooled == local
    answers, nodes = pooled
    status, body = answers[0]
    assert status == 422
    assert (body["accepted_traces"], body["accepted_nodes"], body["rejected_traces"]) == (2, 4, 1)
    assert {(e["item"], tuple(e["loc"])) for e in body["errors"]} == {(1, ("nodes", 0, "kind"))}
    assert answers[1] == (200, {"accepted_traces": 2, "accepted_nodes": 6,
                                "rejected_traces": 0, "errors": []})
    assert answers[2][0] == 400 and "not valid JSON" in answers[2][1]
    prompt = next(n for n in nodes if n[:2] == ("c", "p"))
    assert "ann@example.com" not in prompt[2] and len(prompt[2]) == 20  # redacted, capped
    priced = [n for n in nodes if n[5]]
    assert priced and all(n[4] > 0 and n[6] == GENAI_PRICES_SOURCE for n in priced)
    assert len(nodes) == 10  # a, d, e: 3 nodes each; c: p alone
