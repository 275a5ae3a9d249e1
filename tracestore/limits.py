"""Input limits on decoded ingest items, checked before validation so a hostile item costs
one bounded walk and is rejected with 422 naming the limit (the setting that sets it).

Limits here: keys per node ``attributes`` and per trace ``metadata`` (``max_attributes``) and
the length of any single string (``max_string_chars``). Body bytes (before and after
decompression) are checked in :func:`tracestore.ingest.pipeline.decompress`; nodes per trace in
:func:`tracestore.ingest.pipeline.validate_items`.

>>> lim = Limits(max_attributes=2, max_string_chars=10)
>>> [e.msg for e in lim.errors(0, {"trace_id": "t", "nodes": [{"attributes": {"a": "x" * 11}}]})]
['string of 11 characters exceeds the limit of 10 (setting max_string_chars)']
>>> lim.errors(0, {"trace_id": "t", "metadata": {"a": 1, "b": 2, "c": 3}})[0].loc
['metadata']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tracestore.config import Settings
from tracestore.schemas import ItemError

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """The per-item limits of one deployment (from :class:`~tracestore.config.Settings`)."""

    max_attributes: int
    max_string_chars: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_attributes, settings.max_string_chars)

    def errors(self, index: int, item: dict[str, Any]) -> list[ItemError]:
        """Every limit ``item`` (a decoded trace or outcome object) breaks; [] when none."""
        tid = item.get("trace_id")
        tid = tid if isinstance(tid, str) and len(tid) <= 128 else None
        out: list[ItemError] = []

        def err(loc: list[str | int], msg: str) -> None:
            out.append(ItemError(item=index, trace_id=tid, loc=loc, msg=msg))

        self._count(item.get("metadata"), ["metadata"], "a trace's metadata", err)
        nodes = item.get("nodes")
        if isinstance(nodes, list):
            for j, node in enumerate(nodes):
                if isinstance(node, dict):
                    self._count(node.get("attributes"), ["nodes", j, "attributes"],
                                "a node's attributes", err)
        # One orjson pass decides whether the walks below (~3 µs per value) are needed: no
        # string can be longer than the whole item as JSON, and orjson writes NUL as \u0000.
        try:
            dumped: bytes | None = orjson.dumps(item)
        except TypeError:  # not plain JSON (e.g. a >64-bit int): walk it
            dumped = None
        limit = self.max_string_chars
        if dumped is None or len(dumped) > limit:
            where = self._find(item, lambda s: len(s) > limit)
            if where is not None:
                loc, text = where
                err(loc, f"string of {len(text)} characters exceeds the limit of {limit} "
                         "(setting max_string_chars)")
        if dumped is None or b"\\u0000" in dumped:
            where = self._find(item, lambda s: "\x00" in s)
            if where is not None:
                err(where[0], "text must not contain NUL (\\u0000) characters "
                              "(PostgreSQL cannot store them)")
        return out

    def _count(self, value: Any, loc: list[str | int], what: str, err: Any) -> None:
        if isinstance(value, dict) and len(value) > self.max_attributes:
            err(loc, f"{len(value)} keys in {what} exceed the limit of {self.max_attributes} "
                     "(setting max_attributes)")

    @staticmethod
    def _find(root: Any, bad: Callable[[str], bool]) -> tuple[list[str | int], str] | None:
        """Path to the first string (key or value) for which ``bad`` holds, depth-first."""
        stack: list[tuple[Any, list[str | int]]] = [(root, [])]
        while stack:
            value, path = stack.pop()
            if isinstance(value, str):
                if bad(value):
                    return path, value
            elif isinstance(value, dict):
                for k, v in value.items():
                    if isinstance(k, str) and bad(k):
                        return [*path, k[:40].replace("\x00", "") + "…"], k
                    if isinstance(v, (str, dict, list)):
                        stack.append((v, [*path, k]))
            elif isinstance(value, list):
                stack.extend((v, [*path, i]) for i, v in enumerate(value)
                             if isinstance(v, (str, dict, list)))
        return None
