"""Input limits on decoded ingest items, checked before validation so a hostile item costs
one bounded walk and is rejected with 422 naming the limit (the setting that sets it).

Limits here: keys per node ``attributes`` and per trace ``metadata`` (``max_attributes``) and
the length of any single string (``max_string_chars``). Body bytes (before and after
decompression) are checked in :func:`tracestore.ingest.decompress`; nodes per trace in
:func:`tracestore.ingest.validate_items`.

>>> lim = Limits(max_attributes=2, max_string_chars=10)
>>> [e.msg for e in lim.errors(0, {"trace_id": "t", "nodes": [{"attributes": {"a": "x" * 11}}]})]
['string of 11 characters exceeds the limit of 10 (setting max_string_chars)']
>>> lim.errors(0, {"trace_id": "t", "metadata": {"a": 1, "b": 2, "c": 3}})[0].loc
['metadata']
"""

from __future__ import annotations

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
        where = None if self._small(item) else self._long_string(item)
        if where is not None:
            loc, n = where
            err(loc, f"string of {n} characters exceeds the limit of {self.max_string_chars} "
                     "(setting max_string_chars)")
        return out

    def _small(self, item: Any) -> bool:
        """True when the whole item, as JSON, is within the string limit: then no string in it
        can exceed the limit and the walk below is skipped (it costs ~3 µs per value)."""
        try:
            return len(orjson.dumps(item)) <= self.max_string_chars
        except TypeError:  # not plain JSON (e.g. a >64-bit int): walk it
            return False

    def _count(self, value: Any, loc: list[str | int], what: str, err: Any) -> None:
        if isinstance(value, dict) and len(value) > self.max_attributes:
            err(loc, f"{len(value)} keys in {what} exceed the limit of {self.max_attributes} "
                     "(setting max_attributes)")

    def _long_string(self, root: Any) -> tuple[list[str | int], int] | None:
        """Path and length of the first over-long string (key or value), depth-first."""
        limit = self.max_string_chars
        stack: list[tuple[Any, list[str | int]]] = [(root, [])]
        while stack:
            value, path = stack.pop()
            if isinstance(value, str):
                if len(value) > limit:
                    return path, len(value)
            elif isinstance(value, dict):
                for k, v in value.items():
                    if isinstance(k, str) and len(k) > limit:
                        return [*path, k[:40] + "…"], len(k)
                    if isinstance(v, (str, dict, list)):
                        stack.append((v, [*path, k]))
            elif isinstance(value, list):
                stack.extend((v, [*path, i]) for i, v in enumerate(value)
                             if isinstance(v, (str, dict, list)))
        return None
