"""One native JSON request (``POST /api/v1/traces``) → the rows the writer stores, in an
ingest worker process, as OTLP bodies are (:mod:`tracestore.ingest.otlp.prepare`).

Decoding, per-item validation (limits, ``TraceIn``), redaction, capping, hashing and pricing
by the library's rates are pure functions of the body and a few settings, so the server's
worker processes do them while the single writer stores earlier requests; the writer then
runs the statements only. With ``ingest_workers=0`` (and in the CLI, which has the items
already decoded) the same functions run in the calling thread: the same rows and the same
per-item errors (422 naming item and field) either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracestore.config import Settings
from tracestore.ingest.otlp.prepare import PrepareConfig, pricer_for, redactor_for
from tracestore.ingest.pipeline import decode_json, validate_items
from tracestore.ingest.write import TraceRows, build_rows
from tracestore.limits import Limits
from tracestore.schemas import ItemError, TraceIn

__all__ = ["PreparedNative", "prepare_native", "prepare_native_items"]


@dataclass(slots=True)
class PreparedNative:
    """Rows of the valid items, how many items were valid, and the errors of the others."""

    rows: TraceRows
    accepted_traces: int = 0
    errors: list[ItemError] = field(default_factory=list)


def prepare_native_items(data: Any, project_id: int, cfg: PrepareConfig) -> PreparedNative:
    """Decoded items (one object or a list) → validated, redacted, capped, hashed rows, the
    nodes priced by the library's rates and encoded for the node upsert."""
    limits = cfg.limits if cfg.limits is not None else Limits.from_settings(Settings())
    traces, errors = validate_items(data, TraceIn, max_nodes=cfg.max_nodes_per_trace,
                                    limits=limits)
    rows = build_rows(project_id, traces, max_content_chars=cfg.max_content_chars,
                      redactor=redactor_for(cfg))
    rows.encode_nodes(pricer_for(cfg))
    return PreparedNative(rows, len(traces), errors)


def prepare_native(body: bytes, ndjson: bool, project_id: int,
                   cfg: PrepareConfig) -> PreparedNative:
    """A request body (JSON, or one JSON value a line when ``ndjson``) → :class:`PreparedNative`.
    An undecodable body raises :class:`~tracestore.errors.BadRequest` (400)."""
    # bounded before anything is built: values, items and nodes per request (cfg.limits)
    data = decode_json(body, cfg.limits, lines=ndjson)
    return prepare_native_items(data, project_id, cfg)
