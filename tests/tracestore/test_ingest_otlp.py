"""OTLP ingest with real clients: the OpenTelemetry Python SDK and its OTLP/HTTP protobuf
exporter (as the Langfuse SDK and Phoenix use it) against the real app served by uvicorn."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.trace import Link, Status, StatusCode, Tracer
from sqlalchemy.orm import Session

from tests.tracestore.otlp_server import by_id, edges, get_trace, serve
from tracestore.auth import create_key
from tracestore.config import Settings
from tracestore.ingest.pipeline import project_id_for
from tracestore.pricing.pricer import GENAI_PRICES_SOURCE
from tracestore.store.engine import create_schema, make_engine


class RecordingExporter(OTLPSpanExporter):
    """The real exporter, remembering each export's result so a failed POST fails the test."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.results: list[SpanExportResult] = []

    def export(self, spans: Any) -> SpanExportResult:
        result = super().export(spans)
        self.results.append(result)
        return result


@pytest.fixture
def base_url(db_url: str) -> Iterator[str]:
    with serve(Settings(database_url=db_url, settle_seconds=0)) as url:
        yield url


def _provider(exporter: OTLPSpanExporter, *, batch: bool, **resource: Any) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create(resource))
    proc = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(proc)
    return provider


def _hex(span: Any, width: int = 16) -> str:
    ctx = span.get_span_context()
    return f"{ctx.span_id:016x}" if width == 16 else f"{ctx.trace_id:032x}"


