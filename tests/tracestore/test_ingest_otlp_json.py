"""OTLP ingest with raw bodies: OTLP/JSON (hex of both cases, base64 ids, int64 strings),
merging across requests, partial success and the 400/413/415 answers, over real HTTP."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.tracestore.otlp_server import by_id, edges, get_trace, serve
from tracestore.config import Settings
from tracestore.ingest.write import content_hash

LIMIT = 256 * 1024  # max_body_bytes for these tests: small, so 413 is cheap to provoke
TRACE = "5B8EFFF798038103D269B633813FC60C"  # the spec example's upper-case hex
T0 = 1_794_819_600_000_000_000  # 2026-11-16T09:00:00Z in ns


@pytest.fixture
def base_url(db_url: str) -> Iterator[str]:
    with serve(Settings(database_url=db_url, settle_seconds=0, max_body_bytes=LIMIT)) as url:
        yield url


def _kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        v: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}  # int64 as a decimal string, as the spec says
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, list):
        v = {"arrayValue": {"values": [_kv("", x)["value"] for x in value]}}
    else:
        v = {"stringValue": value}
    return {"key": key, "value": v}


def _span(span_id: str, name: str, parent: str = "", trace: str = TRACE, start_s: int = 0,
          **attrs: Any) -> dict[str, Any]:
    return {"traceId": trace, "spanId": span_id, "parentSpanId": parent, "name": name,
            "kind": 1, "startTimeUnixNano": str(T0 + start_s * 10**9),
            "endTimeUnixNano": T0 + (start_s + 1) * 10**9,  # a number: also accepted
            "attributes": [_kv(k.replace("__", "."), v) for k, v in attrs.items()]}


def _body(*spans: dict[str, Any], resource: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"resourceSpans": [{
        "resource": {"attributes": [_kv(k, v) for k, v in (resource or {}).items()]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}]}]})


def _post(base_url: str, body: bytes, ctype: str = "application/json",
          path: str = "/v1/traces", **headers: str) -> httpx.Response:
    return httpx.post(base_url + path, content=body,
                      headers={"content-type": ctype, **headers}, timeout=10)


def test_json_with_upper_hex_base64_ids_and_string_int64(base_url: str) -> None:
    b64 = lambda h: base64.b64encode(bytes.fromhex(h)).decode()  # noqa: E731
    root = _span("EEE19B7EC3C1B174", "workflow", **{
        "tracestore__workflow": "billing", "tracestore__feature": "refunds"})
    llm = {**_span("aaaa0000bbbb1111", "chat", parent="eee19b7ec3c1b174", start_s=1, **{
        "gen_ai__operation__name": "chat", "gen_ai__provider__name": "openai",
        "gen_ai__request__model": "gpt-4o", "gen_ai__usage__input_tokens": 1000,
        "gen_ai__usage__output_tokens": 500, "gen_ai__response__finish_reasons": ["stop"]}),
        "kind": "SPAN_KIND_CLIENT", "status": {"code": "STATUS_CODE_ERROR", "message": "boom"}}
    # base64 ids, as some non-compliant exporters send them
    tool = _span(b64("1111222233334444"), "execute_tool", parent=b64("eee19b7ec3c1b174"),
                 trace=b64(TRACE), start_s=2, **{
                     "tracestore__node__kind": "tool", "tracestore__retry_of": "aaaa0000bbbb1111",
                     "gen_ai__tool__name": "search", "gen_ai__tool__call__arguments": '{"q":1}'})
    tool["attributes"] += [
        {"key": "blob", "value": {"bytesValue": "AAE="}},
        {"key": "nested", "value": {"kvlistValue": {"values": [_kv("a", 1), _kv("b", [1.5])]}}},
        {"key": "empty", "value": {}}]
    r = _post(base_url, _body(root, llm, tool, resource={"service.name": "billing-svc"}))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json" and r.content == b"{}"

    t = get_trace(base_url, TRACE.lower())
    assert (t["workflow"], t["feature"], t["service_name"]) == ("billing", "refunds",
                                                                "billing-svc")
    assert t["started_at"] == "2026-11-16T09:00:00.000Z"
    assert t["ended_at"] == "2026-11-16T09:00:03.000Z"
    n = by_id(t)
    assert set(n) == {"eee19b7ec3c1b174", "aaaa0000bbbb1111", "1111222233334444"}
    c = n["aaaa0000bbbb1111"]
    assert (c["kind"], c["parent_id"], c["status"], c["error_type"]) == (
        "llm", "eee19b7ec3c1b174", "error", "boom")
    assert (c["input_tokens"], c["output_tokens"], c["finish_reason"]) == (1000, 500, "stop")
    assert c["cost_usd"] == pytest.approx(0.0075)  # gpt-4o: $2.50 in / $10 out per MTok
    k = n["1111222233334444"]
    assert (k["kind"], k["source_kind"], k["parent_id"], k["retry_of"]) == (
        "tool", "tracestore:tool", "eee19b7ec3c1b174", "aaaa0000bbbb1111")
    assert k["args"] == {"q": 1}
    assert k["attributes"] == {"blob": "AAE=", "nested": {"a": 1, "b": [1.5]}, "empty": None}


def test_openllmetry_and_tracestore_review_outcome_attributes(base_url: str) -> None:
    spans = [
        _span("0000000000000001", "agent.workflow", **{
            "traceloop__span__kind": "workflow", "traceloop__workflow__name": "triage"}),
        _span("0000000000000002", "openai.chat", parent="0000000000000001", start_s=1, **{
            "llm__request__type": "chat", "gen_ai__system": "openai",
            "gen_ai__request__model": "gpt-4o-mini", "gen_ai__usage__prompt_tokens": 10,
            "gen_ai__usage__completion_tokens": 5, "gen_ai__prompt__0__role": "user",
            "gen_ai__prompt__0__content": "hi", "gen_ai__completion__0__role": "assistant",
            "gen_ai__completion__0__content": "hello", "tracestore__uses": ["doc-9"]}),
        _span("0000000000000003", "review", parent="0000000000000001", start_s=2, **{
            "tracestore__review__decision": "override",
            "tracestore__review__target": "0000000000000002"}),
        _span("0000000000000004", "resolved", parent="0000000000000001", start_s=3, **{
            "tracestore__outcome__status": "success",
            "tracestore__outcome__type": "ticket_resolved",
            "tracestore__outcome__value_usd": 12.5}),
    ]
    r = _post(base_url, _body(*spans), path="/api/public/otel/v1/traces")
    assert r.status_code == 200 and r.content == b"{}", r.text
    t = get_trace(base_url, TRACE.lower())
    assert t["workflow"] == "triage"
    n = by_id(t)
    assert (n["0000000000000001"]["kind"], n["0000000000000001"]["source_kind"]) == (
        "chain", "traceloop:workflow")
    m = n["0000000000000002"]
    assert (m["kind"], m["provider"], m["input_tokens"], m["output_tokens"]) == (
        "llm", "openai", 10, 5)
    assert orjson.loads(m["prompt"]) == [{"role": "user", "content": "hi"}]
    assert m["output"] == "hello" and m["uses"] == ["doc-9"]
    h = n["0000000000000003"]
    assert (h["kind"], h["decision"], h["review_target"]) == (
        "human", "override", "0000000000000002")
    o = n["0000000000000004"]
    assert (o["kind"], o["outcome_status"], o["outcome_type"], o["outcome_value_usd"]) == (
        "outcome", "success", "ticket_resolved", 12.5)
    assert [(x["status"], x["type"], x["value_usd"]) for x in t["outcomes"]] == [
        ("success", "ticket_resolved", 12.5)]


def _pb_request(body: bytes) -> bytes:
    """The same request in protobuf, built by hand from the JSON one (hex ids → bytes)."""
    data = orjson.loads(body)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    ss = rs.scope_spans.add()
    for s in data["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        sp = ss.spans.add()
        sp.trace_id = bytes.fromhex(s["traceId"])
        sp.span_id = bytes.fromhex(s["spanId"])
        if s["parentSpanId"]:
            sp.parent_span_id = bytes.fromhex(s["parentSpanId"])
        sp.name = s["name"]
        sp.start_time_unix_nano = int(s["startTimeUnixNano"])
        sp.end_time_unix_nano = int(s["endTimeUnixNano"])
        for kv in s["attributes"]:
            a = sp.attributes.add()
            a.key = kv["key"]
            if "intValue" in kv["value"]:
                a.value.int_value = int(kv["value"]["intValue"])
            else:
                a.value.string_value = kv["value"]["stringValue"]
    return req.SerializeToString()


def _llm(span_id: str, parent: str, tokens: int, start_s: int, **extra: Any) -> dict[str, Any]:
    return _span(span_id, "chat", parent=parent, start_s=start_s, **{
        "gen_ai__operation__name": "chat", "gen_ai__request__model": "gpt-4o",
        "gen_ai__provider__name": "openai", "gen_ai__usage__input_tokens": tokens,
        "gen_ai__usage__output_tokens": 0, **extra})


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_parts_across_requests_merge_exactly_and_repeats_are_stored_once(
    base_url: str, encoding: str
) -> None:
    ctype = "application/json" if encoding == "json" else "application/x-protobuf"
    enc = (lambda b: b) if encoding == "json" else _pb_request
    root = _span("00000000000000a1", "root")
    first = _body(_llm("00000000000000b1", "00000000000000a1", 100, 1),
                  _llm("00000000000000b2", "00000000000000a1", 200, 2))
    second = _body(root, _llm("00000000000000b3", "00000000000000a1", 300, 3))
    for body in (first, second, first):  # child before parent; then a repeat
        r = _post(base_url, enc(body), ctype)
        assert r.status_code == 200 and r.headers["content-type"] == ctype
        assert r.content == (b"{}" if encoding == "json" else b"")
    t = get_trace(base_url, TRACE.lower())
    assert (t["node_count"], t["llm_calls"], t["input_tokens"]) == (4, 3, 600)
    assert t["cost_usd"] == pytest.approx(600 * 2.5e-6)  # gpt-4o input: $2.50 per MTok
    assert t["workflow"] == "root"
    assert {n["node_id"]: n["parent_id"] for n in t["nodes"]}["00000000000000b1"] == (
        "00000000000000a1")


def test_tool_call_joins_across_requests(base_url: str) -> None:
    out = orjson.dumps([{"role": "assistant", "parts": [
        {"type": "tool_call", "id": "call_9", "name": "grep"}]}]).decode()
    tool = _span("00000000000000c2", "grep", parent="00000000000000c0", start_s=2, **{
        "gen_ai__operation__name": "execute_tool", "gen_ai__tool__name": "grep",
        "gen_ai__tool__call__id": "call_9"})
    assert _post(base_url, _body(tool)).status_code == 200  # the tool span arrives first
    llm = _llm("00000000000000c1", "00000000000000c0", 10, 1, gen_ai__output__messages=out)
    assert _post(base_url, _body(llm)).status_code == 200
    t = get_trace(base_url, TRACE.lower())
    assert edges(t, "tool_call") == {("00000000000000c1", "00000000000000c2")}


def test_partial_success_keeps_the_good_spans(base_url: str) -> None:
    good = _llm("00000000000000d1", "", 10, 1)
    bad_id = _span("zz", "bad id")
    negative = _llm("00000000000000d2", "", -5, 2)
    zero_trace = _span("00000000000000d3", "zero", trace="0" * 32)
    r = _post(base_url, _body(good, bad_id, negative, zero_trace))
    assert r.status_code == 200
    ps = r.json()["partialSuccess"]
    assert ps["rejectedSpans"] == "3"  # int64 → a string in OTLP/JSON
    assert "input_tokens" in ps["errorMessage"] and "'bad id'" in ps["errorMessage"]
    assert [n["node_id"] for n in get_trace(base_url, TRACE.lower())["nodes"]] == [
        "00000000000000d1"]
    r = _post(base_url, _pb_request(_body(good, negative)), "application/x-protobuf")
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert r.status_code == 200 and resp.partial_success.rejected_spans == 1


def test_error_answers(base_url: str) -> None:
    r = _post(base_url, b"{not json")
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    p = r.json()
    assert (p["status"], p["code"]) == (400, 3) and p["message"] == p["detail"]
    r = _post(base_url, b'{"resourceSpans": 7}')
    assert r.status_code == 400 and "resourceSpans" in r.json()["detail"]
    r = _post(base_url, b"\xff\xff\xff garbage", "application/x-protobuf")
    assert r.status_code == 400 and r.headers["content-type"] == "application/x-protobuf"
    status = Status.FromString(r.content)
    assert status.code == 3 and "protobuf" in status.message
    r = _post(base_url, b"x", "text/plain")
    assert r.status_code == 415 and r.json()["status"] == 415
    r = _post(base_url, b"{}", **{"content-encoding": "br"})
    assert r.status_code == 400 and "Content-Encoding" in r.json()["detail"]
    r = _post(base_url, b"x" * (LIMIT + 1))
    assert r.status_code == 413
    r = _post(base_url, gzip.compress(b"\0" * 8), "application/x-protobuf",
              **{"content-encoding": "gzip"})
    assert r.status_code == 400  # NUL bytes are not a protobuf message
    # Empty request: success (OTLP says SHOULD).
    assert _post(base_url, b"{}").content == b"{}"
    assert _post(base_url, b"", "application/x-protobuf").content == b""


def test_gzip_bomb_is_refused_without_inflating_it(base_url: str) -> None:
    bomb = gzip.compress(b"\0" * (16 * 1024 * 1024), compresslevel=9)  # 16 MiB → ~16 KiB
    assert len(bomb) < LIMIT
    r = _post(base_url, bomb, "application/x-protobuf", **{"content-encoding": "gzip"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/x-protobuf"
    assert "decompressed" in Status.FromString(r.content).message
    r = _post(base_url, bomb, **{"content-encoding": "gzip"})
    assert r.status_code == 413 and r.json()["code"] == 3


def test_long_content_is_capped_and_hashed_in_full(base_url: str) -> None:
    text = "refund " * 3000  # 21,000 characters, over the default max_content_chars (16,384)
    docs = orjson.dumps([{"id": "d1", "content": text}]).decode()
    spans = [_llm("00000000000000e1", "", 10, 1, output__value=text),
             _span("00000000000000e2", "kb", start_s=2, gen_ai__operation__name="retrieval",
                   gen_ai__retrieval__documents=docs)]
    assert _post(base_url, _body(*spans)).status_code == 200
    n = by_id(get_trace(base_url, TRACE.lower()))
    llm, ret = n["00000000000000e1"], n["00000000000000e2"]
    assert llm["output"] == text[:16_384] and llm["output_hash"] == content_hash(text)
    assert llm["attributes"]["tracestore.truncated"] == {"output": 21_000}
    assert ret["documents"][0]["content"] == text[:16_384]
    assert ret["documents"][0]["content_hash"] == content_hash(text)
