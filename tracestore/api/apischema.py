"""The committed API contract: ``api_schema/openapi.json`` plus JSON Schemas of the ingest
bodies. ``tracestore export-schema`` writes them; a test fails when they drift from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tracestore.config import Settings
from tracestore.digest.jsonout import digest_json_schema
from tracestore.schemas import OutcomeIn, TraceIn

__all__ = ["build_schemas", "write_schemas"]


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