def _genai_agent_run(tracer: Tracer) -> dict[str, str]:
    """An agent run as OTel GenAI instrumentations emit it: invoke_agent → retrieval, chat
    (deciding a tool call), execute_tool (running it), a failing chat."""
    ids: dict[str, str] = {}
    with tracer.start_as_current_span("invoke_agent support", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
        "gen_ai.workflow.name": "support_triage", "gen_ai.conversation.id": "conv-7",
        "tracestore.task.id": "TICKET-42",
    }) as root:
        ids["trace"] = _hex(root, 32)
        ids["root"] = _hex(root)
        with tracer.start_as_current_span("retrieval kb", attributes={
            "gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb",
            "gen_ai.retrieval.query.text": "refund policy", "gen_ai.request.top_k": 3,
            "gen_ai.retrieval.documents": json.dumps([
                {"id": "doc-1", "score": 0.92, "content": "Refunds within 30 days."},
                {"id": "doc-2", "score": 0.41}]),
        }) as ret:
            ids["ret"] = _hex(ret)
        with tracer.start_as_current_span("chat gpt-4o", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 200,
            "gen_ai.usage.reasoning.output_tokens": 100,
            "gen_ai.response.finish_reasons": ["tool_call"],
            "gen_ai.input.messages": json.dumps([
                {"role": "user", "parts": [{"type": "text", "content": "Refund order 9?"}]}]),
            "gen_ai.output.messages": json.dumps([
                {"role": "assistant", "finish_reason": "tool_call", "parts": [
                    {"type": "tool_call", "id": "call_1", "name": "refund",
                     "arguments": {"order": 9}}]}]),
        }) as chat:
            ids["chat"] = _hex(chat)
        with tracer.start_as_current_span("execute_tool refund", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund",
            "gen_ai.tool.call.id": "call_1", "gen_ai.tool.call.arguments": '{"order": 9}',
            "gen_ai.tool.call.result": '{"ok": true}',
        }) as tool:
            ids["tool"] = _hex(tool)
        with tracer.start_as_current_span("chat claude", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.system": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-20250514",
            "gen_ai.usage.prompt_tokens": 50, "gen_ai.usage.completion_tokens": 0,
        }) as bad:
            ids["bad"] = _hex(bad)
            bad.record_exception(TimeoutError("upstream timed out"))
            bad.set_status(Status(StatusCode.ERROR, "timeout"))
    return ids


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_otel_sdk_genai_spans_are_stored_field_by_field(base_url: str, gzip: bool) -> None:
    exporter = RecordingExporter(
        endpoint=f"{base_url}/v1/traces",
        compression=Compression.Gzip if gzip else Compression.NoCompression)
    provider = _provider(exporter, batch=gzip, **{
        "service.name": "support-bot", "tracestore.team": "support",
        "deployment.environment.name": "prod"})
    ids = _genai_agent_run(provider.get_tracer("test"))
    provider.force_flush()
    provider.shutdown()
    assert exporter.results and set(exporter.results) == {SpanExportResult.SUCCESS}
    if not gzip:  # SimpleSpanProcessor: one request per span, children before their parent
        assert len(exporter.results) == 5

    t = get_trace(base_url, ids["trace"])
    assert (t["workflow"], t["task_id"], t["team"]) == ("support_triage", "TICKET-42", "support")
    assert (t["service_name"], t["environment"], t["session_id"]) == (
        "support-bot", "prod", "conv-7")
    assert t["node_count"] == 5 and t["llm_calls"] == 2 and t["error_count"] == 1
    n = by_id(t)
    root, ret, chat, tool, bad = (n[ids[k]] for k in ("root", "ret", "chat", "tool", "bad"))
    assert (root["kind"], root["source_kind"], root["parent_id"]) == (
        "agent", "gen_ai:invoke_agent", None)
    assert all(x["parent_id"] == ids["root"] for x in (ret, chat, tool, bad))

    assert chat["kind"] == "llm" and chat["provider"] == "openai"
    assert chat["model"] == "gpt-4o-2024-08-06"  # the response model wins
    assert (chat["input_tokens"], chat["output_tokens"], chat["cache_read_tokens"],
            chat["reasoning_tokens"]) == (1200, 300, 200, 100)
    assert chat["finish_reason"] == "tool_call"
    assert json.loads(chat["prompt"]) == [{"role": "user", "content": "Refund order 9?"}]
    assert json.loads(chat["output"]) == [{"id": "call_1", "name": "refund",
                                           "arguments": {"order": 9}}]
    # gpt-4o list price in the bundled genai-prices data: $2.50 in, $1.25 cached, $10 out
    # per MTok: 1000 × 2.5 + 200 × 1.25 + 300 × 10 = 5750 µ$.
    assert chat["priced"] and chat["price_source"] == GENAI_PRICES_SOURCE
    assert chat["cost_usd"] == pytest.approx(0.00575)

    assert (ret["kind"], ret["query"], ret["top_k"]) == ("retrieval", "refund policy", 3)
    assert [(d["id"], d["score"], d.get("content")) for d in ret["documents"]] == [
        ("doc-1", 0.92, "Refunds within 30 days."), ("doc-2", 0.41, None)]
    assert ret["attributes"]["gen_ai.data_source.id"] == "kb"  # unmapped, kept

    assert (tool["kind"], tool["tool_name"], tool["tool_call_id"]) == ("tool", "refund", "call_1")
    assert tool["args"] == {"order": 9} and tool["result"] == '{"ok":true}'
    assert edges(t, "tool_call") == {(ids["chat"], ids["tool"])}

    assert (bad["status"], bad["error_type"], bad["provider"]) == (
        "error", "TimeoutError", "anthropic")
    assert (bad["input_tokens"], bad["output_tokens"]) == (50, 0)
    assert t["input_tokens"] == 1250 and t["output_tokens"] == 300


