"""OTLP decoding and span mapping as pure functions: id forms, enum leniency, classification
precedence, token normalisation, and property tests that hostile bodies only ever produce a
400 or rejected spans — never an exception that would become a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracestore.errors import BadRequest
from tracestore.ingest.otlp import decode_json_request, decode_protobuf_request, spans_to_traces
from tracestore.ingest.otlp.content import usage
from tracestore.ingest.otlp.decode import parse_id
from tracestore.ingest.otlp.nodes import classify
from tracestore.ingest.write import node_row
from tracestore.schemas import iso

TRACE = "5b8efff798038103d269b633813fc60c"


@pytest.mark.parametrize(("raw", "n", "want"), [
    ("5B8EFFF798038103D269B633813FC60C", 16, TRACE),
    (base64.b64encode(bytes.fromhex(TRACE)).decode(), 16, TRACE),
    (base64.urlsafe_b64encode(bytes.fromhex("fbff00112233ff44")).decode().rstrip("="), 8,
     "fbff00112233ff44"),
    ("", 8, None),
])
def test_parse_id_accepts_hex_of_either_case_and_base64(raw: str, n: int, want: str) -> None:
    assert parse_id(raw, n) == want


@pytest.mark.parametrize("raw", ["0" * 16, "abc", "5B8EFFF798038103", 12])
def test_parse_id_rejects_malformed_and_all_zero_ids(raw: Any) -> None:
    with pytest.raises(ValueError):
        parse_id(raw, 16)


def test_json_walker_is_lenient_where_exporters_deviate() -> None:
    body = orjson.dumps({"resource_spans": [{  # proto field names instead of lowerCamelCase
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]},
        "instrumentationLibrarySpans": [{"spans": [{  # the pre-1.0 name of scopeSpans
            "trace_id": TRACE, "span_id": "00000000000000a1", "name": "x",
            "kind": "SPAN_KIND_SERVER", "start_time_unix_nano": 1794819600000000000,
            "status": {"code": "ERROR"},
            "attributes": [
                {"key": "i", "value": {"intValue": "9007199254740993"}},  # > 2**53: exact
                {"key": "big", "value": {"intValue": str(2**64 - 1)}},  # uint64: kept as text
                {"key": "d", "value": {"doubleValue": "NaN"}},
                {"key": "kv", "value": {"kvlistValue": {"values": [
                    {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": True}]}}}]}}},
            ],
        }]}],
    }]})
    (span,), rejected = decode_json_request(body)
    assert rejected == []
    assert (span.kind, span.status_code, span.start, span.resource) == (
        2, 2, 1794819600.0, {"service.name": "s"})
    assert span.attributes["i"] == 9007199254740993
    assert span.attributes["big"] == str(2**64 - 1)
    assert span.attributes["d"] != span.attributes["d"]  # NaN
    assert span.attributes["kv"] == {"a": [True]}


@pytest.mark.parametrize(("attrs", "want"), [
    ({"tracestore.node.kind": "guardrail", "langfuse.observation.type": "generation"},
     ("guardrail", "tracestore:guardrail")),
    ({"langfuse.observation.type": "generation", "openinference.span.kind": "TOOL"},
     ("llm", "langfuse:generation")),
    ({"openinference.span.kind": "TOOL", "gen_ai.operation.name": "chat"},
     ("tool", "openinference:TOOL")),
    ({"openinference.span.kind": "PROMPT"}, ("chain", "openinference:PROMPT")),
    ({"openinference.span.kind": "EVALUATOR"}, ("chain", "openinference:EVALUATOR")),
    ({"gen_ai.operation.name": "plan"}, ("chain", "gen_ai:plan")),
    ({"gen_ai.operation.name": "plan", "gen_ai.request.model": "o3"}, ("llm", "gen_ai:plan")),
    ({"gen_ai.operation.name": "embeddings"}, ("embedding", "gen_ai:embeddings")),
    ({"traceloop.span.kind": "agent"}, ("agent", "traceloop:agent")),
    ({"llm.request.type": "rerank"}, ("rerank", "traceloop:rerank")),
    ({"gen_ai.tool.call.id": "c1", "gen_ai.request.model": "x"},
     ("tool", "heuristic:gen_ai.tool")),
    ({"llm.model_name": "gpt-4o"}, ("llm", "heuristic:model")),
    ({"tracestore.outcome.status": "success"}, ("outcome", "tracestore:outcome")),
    ({"http.method": "GET"}, ("chain", "otel:span")),
])
def test_classification_precedence(attrs: dict[str, Any], want: tuple[str, str]) -> None:
    assert classify(attrs, human=False) == want


def test_evaluator_judged_by_a_person_is_a_human_node() -> None:
    assert classify({"openinference.span.kind": "EVALUATOR"}, human=True) == (
        "human", "openinference:EVALUATOR")


@pytest.mark.parametrize(("attrs", "details", "want"), [
    # OTel GenAI: already inclusive
    ({"gen_ai.usage.input_tokens": 1300, "gen_ai.usage.cache_read.input_tokens": 200,
      "gen_ai.usage.cache_creation.input_tokens": 100, "gen_ai.usage.output_tokens": 50,
      "gen_ai.usage.reasoning.output_tokens": 30}, None, (1300, 50, 200, 100, 30)),
    # old names and OpenLLMetry's cache variants
    ({"gen_ai.usage.prompt_tokens": "40", "gen_ai.usage.completion_tokens": 2.0,
      "gen_ai.usage.cache_read_input_tokens": 10}, None, (40, 2, 10, 0, 0)),
    # a producer that evidently sent exclusive buckets: added back
    ({"llm.token_count.prompt": 5, "llm.token_count.prompt_details.cache_read": 100,
      "llm.token_count.completion": 1, "llm.token_count.completion_details.reasoning": 9},
     None, (105, 10, 100, 0, 9)),
    # Langfuse usage_details: exclusive "input"/"output" buckets
    ({}, {"input": 2, "input_cached_tokens": 47105, "input_cache_creation": 1076,
          "output": 10, "output_reasoning_tokens": 5}, (48183, 15, 47105, 1076, 5)),
    # OpenAI-style keys in usage_details: inclusive
    ({}, {"prompt_tokens": 100, "completion_tokens": 7}, (100, 7, 0, 0, 0)),
])
def test_tokens_are_normalised_to_inclusive_counts(
    attrs: dict[str, Any], details: dict[str, Any] | None, want: tuple[int, ...]
) -> None:
    u = usage(attrs, details)
    assert (u["input_tokens"], u["output_tokens"], u["cache_read_tokens"],
            u["cache_write_tokens"], u["reasoning_tokens"]) == want


# ------------------------------------------------------------------ property tests

_KEYS = st.sampled_from([
    "gen_ai.operation.name", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    "gen_ai.request.model", "gen_ai.provider.name", "gen_ai.input.messages",
    "gen_ai.output.messages", "gen_ai.retrieval.documents", "gen_ai.tool.call.id",
    "gen_ai.tool.call.arguments", "gen_ai.response.finish_reasons", "openinference.span.kind",
    "llm.token_count.prompt", "llm.cost.total", "retrieval.documents.0.document.id",
    "retrieval.documents.1.document.score", "llm.output_messages.0.message.tool_calls.0."
    "tool_call.id", "annotations.0.annotation.annotator_kind", "annotations.0.annotation.label",
    "langfuse.observation.type", "langfuse.observation.usage_details",
    "langfuse.observation.cost_details", "tracestore.node.kind", "tracestore.uses",
    "tracestore.retry_of", "tracestore.review.target", "tracestore.review.minutes",
    "tracestore.outcome.status", "tracestore.outcome.value_usd", "tag.tags", "metadata",
    "session.id", "user.id", "x.other",
])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=30),
    st.sampled_from(["LLM", "TOOL", "EVALUATOR", "HUMAN", "chat", "execute_tool", "generation",
                     "{\"a\": 1}", "[1, 2]", "[{\"id\": 3}]", "[{\"role\": 1, \"parts\": 7}]",
                     "{\"input\": -5}", "success", "nope", "-1", "1e309"]),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)


def _any_value(v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v if v == v and abs(v) != float("inf") else str(v)}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_any_value(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": _any_value(x)}
                                           for k, x in v.items()]}}
    return {"stringValue": v}


def _exercise(body_spans: list[Any]) -> None:
    """Everything after decoding that could raise on odd values: mapping, validation, the
    store's row building (canonical JSON, hashing) and ISO rendering of times."""
    traces, _ = spans_to_traces(body_spans, max_nodes_per_trace=50)
    for t in traces:
        orjson.dumps(t.model_dump(mode="json"))
        for n in t.nodes:
            row = node_row(1, t.trace_id, n, 64)
            orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS)
            iso(n.start), iso(n.end)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(_KEYS, _VALUES, max_size=8), min_size=1, max_size=4),
       st.lists(st.one_of(st.integers(-(2**65), 2**65), st.text(max_size=5)), min_size=1,
                max_size=4))
