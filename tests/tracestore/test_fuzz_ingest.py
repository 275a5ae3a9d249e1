"""Property tests: whatever bytes arrive at an ingest route, the answer is a 2xx with the data
stored or a 4xx problem — never a 500 and never an exception escaping the app (TestClient
re-raises those). Native JSON (``POST /api/v1/traces``) and OTLP (``POST /v1/traces``,
protobuf and JSON), through the real app."""

from __future__ import annotations

import gzip
from typing import Any
from urllib.parse import quote

import orjson
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
OK_OR_CLIENT_ERROR = {200, 400, 413, 415, 422}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats()
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=20,
)
node_like = st.fixed_dictionaries(
    {"node_id": st.text(max_size=8) | st.integers(-9, 2**40), "kind": st.sampled_from(
        ["llm", "tool", "agent", "nope", ""])},
    optional={"parent_id": st.text(max_size=4) | st.none(),
              "input_tokens": st.integers(-(2**63), 2**63 - 1) | st.text(max_size=3),
              "start": st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=12),
              "model": st.text(max_size=10), "args": json_values, "attributes": json_values,
              "documents": st.lists(st.dictionaries(st.sampled_from(["id", "score"]),
                                                    json_values), max_size=2)},
)
trace_like = st.fixed_dictionaries(
    {"trace_id": st.text(min_size=1, max_size=10) | st.integers(0, 2**40),
     "nodes": st.lists(node_like, max_size=4)},
    optional={"workflow": json_values, "tags": json_values, "edges": json_values,
              "outcome": json_values, "metadata": json_values},
)


def _check(r: Any) -> None:
    assert r.status_code in OK_OR_CLIENT_ERROR, (r.status_code, r.text[:500])
    if r.status_code >= 400 and r.headers["content-type"].startswith("application/"):
        assert "json" not in r.headers["content-type"] or "status" in r.json()


@FUZZ
@given(body=st.binary(max_size=300), encoding=st.sampled_from([None, "gzip", "deflate", "br"]))
def test_native_any_bytes_give_a_stored_result_or_a_4xx(client: TestClient, body: bytes,
                                                        encoding: str | None) -> None:
    headers = {"content-type": "application/json"}
    if encoding:
        headers["content-encoding"] = encoding
    _check(client.post("/api/v1/traces", content=body, headers=headers))


@FUZZ
@given(items=st.lists(trace_like, max_size=3) | trace_like | json_values, gz=st.booleans())
def test_native_arbitrary_json_shapes_are_stored_or_rejected_per_item(
    client: TestClient, items: Any, gz: bool
) -> None:
    body = orjson.dumps(items, option=orjson.OPT_NON_STR_KEYS)
    headers = {"content-type": "application/json"}
    if gz:
        body, headers["content-encoding"] = gzip.compress(body), "gzip"
    r = client.post("/api/v1/traces", content=body, headers=headers)
    _check(r)
    tid = items.get("trace_id") if isinstance(items, dict) else None
    if r.status_code == 200 and isinstance(tid, str) and tid.strip(".") and items.get("nodes"):
        stored = client.get(f"/api/v1/traces/{quote(tid, safe='')}")
        assert stored.status_code == 200  # a 2xx means it is there


def _valid_otlp() -> bytes:
    span = Span(trace_id=bytes(range(16)), span_id=bytes(range(8)), name="chat gpt-4o",
                start_time_unix_nano=1_763_283_600_000_000_000,
                end_time_unix_nano=1_763_283_601_000_000_000,
                attributes=[KeyValue(key="gen_ai.request.model",
                                     value=AnyValue(string_value="gpt-4o")),
                            KeyValue(key="gen_ai.usage.input_tokens",
                                     value=AnyValue(int_value=10))])
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        scope_spans=[ScopeSpans(spans=[span])])])
    return req.SerializeToString()


VALID_PB = _valid_otlp()


@FUZZ
@given(data=st.data(), ctype=st.sampled_from(["application/x-protobuf", "application/json"]))
def test_otlp_any_bytes_and_mutated_exports_give_a_stored_result_or_a_4xx(
    client: TestClient, data: st.DataObject, ctype: str
) -> None:
    if data.draw(st.booleans(), label="mutate a valid export"):
        body = bytearray(VALID_PB)
        for _ in range(data.draw(st.integers(1, 6))):
            i = data.draw(st.integers(0, len(body) - 1))
            body[i] = data.draw(st.integers(0, 255))
        body = body[: data.draw(st.integers(0, len(body)))]
        payload = bytes(body)
    else:
        payload = data.draw(st.binary(max_size=300))
    r = client.post("/v1/traces", content=payload, headers={"content-type": ctype})
    _check(r)


@FUZZ
@given(doc=json_values | st.fixed_dictionaries({"resourceSpans": st.lists(
    st.fixed_dictionaries({"scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(
        st.dictionaries(st.sampled_from(["traceId", "spanId", "parentSpanId", "name",
                                         "startTimeUnixNano", "attributes", "status",
                                         "kind", "links", "events"]), json_values),
        max_size=3)}), max_size=2)}), max_size=2)}))
def test_otlp_json_arbitrary_structures_give_a_stored_result_or_a_4xx(
    client: TestClient, doc: Any
) -> None:
    body = orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    _check(client.post("/v1/traces", content=body, headers={"content-type": "application/json"}))


def test_otlp_nul_characters_are_a_4xx_not_a_500(client: TestClient) -> None:
    # PostgreSQL cannot store U+0000 in text (found on PostgreSQL by the native fuzz test).
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708",
        "name": "x\u0000y", "startTimeUnixNano": "1763283600000000000",
        "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt\u00004o"}}],
    }]}]}]}
    r = client.post("/v1/traces", content=orjson.dumps(doc),
                    headers={"content-type": "application/json"})
    _check(r)
