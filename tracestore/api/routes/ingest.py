"""Native JSON ingest: ``POST /api/v1/traces`` and ``POST /api/v1/outcomes``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from tracestore.api.deps import IngestProjectDep, SettingsDep, WriterDep
from tracestore.api.problems import PROBLEM_RESPONSES
from tracestore.config import Settings
from tracestore.errors import UnsupportedMediaType, ValidationFailed
from tracestore.ingest.native import prepare_native
from tracestore.ingest.otlp.prepare import PrepareConfig, PreparePool
from tracestore.ingest.pipeline import (
    IngestReport,
    Writer,
    decode_json,
    decompress,
    listed_errors,
    validate_items,
)
from tracestore.limits import Limits
from tracestore.schemas import IngestResult, OutcomeIn, TraceIn

router = APIRouter(prefix="/api/v1", tags=["ingest"])


# An outcome posted on its own is found by task_id or trace_id, so it needs one of them (as
# an outcome inside a trace does not): said in the contract, so no schema-valid body is refused.
_KEYED = {"anyOf": [{"required": [k], "properties": {k: {"type": "string"}}}
                    for k in ("task_id", "trace_id")]}


def _list_or_one(model: type[Any], *also: dict[str, Any]) -> dict[str, Any]:
    ref: dict[str, Any] = {"$ref": f"#/components/schemas/{model.__name__}"}
    if also:
        ref = {"allOf": [ref, *also]}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"anyOf": [ref, {"type": "array", "items": ref}]}
                }
            },
        }
    }


async def read_body(request: Request, limit: int) -> tuple[bytes, bool]:
    """The decompressed JSON body, and whether it is NDJSON (one value a line)."""
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", "application/x-ndjson", "text/json", ""):
        raise UnsupportedMediaType(
            f"Content-Type {ctype!r} is not accepted here; send application/json"
        )
    body = decompress(await request.body(), request.headers.get("content-encoding"), limit)
    return body, ctype == "application/x-ndjson"


async def read_json_body(request: Request, limit: int, limits: Limits | None = None) -> Any:
    body, ndjson = await read_body(request, limit)
    return decode_json(body, limits, lines=ndjson)


def _ingest(writer: Writer, settings: Settings, pool: PreparePool | None, project_id: int,
            body: bytes, ndjson: bool) -> IngestReport:
    """Decode, validate, redact and price the body in an ingest worker process (in this
    thread without one), then store the rows with the single writer."""
    cfg = PrepareConfig.from_settings(settings)
    if pool is not None:
        prepared = pool.run(prepare_native, body, ndjson, project_id, cfg)
    else:
        prepared = prepare_native(body, ndjson, project_id, cfg)
    return writer.store_native(project_id, prepared.rows, prepared.accepted_traces,
                               prepared.errors)


@router.post(
    "/traces",
    response_model=IngestResult,
    summary="Ingest native traces (one object or a list)",
    openapi_extra=_list_or_one(TraceIn),
    responses={**PROBLEM_RESPONSES, 413: PROBLEM_RESPONSES[400] | {"description": "Too large"},
               415: PROBLEM_RESPONSES[400] | {"description": "Unsupported media type"}},
)
async def post_traces(
    request: Request, project: IngestProjectDep, settings: SettingsDep, writer: WriterDep
) -> Response:
    """Store traces. Parts of one trace may arrive in many requests, in any order; the same
    node sent twice is stored once (a changed node replaces the old one). Invalid items are
    answered with 422 naming the item and field, while the valid ones are still stored."""
    body, ndjson = await read_body(request, settings.max_body_bytes)
    pool = getattr(request.app.state, "otlp_pool", None)  # the OTLP and native workers
    report = await run_in_threadpool(_ingest, writer, settings, pool, project.id, body, ndjson)
    report.raise_if_rejected()
    return Response(
        orjson.dumps(IngestResult(accepted_traces=report.accepted_traces,
                                  accepted_nodes=report.accepted_nodes).model_dump()),
        media_type="application/json",
    )


@router.post(
    "/outcomes",
    response_model=dict[str, int],
    summary="Record business outcomes (one or a list), keyed by task_id",
    openapi_extra=_list_or_one(OutcomeIn, _KEYED),
    responses=PROBLEM_RESPONSES,
)
async def post_outcomes(
    request: Request, project: IngestProjectDep, settings: SettingsDep, writer: WriterDep
) -> dict[str, int]:
    """Outcomes may arrive before, with, or long after their traces; posting one again for
    the same ``task_id`` updates it."""
    data = await read_json_body(request, settings.max_body_bytes, writer.limits)
    outcomes, errors = validate_items(data, OutcomeIn, limits=writer.limits)
    missing = [i for i, o in enumerate(outcomes) if not (o.task_id or o.trace_id)]
    stored = await run_in_threadpool(
        writer.write_outcomes, project.id, [o for o in outcomes if o.task_id or o.trace_id]
    )
    if errors or missing:
        raise ValidationFailed(
            f"{len({e.item for e in errors}) + len(missing)} outcome(s) rejected, {stored} stored",
            extra={
                "accepted": stored,
                **listed_errors([*errors, *({"item": i, "loc": ["task_id"],
                                             "msg": "task_id or trace_id is required"}
                                            for i in missing)]),
            },
        )
    return {"accepted": stored}
