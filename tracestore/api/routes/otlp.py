"""OTLP/HTTP ingest: ``POST /v1/traces`` and the Langfuse alias
``POST /api/public/otel/v1/traces``; ``POST /v1/logs`` (GenAI content events, attached to
their spans' nodes, :mod:`tracestore.ingest.otlp.logs`); ``POST /v1/metrics`` (answered,
not stored).

Responses follow the OTLP/HTTP spec (docs/ingest.md, "OTLP ingest") where clients depend on
it: a 200 carries an ``ExportTraceServiceResponse`` in the request's encoding (0 bytes of
protobuf, ``{}`` in JSON), with ``partialSuccess`` when some spans were rejected. Errors:

* protobuf requests get a protobuf ``google.rpc.Status`` (``code``, ``message``) with
  ``Content-Type: application/x-protobuf``, as the spec requires;
* JSON requests (and bodies of unknown type) get our one error shape,
  ``application/problem+json``, which also carries the ``code`` and ``message`` members of the
  JSON form of ``google.rpc.Status``, so either reading of the body works.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from starlette.concurrency import run_in_threadpool

from tracestore.api.deps import IngestProjectDep, SettingsDep, WriterDep
from tracestore.api.problems import PROBLEM_JSON
from tracestore.config import Settings
from tracestore.errors import (
    BadRequest,
    Overloaded,
    PayloadTooLarge,
    TracestoreError,
    UnsupportedMediaType,
)
from tracestore.ingest.otlp import ToolCallJoiner
from tracestore.ingest.otlp.logs import ContentJoiner, decode_logs_json, decode_logs_protobuf
from tracestore.ingest.otlp.prepare import MAX_REASONS, PrepareConfig, PreparePool, prepare
from tracestore.ingest.pipeline import Writer, decompress
from tracestore.ingest.write import TraceRows
from tracestore.store.engine import session_scope

router = APIRouter(tags=["otlp"])

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# google.rpc.Code values (google/rpc/code.proto) for the HTTP statuses we answer with.
_GRPC_CODES = {400: 3, 413: 3, 415: 3, 422: 3, 401: 16, 403: 7, 404: 5, 429: 8, 503: 14}
_GRPC_INTERNAL = 13
_joiner_lock = threading.Lock()


def status_pb(code: int, message: str) -> bytes:
    """A serialised ``google.rpc.Status{code=1, message=2}`` (hand-encoded: the message has
    two scalar fields, so no dependency on googleapis-common-protos is needed).

    >>> status_pb(3, "bad")
    b'\\x08\\x03\\x12\\x03bad'
    """
    msg = message.encode()
    out = bytearray()
    if code:
        out += b"\x08" + _varint(code)
    if msg:
        out += b"\x12" + _varint(len(msg)) + msg
    return bytes(out)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _encoding(content_type: str | None) -> str | None:
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in (PROTOBUF, "application/protobuf"):
        return "protobuf"
    if ctype == JSON:
        return "json"
    return None


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) to buffer more than ``limit`` bytes."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit} bytes "
                              "(setting max_body_bytes)", extra={"limit_bytes": limit})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes (setting "
                                  "max_body_bytes)", extra={"limit_bytes": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def _joiners(request: Request) -> tuple[ToolCallJoiner, ContentJoiner]:
    """The app's tool-call and log-content joiners (made on first use)."""
    state = request.app.state
    joiner = getattr(state, "otlp_joiner", None)
    if joiner is None:
        joiner = state.otlp_joiner = ToolCallJoiner()
    content = getattr(state, "otlp_content", None)
    if content is None:
        content = state.otlp_content = ContentJoiner()
    return joiner, content


def _export(writer: Writer, settings: Settings, joiner: ToolCallJoiner, content: ContentJoiner,
            pool: PreparePool | None, project_id: int, body: bytes,
            encoding: str) -> tuple[int, str]:
    """Prepare (in a worker process when there is a pool) and store one request; returns
    (rejected span count, error message)."""
    cfg = PrepareConfig.from_settings(settings)
    if pool is not None:
        p = pool.prepare(body, encoding, project_id, cfg)
    else:
        p = prepare(body, encoding, project_id, cfg)
    if len(content):  # spans whose GenAI log events came first
        with _joiner_lock:
            content.fill(project_id, p.rows, settings.max_content_chars, writer.redactor)
    if p.decided or p.executed:
        with _joiner_lock:
            joined = joiner.join(project_id, p.decided, p.executed)
        for trace_id, llm, tool in joined:
            p.rows.add_edge(project_id, trace_id, llm, tool, "tool_call")
    writer.write_rows(project_id, p.rows)
    reasons = p.reasons
    if p.rejected > MAX_REASONS:
        reasons.append(f"and {p.rejected - MAX_REASONS} more")
    return p.rejected, "; ".join(reasons)


