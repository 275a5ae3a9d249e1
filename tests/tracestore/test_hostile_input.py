"""Hostile and absurd input never yields a 500, and physically absurd values are refused with a
422 naming the field and its bound (docs/limits.md), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, update

from tracestore.schemas import MAX_COST_USD, MAX_TOKENS
from tracestore.store.tables import SUMMARY_T

START = "2026-11-16T09:00:00Z"


def node(i: int = 1, **kw: Any) -> dict[str, Any]:
    return {"node_id": f"n{i}", "kind": "llm", "provider": "openai", "model": "gpt-4o",
            "input_tokens": 10, "output_tokens": 5, "start": START,
            "end": "2026-11-16T09:00:01Z", **kw}


def deep(n: int) -> Any:
    """``n`` levels of objects and arrays, alternating."""
    v: Any = 1
    for i in range(n):
        v = {"a": v} if i % 2 else [v]
    return v


def one_error(r: Any) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    errors = r.json()["errors"]
    assert len(errors) >= 1
    return errors[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("field", "value", "bound"), [
    ("input_tokens", MAX_TOKENS + 1, str(MAX_TOKENS)),
    ("output_tokens", 10**12, str(MAX_TOKENS)),
    ("reasoning_tokens", -1, "0"),
    ("reported_cost_usd", 1e308, "100000"),
    ("reported_cost_usd", MAX_COST_USD * 2, "100000"),
    ("outcome_value_usd", 1.7e308, "1000000000000"),
    ("start", "5138-01-01T00:00:00Z", "the years 2000 to 2099"),
    ("start", "2100-01-03T00:00:00Z", "the years 2000 to 2099"),
    ("start", "1999-12-30T00:00:00Z", "the years 2000 to 2099"),
    ("start", "0001-01-01T00:00:00+14:00", "1970-01-01 to 9999-12-31"),
    ("end", "1e400", "1970-01-01 to 9999-12-31"),
    ("end", 1e20, "the years 2000 to 2099"),  # read as ns: the year 5138
])
def test_absurd_node_values_are_a_422_naming_field_and_bound(
        client: TestClient, field: str, value: Any, bound: str) -> None:
    r = client.post("/api/v1/traces", json=[
        {"trace_id": "good", "nodes": [node()]},
        {"trace_id": "bad", "nodes": [node(**{field: value})]}])
    err = one_error(r)
    assert err["item"] == 1 and err["loc"][-1] == field, err
    assert bound in err["msg"], err
    assert r.json()["accepted_traces"] == 1  # the valid item is stored all the same
    assert client.get("/api/v1/traces/good").status_code == 200
    assert client.get("/api/v1/traces/bad").status_code == 404


@pytest.mark.parametrize("value", [True, False, 1.5, "7"])
def test_a_count_must_be_an_integer_not_a_boolean(client: TestClient, value: Any) -> None:
    err = one_error(client.post("/api/v1/traces", json={
        "trace_id": "t", "nodes": [node(input_tokens=value)]}))
    assert err["loc"] == ["nodes", 0, "input_tokens"] and "integer" in err["msg"], err


def test_negative_durations_and_duplicate_node_ids_are_refused(client: TestClient) -> None:
    err = one_error(client.post("/api/v1/traces", json={"trace_id": "t", "nodes": [
        node(start="2026-11-16T09:00:05Z", end="2026-11-16T09:00:00Z")]}))
    assert err["loc"] == ["nodes", 0] and "before start" in err["msg"], err
    err = one_error(client.post("/api/v1/traces", json={"trace_id": "t", "nodes": [
        node(1), node(2), node(1, model="other")]}))
    assert err["loc"] == ["nodes"] and "'n1' appears twice" in err["msg"], err
    assert "nodes 0 and 2" in err["msg"]
    assert client.get("/api/v1/traces/t").status_code == 404


def test_outcome_values_are_bounded(client: TestClient) -> None:
    r = client.post("/api/v1/outcomes", json=[
        {"task_id": "a", "status": "success", "value_usd": 1.7e308},
        {"task_id": "b", "status": "success", "value_usd": 12.5}])
    err = one_error(r)
    assert err["loc"] == ["value_usd"] and "1000000000000" in err["msg"], err
    assert r.json()["accepted"] == 1


def test_trace_ids_with_a_slash_are_refused(client: TestClient) -> None:
    err = one_error(client.post("/api/v1/traces", json={"trace_id": "a/b", "nodes": [node()]}))
    assert err["loc"] == ["trace_id"], err


@pytest.mark.parametrize("where", ["args", "result", "attributes", "metadata"])
@pytest.mark.parametrize("depth", [255, 400, 600])
def test_deep_json_is_a_422_for_its_item_only(client: TestClient, where: str,
                                              depth: int) -> None:
    bad: dict[str, Any] = {"trace_id": "deep", "nodes": [node(kind="tool", tool_name="t")]}
    if where == "metadata":
        bad["metadata"] = {"x": deep(depth)}
    else:
        bad["nodes"][0][where] = {"x": deep(depth)} if where == "attributes" else deep(depth)
    r = client.post("/api/v1/traces", json=[{"trace_id": "ok", "nodes": [node()]}, bad])
    err = one_error(r)
    assert err["item"] == 1 and "nested deeper than 254" in err["msg"], err
    assert r.json()["accepted_traces"] == 1
    assert client.get("/api/v1/traces/ok").status_code == 200


def test_a_stored_value_at_the_depth_limit_is_served(client: TestClient) -> None:
    value = deep(250)  # item → nodes → node → attributes → x: 254 levels in all
    r = client.post("/api/v1/traces", json={"trace_id": "d", "nodes": [
        node(kind="tool", tool_name="t", attributes={"x": value}, args=deep(251))]})
    assert r.status_code == 200, r.text
    got = client.get("/api/v1/traces/d")
    assert got.status_code == 200 and got.json()["nodes"][0]["attributes"]["x"] == value
    assert client.get("/api/v1/traces/d/graph").status_code == 200


@pytest.mark.parametrize("path", [
    "/api/v1/traces?workflow=a%00b", "/api/v1/traces/a%00b", "/api/v1/traces/a%00b/graph",
    "/api/v1/workflows/a%00b", "/api/v1/findings?trace_id=a%00", "/api/v1/paths?workflow=%00",
    "/api/v1/attribution?team=%00", "/api/v1/prices/unpriced?since=%00",
    "/api/v1/digest/weekly?week=2026-W47%00", "/api/v1/traces?a%00=1",
])
def test_nul_in_a_parameter_is_a_422(client: TestClient, path: str) -> None:
    err = one_error(client.get(path))
    assert err["loc"][0] in ("path", "query") and "NUL" in err["msg"], err


def test_nul_in_a_request_body_is_a_422(client: TestClient) -> None:
    for method, path, body in [
        ("PUT", "/api/v1/workflows/w", {"description": "a\x00b"}),
        ("POST", "/api/v1/keys", {"scopes": ["read"], "name": "k\x00"}),
        ("PUT", "/api/v1/prices", {"overrides": [{"node_kind": "llm", "model_pattern": "m\x00",
                                                  "input_mtok": 1, "output_mtok": 1}]}),
        ("POST", "/api/v1/analyze", {"workflow": "w\x00"}),
    ]:
        r = client.request(method, path, json=body)
        assert r.status_code == 422 and "NUL" in r.json()["detail"], (path, r.text)
    assert client.get("/api/v1/keys").json() == []


@pytest.mark.parametrize("query", [
    "week=9999-W52", "week=0001-W01", "week=1999-W01", "week=2026-W99", "week=x",
])
def test_weeks_out_of_range_are_a_422(client: TestClient, query: str) -> None:
    r = client.get(f"/api/v1/digest/weekly?{query}")
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("values", [[2**63, "x"], [2**64 - 1, "x"], [1.0, "a\x00"],
                                    [True, "x"]])
def test_cursors_that_no_column_can_hold_are_a_400(client: TestClient,
                                                   values: list[Any]) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode()
    for path in ("/api/v1/traces", "/api/v1/findings"):
        r = client.get(path, params={"cursor": cursor})
        assert r.status_code == 400 and "cursor" in r.json()["detail"], (path, r.text)


def test_every_get_route_refuses_an_unknown_query_parameter(client: TestClient) -> None:
    doc = client.app.openapi()  # type: ignore[attr-defined]
    gets = [p for p, ops in doc["paths"].items() if "get" in ops]
    assert len(gets) >= 12
    for path in gets:
        url = path.replace("{trace_id}", "t").replace("{name}", "w")
        r = client.get(url, params={"grup_by": "team"})
        assert r.status_code == 422, (path, r.text)
        assert r.json()["errors"][0]["loc"] == ["query", "grup_by"], (path, r.text)
    # declared parameters still pass
    assert client.get("/api/v1/traces", params={"workflow": "w", "limit": 5}).status_code == 200
    r = client.get("/api/v1/traces?min_cost=5")
    assert "min_cost" in r.json()["detail"] and "workflow" in r.json()["detail"]


def test_sums_of_stored_absurd_values_stay_finite(client: TestClient,
                                                  settings: Any) -> None:
    """Values stored before the ingest bounds existed (written here straight into the
    summaries) must not overflow a sum (PostgreSQL: 'value out of range') nor reach a report
    as inf."""
    for i in (1, 2):
        r = client.post("/api/v1/traces", json={"trace_id": f"t{i}", "workflow": "w",
                                                "task_id": f"k{i}", "nodes": [node()]})
        assert r.status_code == 200, r.text
        r = client.post("/api/v1/outcomes", json={"task_id": f"k{i}", "status": "success",
                                                  "value_usd": 10})
        assert r.status_code == 200, r.text
    assert client.post("/api/v1/analyze", json={}).status_code == 200
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        n = conn.execute(update(SUMMARY_T).values(outcome_value_usd=1.7e308, cost_usd=1.7e308,
                                                  waste_usd=1.7e308)).rowcount
    engine.dispose()
    assert n == 2
    r = client.get("/api/v1/attribution")
    assert r.status_code == 200, r.text
    group = r.json()["groups"][0]
    assert group["spend_usd"] == 2e15  # each summand clamped to USD_CAP
    for fmt in ("json", "md", "html"):
        r = client.get(f"/api/v1/digest/weekly?week=2026-W47&format={fmt}")
        assert r.status_code == 200, r.text
        assert not any(bad in r.text.lower() for bad in ("inf", "nan")), fmt
    assert client.get("/api/v1/paths").status_code == 200


def _span(span_id: str, **attrs: Any) -> dict[str, Any]:
    return {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": "chat",
            "startTimeUnixNano": "1794819600000000000", "endTimeUnixNano": "1794819601000000000",
            "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                           *({"key": k, "value": v} for k, v in attrs.items())]}


def _export(client: TestClient, *spans: dict[str, Any]) -> Any:
    body = {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}
    return client.post("/v1/traces", json=body)


@pytest.mark.parametrize(("value", "reason"), [
    ({"intValue": "1e5"}, "intValue '1e5' is not an integer"),
    ({"stringValue": "a\x00b"}, "must not contain NUL"),
    ({"stringValue": "x" * ((1 << 20) + 1)}, "exceeds the limit of 1048576"),
])
def test_otlp_span_with_a_bad_value_is_rejected_and_the_others_kept(
        client: TestClient, value: dict[str, Any], reason: str) -> None:
    r = _export(client, _span("eee19b7ec3c1b174", **{"gen_ai.usage.input_tokens": value}),
                _span("eee19b7ec3c1b175", **{"gen_ai.usage.input_tokens": {"intValue": 7}}))
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and reason in partial["errorMessage"], partial
    nodes = client.get("/api/v1/traces/5b8efff798038103d269b633813fc60c").json()["nodes"]
    assert [(n["node_id"], n["input_tokens"]) for n in nodes] == [("eee19b7ec3c1b175", 7)]


def test_otlp_protobuf_span_with_nul_is_rejected(client: TestClient) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add()
    for i, name in enumerate(["ok", "bad\x00name"]):
        s = spans.spans.add(trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60d"),
                            span_id=bytes([1] * 7 + [i + 1]), name=name,
                            start_time_unix_nano=1794819600 * 10**9,
                            end_time_unix_nano=1794819601 * 10**9)
        s.attributes.add(key="k", value={"string_value": "v"})
    r = client.post("/v1/traces", content=req.SerializeToString(),
                    headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 200, r.content
    nodes = client.get("/api/v1/traces/5b8efff798038103d269b633813fc60d").json()["nodes"]
    assert [n["name"] for n in nodes] == ["ok"]


def test_empty_otlp_json_body_is_a_400(client: TestClient) -> None:
    r = client.post("/v1/traces", content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "empty" in r.json()["detail"], r.text
    r = client.post("/v1/traces", content=b"", headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 200  # an empty protobuf message is a valid, empty export


def test_405_lists_every_method_of_the_path(client: TestClient) -> None:
    for method, path, allow in [("PATCH", "/api/v1/traces", "GET, POST"),
                                ("OPTIONS", "/api/v1/prices", "GET, PUT"),
                                ("PATCH", "/api/v1/keys", "GET, POST"),
                                ("PUT", "/healthz", "GET")]:
        r = client.request(method, path)
        assert r.status_code == 405 and r.headers["allow"] == allow, (path, r.headers)
