"""Input limits, redaction at ingest and admission control, through the real app on every
backend."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from tracestore.api import create_app
from tracestore.config import Settings
from tracestore.ingest.write import content_hash
from tracestore.schemas import MAX_TOKENS
from tracestore.store.engine import create_schema, make_engine

SECRET_KEY = "sk-proj-" + "Q" * 40
CARD = "4111-1111-1111-1111"  # Visa's published test number; passes Luhn
EMAIL = "jane.doe@example.com"


def _trace(trace_id: str, **node_extra: Any) -> dict[str, Any]:
    return {"trace_id": trace_id, "nodes": [{"node_id": "n1", "kind": "tool", "name": "lookup",
                                             "start": 1_763_283_600, **node_extra}]}


@pytest.fixture
def small(db_url: str) -> Iterator[TestClient]:
    s = Settings(database_url=db_url, settle_seconds=0, max_body_bytes=20_000,
                 max_nodes_per_trace=3, max_attributes=4, max_string_chars=1_000)
    with TestClient(create_app(s)) as c:
        yield c


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


def test_body_over_the_limit_is_413_before_and_after_decompression(small: TestClient) -> None:
    big = b'{"trace_id": "t", "nodes": [], "metadata": {"x": "' + b"a" * 30_000 + b'"}}'
    body = _problem(small.post("/api/v1/traces", content=big,
                               headers={"content-type": "application/json"}), 413)
    assert body["limit_bytes"] == 20_000 and "20000" in body["detail"]
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")  # ~5 KB on the wire, 5 MB inflated
    assert len(bomb) < 20_000
    body = _problem(small.post("/api/v1/traces", content=bomb,
                               headers={"content-type": "application/json",
                                        "content-encoding": "gzip"}), 413)
    assert "decompressed" in body["detail"] and body["limit_bytes"] == 20_000


def test_nodes_attributes_and_strings_over_their_limits_are_422_naming_the_setting(
    small: TestClient,
) -> None:
    many_nodes = {"trace_id": "many", "nodes": [
        {"node_id": f"n{i}", "kind": "tool"} for i in range(4)]}
    many_attrs = _trace("attrs", attributes={f"k{i}": i for i in range(5)})
    long_str = _trace("long", attributes={"blob": "x" * 1_001})
    ok = _trace("ok", attributes={"a": 1})
    r = small.post("/api/v1/traces", json=[many_nodes, many_attrs, long_str, ok])
    body = _problem(r, 422)
    assert body["accepted_traces"] == 1 and body["rejected_traces"] == 3
    by_item = {e["item"]: e for e in body["errors"]}
    assert "max_nodes_per_trace" in by_item[0]["msg"]
    assert by_item[1]["loc"] == ["nodes", 0, "attributes"]
    assert "5 keys" in by_item[1]["msg"] and "max_attributes" in by_item[1]["msg"]
    assert by_item[2]["loc"] == ["nodes", 0, "attributes", "blob"]
    assert "1001 characters" in by_item[2]["msg"] and "max_string_chars" in by_item[2]["msg"]
    assert small.get("/api/v1/traces/ok").status_code == 200
    assert small.get("/api/v1/traces/attrs").status_code == 404
    r = small.post("/api/v1/outcomes", json={"task_id": "t", "status": "success",
                                              "type": "y" * 2_000})
    assert "max_string_chars" in _problem(r, 422)["errors"][0]["msg"]


def test_default_redaction_removes_keys_and_cards_but_keeps_emails(client: TestClient) -> None:
    prompt = f"use {SECRET_KEY} to call the API for {EMAIL}"
    t = _trace("red", prompt=prompt, args={"card": CARD, "note": f"Bearer {'z' * 30}"},
               result=f"charged {CARD}", attributes={"user.email": EMAIL, "k": SECRET_KEY})
    t["metadata"] = {"api_key": SECRET_KEY}
    assert client.post("/api/v1/traces", json=t).status_code == 200
    r = client.get("/api/v1/traces/red")
    text = r.text
    assert SECRET_KEY not in text and CARD not in text and "z" * 30 not in text
    assert EMAIL in text  # emails are off by default (README, "Redaction")
    node = r.json()["nodes"][0]
    assert node["prompt"] == f"use [REDACTED:api_key] to call the API for {EMAIL}"
    assert node["prompt_hash"] == content_hash(node["prompt"])  # the hash of what was kept
    assert node["args"] == {"card": "[REDACTED:card_number]", "note": "[REDACTED:api_key]"}
    assert node["attributes"]["k"] == "[REDACTED:api_key]"


def test_configured_redaction_adds_emails_and_custom_patterns(db_url: str) -> None:
    s = Settings(database_url=db_url, settle_seconds=0, redact="emails",
                 redact_patterns=[r"TICKET-\d+"])
    with TestClient(create_app(s)) as c:
        t = _trace("cfg", prompt=f"{EMAIL} asks about TICKET-4711 with {SECRET_KEY}")
        assert c.post("/api/v1/traces", json=t).status_code == 200
        node = c.get("/api/v1/traces/cfg").json()["nodes"][0]
    assert node["prompt"] == f"[REDACTED:email] asks about [REDACTED:pattern] with {SECRET_KEY}"


def test_full_write_queue_answers_503_with_retry_after_and_stores_nothing(
    client: TestClient,
) -> None:
    admission = client.app.state.admission  # type: ignore[attr-defined]
    admission.max_requests = 1
    held = admission.enter(10)  # another ingest request is in flight
    try:
        r = client.post("/api/v1/traces", json=_trace("busy"))
        body = _problem(r, 503)
        assert r.headers["retry-after"] == "1" and "write queue full" in body["detail"]
        assert client.get("/api/v1/traces").status_code == 200  # reads are not admitted
    finally:
        admission.leave(held)
    assert client.get("/api/v1/traces/busy").status_code == 404
    assert client.post("/api/v1/traces", json=_trace("busy")).status_code == 200
    assert admission.in_flight == (0, 0)


def test_nul_characters_are_422_on_every_backend(client: TestClient) -> None:
    # PostgreSQL cannot store U+0000 in text; found by test_fuzz_ingest on PostgreSQL.
    r = client.post("/api/v1/traces", json=[_trace("nul", prompt="a\x00b"), _trace("fine")])
    body = _problem(r, 422)
    assert body["errors"][0]["loc"] == ["nodes", 0, "prompt"]
    assert "NUL" in body["errors"][0]["msg"] and body["accepted_traces"] == 1
    assert client.get("/api/v1/traces/fine").status_code == 200


def test_token_counts_up_to_the_schema_limit_are_stored_on_every_backend(
        client: TestClient) -> None:
    # A call may report up to MAX_TOKENS (10**8) tokens; 25 such calls sum past 2**31 - 1,
    # where PostgreSQL's INTEGER stopped ("integer out of range") while SQLite stored it.
    big = MAX_TOKENS
    r = client.post("/api/v1/traces", json=[{"trace_id": "huge", "nodes": [
        *({"node_id": f"n{i}", "kind": "llm", "name": "chat", "start": 1_763_283_600 + i,
           "model": "gpt-4o-mini", "input_tokens": big, "output_tokens": big,
           "cache_read_tokens": big, "reasoning_tokens": big} for i in range(1, 26)),
        {"node_id": "r", "kind": "retrieval", "name": "search", "start": 1_763_283_601,
         "top_k": big}]}])
    assert r.status_code == 200, r.text
    body = client.get("/api/v1/traces/huge").json()
    nodes = {n["node_id"]: n for n in body["nodes"]}
    assert nodes["n1"]["input_tokens"] == big and nodes["n1"]["output_tokens"] == big
    assert nodes["n1"]["cache_read_tokens"] == big and nodes["n1"]["reasoning_tokens"] == big
    assert nodes["r"]["top_k"] == big
    assert body["input_tokens"] == 25 * big > 2**31 and body["output_tokens"] == 25 * big


def test_schema_start_widens_a_postgresql_store_made_with_32_bit_token_columns(
        db_url: str) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("widening is PostgreSQL-only: SQLite's INTEGER is 64-bit")
    engine = make_engine(db_url)
    try:
        create_schema(engine)
        with engine.begin() as conn:  # the column as earlier versions created it
            conn.execute(text("ALTER TABLE nodes ALTER COLUMN input_tokens TYPE INTEGER"))
            conn.execute(text("ALTER TABLE findings ALTER COLUMN wasted_tokens TYPE INTEGER"))
        create_schema(engine)
        types = {(t, c["name"]): str(c["type"]) for t in ("nodes", "findings")
                 for c in inspect(engine).get_columns(t)}
        assert types["nodes", "input_tokens"] == "BIGINT"
        assert types["findings", "wasted_tokens"] == "BIGINT"
        assert types["nodes", "kind"] != "BIGINT"  # only the declared BIGINT columns change
    finally:
        engine.dispose()