def _success(encoding: str, rejected: int, message: str) -> Response:
    if encoding == "protobuf":
        resp = ExportTraceServiceResponse()
        if rejected:
            resp.partial_success.rejected_spans = rejected
            resp.partial_success.error_message = message
        return Response(resp.SerializeToString(), media_type=PROTOBUF)
    body: dict[str, Any] = {}
    if rejected:  # int64 is a decimal string in OTLP/JSON
        body["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
    return Response(orjson.dumps(body), media_type=JSON)


_CONTENT = {"schema": {"type": "string", "format": "binary"}}
_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An OTLP ExportTraceServiceRequest, binary protobuf or OTLP/JSON, "
        "optionally with Content-Encoding: gzip.",
        "content": {PROTOBUF: _CONTENT, JSON: {"schema": {"type": "object"}}},
    },
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "ExportTraceServiceResponse in the request's encoding; "
          "partialSuccess when spans were rejected",
          "content": {PROTOBUF: _CONTENT, JSON: {"schema": {"type": "object"}}}},
    **{code: {"description": desc + " (google.rpc.Status for protobuf requests)",
              "content": {PROTOBUF: _CONTENT, PROBLEM_JSON: {"schema": {"type": "object"}}}}
       for code, desc in ((400, "Undecodable body"), (413, "Body over max_body_bytes, before "
                          "or after decompression"), (415, "Unsupported Content-Type"),
                          (503, "Write path saturated; honour Retry-After"))},
}


@router.post("/v1/traces", summary="OTLP/HTTP trace export (protobuf or JSON)",
             openapi_extra=_OPENAPI, responses=_RESPONSES, response_class=Response)
@router.post("/api/public/otel/v1/traces", summary="OTLP/HTTP trace export (Langfuse path)",
             openapi_extra=_OPENAPI, responses=_RESPONSES, response_class=Response)
async def export_traces(
    request: Request, project: IngestProjectDep, settings: SettingsDep, writer: WriterDep
) -> Response:
    """Store the spans of an OTLP export. Spans of one trace may come in many requests and in
    any order; the same span sent twice is stored once. Langfuse SDK headers (Basic auth,
    ``x-langfuse-*``) are accepted."""
    encoding = _encoding(request.headers.get("content-type"))
    try:
        body, encoding = await _body(request, settings)
        joiner, content = _joiners(request)
        pool = getattr(request.app.state, "otlp_pool", None)
        rejected, message = await run_in_threadpool(
            _export, writer, settings, joiner, content, pool, project.id, body, encoding)
    except TracestoreError as exc:
        return _failure(exc, encoding)
    return _success(encoding, rejected, message)


def _failure(exc: TracestoreError, encoding: str | None) -> Response:
    """A protobuf request's error as a ``google.rpc.Status``; otherwise re-raised for the
    problem+json handler, with the Status's ``code`` and ``message`` members added."""
    code = _GRPC_CODES.get(exc.status, _GRPC_INTERNAL)
    if encoding != "protobuf":
        exc.extra.setdefault("code", code)
        exc.extra.setdefault("message", exc.detail)
        raise exc
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Overloaded) else {}
    return Response(status_pb(code, exc.detail), status_code=exc.status,
                    media_type=PROTOBUF, headers=headers)


async def _body(request: Request, settings: Settings) -> tuple[bytes, str]:
    """The decompressed body and its encoding (``protobuf``/``json``); 415 for another type."""
    encoding = _encoding(request.headers.get("content-type"))
    if encoding is None:
        raise UnsupportedMediaType(
            f"Content-Type {request.headers.get('content-type')!r} is not OTLP; send "
            f"{PROTOBUF} or {JSON}")
    limit = settings.max_body_bytes
    body = decompress(await _read_body(request, limit),
                      request.headers.get("content-encoding"), limit)
    return body, encoding


def _store_logs(writer: Writer, settings: Settings, joiner: ToolCallJoiner,
                content: ContentJoiner, project_id: int, body: bytes,
                encoding: str) -> tuple[int, int]:
    """Attach the GenAI events of a logs request to their nodes (stored or still to come);
    returns (events taken, other log records)."""
    decode = decode_logs_protobuf if encoding == "protobuf" else decode_logs_json
    events, other = decode(body)
    if not events:
        return 0, other
    with _joiner_lock:
        touched = content.add(project_id, events)
        # The writer's engine, in a transaction of its own: a few single-row UPDATEs (on
        # SQLite they wait for the writer's lock through busy_timeout).
        with session_scope(writer.engine) as session:
            decided = content.store(session, project_id, touched, settings.max_content_chars,
                                    writer.redactor)
        joined = joiner.join(project_id, decided, {}) if decided else []
    if joined:
        rows = TraceRows()
        for trace_id, llm, tool in joined:
            rows.add_edge(project_id, trace_id, llm, tool, "tool_call")
        writer.write_rows(project_id, rows)
    return len(events), other


