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


_NO_NUL = "^[^\\u0000]*$"
# Any JSON value without NUL in its strings or keys (docs/limits.md: NUL is refused at ingest),
# for the free-form fields (args, result, attributes, metadata).
_JSON = {"anyOf": [{"type": ["null", "boolean", "number"]},
                   {"type": "string", "pattern": _NO_NUL},
                   {"type": "array", "items": {"$ref": "#/components/schemas/NulFreeJson"}},
                   {"type": "object", "propertyNames": {"pattern": _NO_NUL},
                    "additionalProperties": {"$ref": "#/components/schemas/NulFreeJson"}}]}


def _no_nul(node: Any) -> Any:
    """The ingest schemas as accepted: no string may hold NUL, so every string schema gets a
    pattern saying so, and free-form values become ``NulFreeJson`` (a schema-valid body is then
    never refused for a NUL)."""
    if isinstance(node, list):
        return [_no_nul(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _no_nul(v) for k, v in node.items()}
    if out.get("type") == "string" and "format" not in out:
        out["pattern"] = out["pattern"].replace("[^", "[^\\u0000") if "pattern" in out \
            else _NO_NUL
    if out.get("additionalProperties") is True:
        out["additionalProperties"] = {"$ref": "#/components/schemas/NulFreeJson"}
        out["propertyNames"] = {**out.get("propertyNames", {}), "pattern": _NO_NUL}
    return out


def ingest_components() -> dict[str, Any]:
    """``TraceIn``, ``OutcomeIn`` and the models inside them as OpenAPI components: the ingest
    routes read their bodies themselves (to validate item by item) and reference these by
    ``$ref``, so FastAPI does not emit them."""
    out: dict[str, Any] = {}
    for model in (TraceIn, OutcomeIn):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    out = {k: _no_nul(v) for k, v in out.items()}
    out["NulFreeJson"] = _JSON
    for name in ("NodeIn",):  # Any-typed fields: JSON without NUL
        for field in ("args", "result"):
            out[name]["properties"][field] = {
                **out[name]["properties"][field], "$ref": "#/components/schemas/NulFreeJson"}
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
