"""The one encoder of the store's JSON columns (nodes, findings, summaries).

Values are written as orjson writes them: compact, and a float that is not a finite number
(NaN, ±inf) as ``null``, so it reads back as ``None`` on both backends (JSON has no NaN, and
PostgreSQL's ``json`` type rejects the stdlib's ``NaN`` token). What orjson refuses (an
integer beyond 64 bits, a dict key that is not a string, an object of another type) goes
through the stdlib with ``default=str``, non-finite floats made ``None`` first, so the rule
holds on that path too.

>>> json_text({"a": [1, 2.5, None], "b": float("nan")})
'{"a":[1,2.5,null],"b":null}'
>>> json_text({1: 2**70, "x": float("inf")})
'{"1": 1180591620717411303424, "x": null}'
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

__all__ = ["json_text"]


def json_text(value: Any) -> str:
    """``value`` as the JSON text stored in a JSON column (non-finite floats as ``null``)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(_finite(value), default=str)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (containers copied)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