def test_openinference_spans_with_annotations_and_links(base_url: str) -> None:
    exporter = RecordingExporter(endpoint=f"{base_url}/v1/traces")
    provider = _provider(exporter, batch=True, **{
        "service.name": "unknown_service", "openinference.project.name": "rag-app"})
    tracer = provider.get_tracer("openinference.instrumentation.test")
    with tracer.start_as_current_span("RAG pipeline", attributes={
        "openinference.span.kind": "CHAIN", "session.id": "s-1", "user.id": "u-9",
        "tag.tags": ["beta", "eu"], "metadata": '{"team": "search", "ab": "b"}',
        "input.value": "what is the refund window?",
    }) as chain:
        with tracer.start_as_current_span("retrieve", attributes={
            "openinference.span.kind": "RETRIEVER", "input.value": "refund window",
            "retrieval.documents.0.document.id": "kb-1",
            "retrieval.documents.0.document.score": 0.8,
            "retrieval.documents.0.document.content": "30 days",
            "retrieval.documents.1.document.id": 17,
            "retrieval.documents.1.document.score": 0.3,
            "retrieval.documents.1.document.content": "shipping info",
        }) as ret:
            pass
        with tracer.start_as_current_span("ChatCompletion", attributes={
            "openinference.span.kind": "LLM", "llm.provider": "anthropic",
            "llm.system": "anthropic", "llm.model_name": "claude-sonnet-4-20250514",
            "llm.token_count.prompt": 1300, "llm.token_count.completion": 500,
            "llm.token_count.total": 1800,
            "llm.token_count.prompt_details.cache_read": 200,
            "llm.token_count.prompt_details.cache_write": 100,
            "llm.cost.total": 0.0123,
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Be brief.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "Refund window?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "30 days.",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "toolu_1",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments":
                '{"q": "refund"}',
            "annotations.0.annotation.name": "correctness",
            "annotations.0.annotation.label": "incorrect",
            "annotations.0.annotation.annotator_kind": "HUMAN",
            "annotations.1.annotation.name": "toxicity",
            "annotations.1.annotation.score": 0.01,
            "annotations.1.annotation.annotator_kind": "LLM",
        }) as llm:
            pass
        with tracer.start_as_current_span("lookup", attributes={
            "openinference.span.kind": "TOOL", "tool.name": "lookup", "tool.id": "toolu_1",
            "input.value": '{"q": "refund"}', "input.mime_type": "application/json",
            "output.value": "30 days",
        }) as tool:
            pass
        llm_ctx = llm.get_span_context()
        with tracer.start_as_current_span("human review", links=[Link(llm_ctx)], attributes={
            "openinference.span.kind": "EVALUATOR",
            "annotations.0.annotation.name": "review",
            "annotations.0.annotation.label": "approved",
            "annotations.0.annotation.annotator_kind": "HUMAN",
        }) as review:
            pass
    provider.shutdown()
    assert exporter.results == [SpanExportResult.SUCCESS]

    t = get_trace(base_url, _hex(chain, 32))
    assert (t["service_name"], t["session_id"], t["user_id"]) == ("rag-app", "s-1", "u-9")
    assert t["tags"] == ["beta", "eu"] and t["team"] == "search"  # team from metadata
    assert t["workflow"] == "RAG pipeline"  # no workflow attribute: the root span's name
    n = by_id(t)
    assert n[_hex(chain)]["kind"] == "chain"
    r = n[_hex(ret)]
    assert (r["kind"], r["source_kind"], r["query"]) == (
        "retrieval", "openinference:RETRIEVER", "refund window")
    assert [(d["id"], d["score"], d["content"]) for d in r["documents"]] == [
        ("kb-1", 0.8, "30 days"), ("17", 0.3, "shipping info")]
    m = n[_hex(llm)]
    assert (m["kind"], m["provider"], m["model"]) == ("llm", "anthropic",
                                                      "claude-sonnet-4-20250514")
    assert (m["input_tokens"], m["output_tokens"], m["cache_read_tokens"],
            m["cache_write_tokens"]) == (1300, 500, 200, 100)
    assert m["reported_cost_usd"] == pytest.approx(0.0123)
    # claude-sonnet-4: 1000 × $3 + 200 × $0.30 + 100 × $3.75 in, 500 × $15 out per MTok
    assert m["cost_usd"] == pytest.approx(0.003435 + 0.0075)
    assert json.loads(m["prompt"]) == [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "Refund window?"}]
    assert m["output"] == "30 days."
    assert m["attributes"]["annotations"] == [
        {"name": "toxicity", "score": 0.01, "annotator_kind": "LLM"}]
    k = n[_hex(tool)]
    assert (k["kind"], k["tool_name"], k["tool_call_id"], k["args"], k["result"]) == (
        "tool", "lookup", "toolu_1", {"q": "refund"}, "30 days")
    assert edges(t, "tool_call") == {(_hex(llm), _hex(tool))}
    # A person's annotation on the LLM span: a human node reviewing it.
    ann = n[f"{_hex(llm)}.annotation.0"]
    assert (ann["kind"], ann["decision"], ann["review_target"], ann["parent_id"]) == (
        "human", "reject", _hex(llm), _hex(llm))
    # A post-hoc EVALUATOR carrier linked to its target, judged by a person.
    h = n[_hex(review)]
    assert (h["kind"], h["source_kind"], h["decision"], h["review_target"]) == (
        "human", "openinference:EVALUATOR", "approve", _hex(llm))
    assert edges(t, "link") == {(_hex(llm), _hex(review))}