def test_hostile_json_spans_never_escape_as_exceptions(
    attr_sets: list[dict[str, Any]], times: list[Any]
) -> None:
    spans = [{"traceId": TRACE, "spanId": f"{i + 1:016x}", "name": "s",
              "parentSpanId": "0000000000000001" if i else "",
              "startTimeUnixNano": times[i % len(times)], "kind": times[i % len(times)],
              "attributes": [{"key": k, "value": _any_value(v)} for k, v in attrs.items()]}
             for i, attrs in enumerate(attr_sets)]
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    try:
        decoded, _ = decode_json_request(body)
    except BadRequest:
        return
    _exercise(decoded)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_as_protobuf_are_a_400_or_decode(body: bytes) -> None:
    try:
        decoded, _ = decode_protobuf_request(body)
    except BadRequest:
        return
    _exercise(decoded)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(_KEYS, _SCALARS.filter(lambda v: v is not None), max_size=8),
       st.integers(0, 2**64 - 1))
def test_hostile_protobuf_attributes_never_escape(attrs: dict[str, Any], start: int) -> None:
    req = ExportTraceServiceRequest()
    sp = req.resource_spans.add().scope_spans.add().spans.add()
    sp.trace_id, sp.span_id, sp.start_time_unix_nano = bytes.fromhex(TRACE), b"\1" * 8, start
    for k, v in attrs.items():
        kv = sp.attributes.add()
        kv.key = k
        if isinstance(v, bool):
            kv.value.bool_value = v
        elif isinstance(v, int):
            kv.value.int_value = max(min(v, 2**63 - 1), -(2**63))
        elif isinstance(v, float):
            kv.value.double_value = v
        else:
            kv.value.string_value = v
    decoded, _ = decode_protobuf_request(req.SerializeToString())
    _exercise(decoded)
