"""OTLP/HTTP trace ingest: ``POST /v1/traces`` and the Langfuse alias
``POST /api/public/otel/v1/traces``.

Responses follow the OTLP spec (shared/reference/conventions.md §1.2) where clients depend on
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
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from starlette.concurrency import run_in_threadpool

from tracestore.api.deps import IngestProjectDep, SettingsDep, WriterDep
from tracestore.api.problems import PROBLEM_JSON
from tracestore.config import Settings
from tracestore.errors import Overloaded, PayloadTooLarge, TracestoreError, UnsupportedMediaType
from tracestore.ingest.otlp import ToolCallJoiner
from tracestore.ingest.otlp.prepare import MAX_REASONS, PrepareConfig, PreparePool, prepare
from tracestore.ingest.pipeline import Writer, decompress

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
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit} bytes",
                              extra={"limit_bytes": limit})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes",
                                  extra={"limit_bytes": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def _export(writer: Writer, settings: Settings, joiner: ToolCallJoiner,
            pool: PreparePool | None, project_id: int, body: bytes,
            encoding: str) -> tuple[int, str]:
    """Prepare (in a worker process when there is a pool) and store one request; returns
    (rejected span count, error message)."""
    cfg = PrepareConfig.from_settings(settings)
    if pool is not None:
        p = pool.prepare(body, encoding, project_id, cfg)
    else:
        p = prepare(body, encoding, project_id, cfg)
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
        if encoding is None:
            raise UnsupportedMediaType(
                f"Content-Type {request.headers.get('content-type')!r} is not OTLP; send "
                f"{PROTOBUF} or {JSON}")
        limit = settings.max_body_bytes
        body = decompress(await _read_body(request, limit),
                          request.headers.get("content-encoding"), limit)
        joiner = getattr(request.app.state, "otlp_joiner", None)
        if joiner is None:
            joiner = request.app.state.otlp_joiner = ToolCallJoiner()
        pool = getattr(request.app.state, "otlp_pool", None)
        rejected, message = await run_in_threadpool(
            _export, writer, settings, joiner, pool, project.id, body, encoding)
    except TracestoreError as exc:
        code = _GRPC_CODES.get(exc.status, _GRPC_INTERNAL)
        if encoding != "protobuf":
            exc.extra.setdefault("code", code)
            exc.extra.setdefault("message", exc.detail)
            raise
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Overloaded) else {}
        return Response(status_pb(code, exc.detail), status_code=exc.status,
                        media_type=PROTOBUF, headers=headers)
    return _success(encoding, rejected, message)
