"""The committed API contract: ``api_schema/openapi.json`` plus JSON Schemas of the ingest
bodies. ``tracestore export-schema`` writes them; a test fails when they drift from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tracestore.config import Settings
from tracestore.digest.jsonout import digest_json_schema
from tracestore.schemas import OutcomeIn, TraceIn

__all__ = ["build_schemas", "document_ingest_bodies", "ingest_components", "write_schemas"]


def ingest_components() -> dict[str, Any]:
    """``TraceIn``, ``OutcomeIn`` and the models inside them as OpenAPI components: the ingest
    routes read their bodies themselves (to validate item by item) and reference these by
    ``$ref``, so FastAPI does not emit them."""
    out: dict[str, Any] = {}
    for model in (TraceIn, OutcomeIn):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def document_ingest_bodies(app: Any) -> None:
    """Add :func:`ingest_components` to ``app``'s OpenAPI document, so every ``$ref`` in it
    resolves (clients and schemathesis generate ingest bodies from them)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        doc: dict[str, Any] = build()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in ingest_components().items():
            schemas.setdefault(name, schema)
        return doc

    app.openapi = openapi


def build_schemas() -> dict[str, Any]:
    """File name → JSON document."""
    from tracestore.api import create_app

    app = create_app(Settings(database_url="sqlite://"))
    return {
        "openapi.json": app.openapi(),
        "trace.schema.json": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                              **TraceIn.model_json_schema()},
        "outcome.schema.json": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                                **OutcomeIn.model_json_schema()},
        "digest.schema.json": digest_json_schema(),
    }


def dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc in build_schemas().items():
        path = out_dir / name
        path.write_bytes(dumps(doc))
        written.append(path)
    return written