def _partial(encoding: str, response: Any, field: str, count: int, message: str) -> Response:
    """An Export*ServiceResponse in the request's encoding, ``partialSuccess`` when
    ``count`` items (``field``: its proto field name) were not taken."""
    if encoding == "protobuf":
        if count or message:
            setattr(response.partial_success, field, count)
            response.partial_success.error_message = message
        return Response(response.SerializeToString(), media_type=PROTOBUF)
    body: dict[str, Any] = {}
    if count or message:  # int64 is a decimal string in OTLP/JSON
        camel = "".join(w.title() if i else w for i, w in enumerate(field.split("_")))
        body["partialSuccess"] = {camel: str(count), "errorMessage": message}
    return Response(orjson.dumps(body), media_type=JSON)


_LOGS_OPENAPI: dict[str, Any] = {"requestBody": {
    "required": True,
    "description": "An OTLP ExportLogsServiceRequest, binary protobuf or OTLP/JSON, "
    "optionally with Content-Encoding: gzip.",
    "content": {PROTOBUF: _CONTENT, JSON: {"schema": {"type": "object"}}},
}}
_METRICS_OPENAPI: dict[str, Any] = {"requestBody": {
    "required": True,
    "description": "An OTLP ExportMetricsServiceRequest (protobuf or OTLP/JSON).",
    "content": {PROTOBUF: _CONTENT, JSON: {"schema": {"type": "object"}}},
}}


def _answers(what: str, items: str) -> dict[int | str, dict[str, Any]]:
    return {**_RESPONSES, 200: {**_RESPONSES[200], "description": (
        f"{what} in the request's encoding; partialSuccess when {items} were not stored")}}


@router.post("/v1/logs", summary="OTLP/HTTP log export: GenAI content events",
             openapi_extra=_LOGS_OPENAPI,
             responses=_answers("ExportLogsServiceResponse", "log records"),
             response_class=Response)
async def export_logs(
    request: Request, project: IngestProjectDep, settings: SettingsDep, writer: WriterDep
) -> Response:
    """Attach GenAI content events (``gen_ai.*`` event names: user/system/assistant/tool
    messages, choices, inference details) to the nodes of their spans, whichever arrives
    first. Other log records are not stored: they are counted in ``partialSuccess``."""
    encoding: str | None = None
    try:
        body, encoding = await _body(request, settings)
        joiner, content = _joiners(request)
        _taken, other = await run_in_threadpool(
            _store_logs, writer, settings, joiner, content, project.id, body, encoding)
    except TracestoreError as exc:
        return _failure(exc, encoding)
    message = (f"{other} log records are not GenAI events (gen_ai.* with a span id) and "
               "were not stored") if other else ""
    return _partial(encoding, ExportLogsServiceResponse(), "rejected_log_records", other,
                    message)


def _data_points(body: bytes, encoding: str) -> int:
    """The data points of a metrics request (for ``rejectedDataPoints``)."""
    kinds = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
    n = 0
    if encoding == "protobuf":
        req = ExportMetricsServiceRequest()
        try:
            req.ParseFromString(body)
        except DecodeError as exc:
            raise BadRequest(f"not an OTLP ExportMetricsServiceRequest: {exc}") from None
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    which = m.WhichOneof("data")
                    if which in kinds:
                        n += len(getattr(m, which).data_points)
        return n
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    def items(d: Any, key: str) -> list[Any]:
        v = d.get(key) if isinstance(d, dict) else None
        return v if isinstance(v, list) else []

    for rm in items(doc, "resourceMetrics"):
        for sm in items(rm, "scopeMetrics"):
            for m in items(sm, "metrics"):
                for k in ("gauge", "sum", "histogram", "exponentialHistogram", "summary"):
                    n += len(items(m.get(k) if isinstance(m, dict) else None, "dataPoints"))
    return n


@router.post("/v1/metrics", summary="OTLP/HTTP metric export (accepted, not stored)",
             openapi_extra=_METRICS_OPENAPI,
             responses=_answers("ExportMetricsServiceResponse", "data points (always)"),
             response_class=Response)
async def export_metrics(request: Request, project: IngestProjectDep,
                         settings: SettingsDep) -> Response:
    """Metrics are not stored; the OTLP answer says so (``partialSuccess`` with every data
    point rejected), so SDKs that export metrics beside traces (Logfire, Traceloop) get a
    valid response and never retry."""
    encoding: str | None = None
    try:
        body, encoding = await _body(request, settings)
        n = _data_points(body, encoding)
    except TracestoreError as exc:
        return _failure(exc, encoding)
    return _partial(encoding, ExportMetricsServiceResponse(), "rejected_data_points", n,
                    "tracestore does not store metrics; send traces to /v1/traces")