def _mint_keys(db_url: str) -> tuple[str, str]:
    """An ingest key and a read key of the default project (auth is then required)."""
    engine = make_engine(db_url)
    create_schema(engine)
    pid = project_id_for(engine, "default")
    with Session(engine) as s, s.begin():
        ingest, _ = create_key(s, project_id=pid, scopes=["ingest"], name="lf", now=time.time())
        read, _ = create_key(s, project_id=pid, scopes=["read"], name="ro", now=time.time())
    engine.dispose()
    return ingest, read


def test_langfuse_style_exporter_on_the_alias_path(db_url: str) -> None:
    # The Langfuse SDK sends Basic base64(public_key:secret_key); the secret is our API key.
    ingest_key, read_key = _mint_keys(db_url)
    with serve(Settings(database_url=db_url, settle_seconds=0)) as base_url:
        _langfuse_run(base_url, ingest_key, read_key)


def _langfuse_run(base_url: str, ingest_key: str, read_key: str) -> None:
    auth = base64.b64encode(f"pk-lf-1234:{ingest_key}".encode()).decode()
    exporter = RecordingExporter(
        endpoint=f"{base_url}/api/public/otel/v1/traces",
        headers={"Authorization": f"Basic {auth}", "x-langfuse-sdk-name": "python",
                 "x-langfuse-sdk-version": "3.3.0", "x-langfuse-public-key": "pk-lf-1234"})
    provider = _provider(exporter, batch=True, **{"service.name": "lf-app"})
    tracer = provider.get_tracer("langfuse-sdk")
    with tracer.start_as_current_span("handle-ticket", attributes={
        "langfuse.observation.type": "span", "langfuse.trace.name": "ticket_flow",
        "langfuse.trace.tags": ["vip"], "langfuse.trace.metadata.team": "care",
        "langfuse.environment": "staging", "user.id": "user-1",
    }) as root:
        with tracer.start_as_current_span("generate-answer", attributes={
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o-mini",
            "langfuse.observation.usage_details": json.dumps(
                {"input": 800, "input_cached_tokens": 200, "output": 120}),
            "langfuse.observation.cost_details": json.dumps({"input": 0.0002, "output": 0.0001}),
            "langfuse.observation.input": json.dumps([{"role": "user", "content": "hi"}]),
            "langfuse.observation.output": "hello!",
            "langfuse.observation.prompt.name": "answer-v2",
        }) as gen:
            pass
        with tracer.start_as_current_span("crm-lookup", attributes={
            "langfuse.observation.type": "tool",
            "langfuse.observation.input": '{"customer": 5}',
            "langfuse.observation.output": '{"tier": "gold"}',
            "langfuse.observation.level": "ERROR",
            "langfuse.observation.status_message": "crm down",
        }) as tool:
            pass
    provider.shutdown()
    assert exporter.results == [SpanExportResult.SUCCESS]

    t = get_trace(base_url, _hex(root, 32), read_key)
    assert (t["workflow"], t["environment"], t["user_id"], t["tags"]) == (
        "ticket_flow", "staging", "user-1", ["vip"])
    assert t["team"] == "care"
    n = by_id(t)
    assert (n[_hex(root)]["kind"], n[_hex(root)]["source_kind"]) == ("chain", "langfuse:span")
    g = n[_hex(gen)]
    assert (g["kind"], g["model"], g["step"]) == ("llm", "gpt-4o-mini", "answer-v2")
    # Langfuse usage buckets are exclusive; stored counts are inclusive of the cache.
    assert (g["input_tokens"], g["cache_read_tokens"], g["output_tokens"]) == (1000, 200, 120)
    assert g["reported_cost_usd"] == pytest.approx(0.0003)
    assert g["output"] == "hello!" and json.loads(g["prompt"]) == [
        {"role": "user", "content": "hi"}]
    k = n[_hex(tool)]
    assert (k["kind"], k["tool_name"], k["args"], k["status"]) == (
        "tool", "crm-lookup", {"customer": 5}, "error")
