"""The digest as JSON, and its JSON Schema (committed as ``api_schema/digest.schema.json``).

One source for both: the frozen dataclasses of :mod:`analyzers.digest_types`, serialised and
described by pydantic's ``TypeAdapter``, so the file and the output cannot disagree.

>>> from analyzers.digest import build_digest
>>> from analyzers.digest_types import WeekAggregates
>>> d = build_digest(project="p", week="2026-W47", current=WeekAggregates(),
...                  previous=WeekAggregates(), findings=())
>>> digest_to_dict(d)["headline"]["spend_usd"], digest_to_dict(d)["schema"]
(0.0, 'tracestore.digest/1')
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from pydantic import TypeAdapter

from analyzers.digest_types import Digest

__all__ = ["SCHEMA_ID", "digest_json_schema", "digest_to_dict", "render_json"]

# Bumped when a field is renamed or removed; added fields keep the version.
SCHEMA_ID = "tracestore.digest/1"


@cache
def _adapter() -> TypeAdapter[Digest]:
    return TypeAdapter(Digest)


def digest_to_dict(digest: Digest) -> dict[str, Any]:
    """JSON-safe dict of the digest, with a ``schema`` tag first."""
    body: dict[str, Any] = _adapter().dump_python(digest, mode="json")
    return {"schema": SCHEMA_ID, **body}


def render_json(digest: Digest) -> bytes:
    """Indented JSON with sorted keys (stable bytes for the exact-file tests)."""
    return orjson.dumps(digest_to_dict(digest),
                        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def digest_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of :func:`digest_to_dict`'s output."""
    schema = _adapter().json_schema(mode="serialization")
    schema["properties"] = {"schema": {"const": SCHEMA_ID, "title": "Schema"},
                            **schema["properties"]}
    schema["required"] = ["schema", *schema["required"]]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_ID, **schema}
