"""``POST /v1/logs`` (GenAI content events onto their spans' nodes, in either arrival order)
and ``POST /v1/metrics`` (answered per the OTLP spec, not stored), through the real app on
every backend, protobuf and JSON, gzip."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import orjson
from fastapi.testclient import TestClient
from google.protobuf import json_format  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from tracestore.ingest.write import content_hash

TRACE = "5b8efff798038103d269b633813fc60c"
LLM, TOOL = "eee19b7ec3c1b174", "eee19b7ec3c1b175"
T0 = 1_794_819_600_000_000_000
PB = {"Content-Type": "application/x-protobuf"}


def _v(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": _v(x)} for k, x in value.items()]}}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_v(x) for x in value]}}
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"stringValue": value}


def _record(name: str, body: dict[str, Any], span: str = LLM, *,
            as_attribute: bool = False) -> dict[str, Any]:
    rec: dict[str, Any] = {"timeUnixNano": str(T0), "traceId": TRACE, "spanId": span,
                           "body": _v(body), "attributes": [
                               {"key": "gen_ai.system", "value": _v("openai")}]}
    if as_attribute:  # older SDKs: the event name as an attribute
        rec["attributes"].append({"key": "event.name", "value": _v(name)})
    else:
        rec["eventName"] = name
    return rec


def _logs(*records: dict[str, Any]) -> dict[str, Any]:
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": list(records)}]}]}


# What opentelemetry-instrumentation-openai-v2 emits without content on the span (semconv
# events gen_ai.user.message / gen_ai.choice; the choice's tool call decides call-1).
EVENTS = _logs(
    _record("gen_ai.system.message", {"content": "You are terse."}, as_attribute=True),
    _record("gen_ai.user.message", {"content": "Weather in Paris?"}),
    _record("gen_ai.choice", {"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "tool_calls": [{"id": "call-1", "type": "function", "function": {
            "name": "weather", "arguments": '{"city":"Paris"}'}}]}}),
    {"timeUnixNano": str(T0), "body": _v("a plain application log line")},
)


def _spans() -> bytes:
    def attrs(d: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"key": k, "value": _v(v)} for k, v in d.items()]
    llm = {"traceId": TRACE, "spanId": LLM, "name": "chat gpt-4o-mini", "kind": 3,
           "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 10**9),
           "attributes": attrs({"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                                "gen_ai.request.model": "gpt-4o-mini",
                                "gen_ai.usage.input_tokens": 20,
                                "gen_ai.usage.output_tokens": 9})}
    tool = {"traceId": TRACE, "spanId": TOOL, "name": "execute_tool weather", "kind": 1,
            "startTimeUnixNano": str(T0 + 10**9), "endTimeUnixNano": str(T0 + 2 * 10**9),
            "attributes": attrs({"gen_ai.operation.name": "execute_tool",
                                 "gen_ai.tool.name": "weather",
                                 "gen_ai.tool.call.id": "call-1"})}
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [llm, tool]}]}]})


def _check(client: TestClient) -> None:
    t = client.get(f"/api/v1/traces/{TRACE}").json()
    llm = next(n for n in t["nodes"] if n["node_id"] == LLM)
    prompt = json.loads(llm["prompt"])
    assert [(m["role"], m["content"]) for m in prompt] == [
        ("system", "You are terse."), ("user", "Weather in Paris?")]
    assert llm["prompt_hash"] == content_hash(llm["prompt"])
    assert json.loads(llm["output"])[0]["id"] == "call-1"
    assert llm["finish_reason"] == "tool_calls" and llm["input_tokens"] == 20
    assert [(e["src"], e["dst"], e["kind"]) for e in t["edges"]] == [(LLM, TOOL, "tool_call")]


def _post_logs(client: TestClient, doc: dict[str, Any], protobuf: bool) -> dict[str, Any]:
    if protobuf:
        # json_format base64-decodes ids: hand it the ids as base64, as protobuf JSON has them
        raw = json.loads(json.dumps(doc))
        for rl in raw["resourceLogs"]:
            for sl in rl["scopeLogs"]:
                for r in sl["logRecords"]:
                    for k in ("traceId", "spanId"):
                        if k in r:
                            r[k] = base64.b64encode(bytes.fromhex(r[k])).decode()
        req = json_format.ParseDict(raw, ExportLogsServiceRequest())
        r = client.post("/v1/logs", content=gzip.compress(req.SerializeToString()),
                        headers={**PB, "Content-Encoding": "gzip"})
        assert r.status_code == 200, r.text
        resp = ExportLogsServiceResponse.FromString(r.content)
        return {"rejected": resp.partial_success.rejected_log_records,
                "message": resp.partial_success.error_message}
    r = client.post("/v1/logs", content=orjson.dumps(doc),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    ps = r.json().get("partialSuccess", {})
    return {"rejected": int(ps.get("rejectedLogRecords", 0)), "message": ps.get("errorMessage")}


def test_logs_before_spans_json(client: TestClient) -> None:
    ans = _post_logs(client, EVENTS, protobuf=False)
    assert ans["rejected"] == 1 and "not GenAI events" in ans["message"]
    r = client.post("/v1/traces", content=_spans(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    _check(client)


def test_spans_before_logs_protobuf_gzip(client: TestClient) -> None:
    r = client.post("/v1/traces", content=_spans(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    t = client.get(f"/api/v1/traces/{TRACE}").json()
    assert next(n for n in t["nodes"] if n["node_id"] == LLM)["prompt"] is None
    assert t["edges"] == []
    ans = _post_logs(client, EVENTS, protobuf=True)
    assert ans["rejected"] == 1
    _check(client)


def test_content_events_are_capped_and_redacted_like_span_content(db_url: str) -> None:
    from tracestore.api import create_app
    from tracestore.config import Settings

    secret = "sk-" + "a" * 40
    with TestClient(create_app(Settings(database_url=db_url, settle_seconds=0,
                                        max_content_chars=60))) as client:
        client.post("/v1/traces", content=_spans(),
                    headers={"Content-Type": "application/json"})
        long = "x" * 200 + " key " + secret
        _post_logs(client, _logs(_record("gen_ai.user.message", {"content": long})), False)
        llm = next(n for n in client.get(f"/api/v1/traces/{TRACE}").json()["nodes"]
                   if n["node_id"] == LLM)
    assert len(llm["prompt"]) == 60 and secret not in llm["prompt"]
    full = json.dumps([{"role": "user", "content": "x" * 200 + " key [REDACTED:api_key]"}],
                      separators=(",", ":"))
    assert llm["prompt_hash"] == content_hash(full)


def test_bad_logs_bodies_are_4xx(client: TestClient) -> None:
    r = client.post("/v1/logs", content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"].startswith(
        "application/problem+json")
    r = client.post("/v1/logs", content=b"\xff\xff", headers=PB)
    assert r.status_code == 400 and r.headers["content-type"] == "application/x-protobuf"
    r = client.post("/v1/logs", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_metrics_are_answered_not_stored(client: TestClient) -> None:
    doc = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "gen_ai.client.token.usage", "histogram": {"dataPoints": [
            {"count": "1"}, {"count": "2"}]}},
        {"name": "x", "sum": {"dataPoints": [{"asInt": "3"}]}}]}]}]}
    r = client.post("/v1/metrics", content=orjson.dumps(doc),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["partialSuccess"]["rejectedDataPoints"] == "3"
    req = ExportMetricsServiceRequest()
    m = req.resource_metrics.add().scope_metrics.add().metrics.add()
    m.name = "g"
    m.gauge.data_points.add().as_double = 1.0
    r = client.post("/v1/metrics", content=req.SerializeToString(), headers=PB)
    assert r.status_code == 200
    resp = ExportMetricsServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_data_points == 1
    assert "does not store metrics" in resp.partial_success.error_message
