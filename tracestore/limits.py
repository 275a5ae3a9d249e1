"""Input limits on decoded ingest items, checked before validation so a hostile item costs
one bounded walk and is rejected with 422 naming the limit (the setting that sets it).

Limits here: keys per node ``attributes`` and per trace ``metadata`` (``max_attributes``) and
the length of any single string (``max_string_chars``), NUL characters, nesting deeper than
``MAX_DEPTH`` levels and integers outside 64 bits (what orjson, hence storage and every
response, can represent). Body bytes (before and after decompression) are checked in
:func:`tracestore.ingest.pipeline.decompress`; nodes per trace in
:func:`tracestore.ingest.pipeline.validate_items`.

>>> lim = Limits(max_attributes=2, max_string_chars=10)
>>> [e.msg for e in lim.errors(0, {"trace_id": "t", "nodes": [{"attributes": {"a": "x" * 11}}]})]
['string of 11 characters exceeds the limit of 10 (setting max_string_chars)']
>>> lim.errors(0, {"trace_id": "t", "metadata": {"a": 1, "b": 2, "c": 3}})[0].loc
['metadata']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tracestore.config import Settings
from tracestore.errors import PayloadTooLarge
from tracestore.schemas import ItemError

__all__ = ["MAX_DEPTH", "Limits"]

# Levels of JSON nesting (objects and arrays) in one item, counted from the item itself: a
# node's ``attributes`` sit 3 levels down (item → nodes → node). 254 is orjson's own limit,
# and orjson stores every value, so the one orjson pass below finds every deeper item for free;
# values at the limit are served back intact (tests/tracestore/test_hostile_input.py).
MAX_DEPTH = 254
_INT64 = (-(2**63), 2**64 - 1)
# A JSON string, escapes included (the unrolled form: no backtracking per character).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def _default(name: str) -> int:
    value: int = Settings.model_fields[name].default
    return value


# Bytes that start a value after the first: a comma, an opened container (a newline in NDJSON).
_NOT_MARKS = bytes(b for b in range(256) if b not in b",{[")
_NOT_MARKS_NDJSON = bytes(b for b in range(256) if b not in b",{[\n")


def _values(body: bytes, lines: bool) -> int:
    """Commas + containers opened (+ NDJSON lines) + 1, in one ``bytes.translate`` pass
    (~1 GB/s). orjson builds one value at the top and, in every non-empty container, one more
    than its commas, so this less the empty ``{}`` and ``[]`` bounds the values; text inside
    strings only adds (a ``{}`` there also adds its ``{``), so it over-counts unless the
    strings were cut out."""
    return len(body.translate(None, _NOT_MARKS_NDJSON if lines else _NOT_MARKS)) + 1


@dataclass(frozen=True)
class Limits:
    """The per-item limits of one deployment (from :class:`~tracestore.config.Settings`)."""

    max_attributes: int
    max_string_chars: int
    # per request (settings max_values_per_request, max_items_per_request,
    # max_nodes_per_request; their defaults when not given)
    max_values: int = _default("max_values_per_request")
    max_items: int = _default("max_items_per_request")
    max_nodes: int = _default("max_nodes_per_request")

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_attributes, settings.max_string_chars,
                   settings.max_values_per_request, settings.max_items_per_request,
                   settings.max_nodes_per_request)

    def check_body(self, body: bytes, *, lines: bool = False) -> None:
        """Refuse (413) a decompressed JSON body (NDJSON when ``lines``) that would decode
        into more than ``max_values`` values, before orjson builds any of them: 2 KB of gzip
        can hold a million ``{}``. Counts ``,``, ``{``, ``[`` (and newlines of NDJSON) in C;
        only when that bound is over the limit are the strings cut out for an exact count.

        >>> Limits(8, 8, max_values=4).check_body(b'[{"a,b,c,d": 1}, 2]')
        >>> Limits(8, 8, max_values=4).check_body(b'[{}, {}, {}, {}]')  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        tracestore.errors.PayloadTooLarge: the body holds about 5 JSON values, over the limit ...
        """
        if (len(body) + 1) // 2 <= self.max_values:  # each value takes a byte and a comma
            return
        n = _values(body, lines)
        if n > self.max_values:
            n -= body.count(b"{}") + body.count(b"[]")
        if n > self.max_values and b'"' in body:
            cut = _STRING.sub(b'""', body)
            n = _values(cut, lines) - cut.count(b"{}") - cut.count(b"[]")
        if n > self.max_values:
            raise PayloadTooLarge(
                f"the body holds about {n} JSON values, over the limit of {self.max_values} per "
                "request (setting max_values_per_request)",
                extra={"limit": "max_values_per_request", "limit_value": self.max_values})

    def check_items(self, items: list[Any]) -> None:
        """Refuse (413) a decoded native request of more than ``max_items`` items or
        ``max_nodes`` nodes in all, before any item is validated."""
        if len(items) > self.max_items:
            raise PayloadTooLarge(
                f"{len(items)} items in one request exceed the limit of {self.max_items} "
                "(setting max_items_per_request)",
                extra={"limit": "max_items_per_request", "limit_value": self.max_items})
        nodes = sum(len(n) for i in items if isinstance(i, dict)
                    and isinstance(n := i.get("nodes"), list))
        if nodes > self.max_nodes:
            raise PayloadTooLarge(
                f"{nodes} nodes in one request exceed the limit of {self.max_nodes} "
                "(setting max_nodes_per_request)",
                extra={"limit": "max_nodes_per_request", "limit_value": self.max_nodes})

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
        if dumped is None:
            problem = self._shape(item)
            if problem is not None:
                err(*problem)
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
    def _shape(root: Any) -> tuple[list[str | int], str] | None:
        """Where ``root`` nests deeper than ``MAX_DEPTH`` or holds an integer orjson cannot
        write (beyond 64 bits), with the message; None when neither."""
        stack: list[tuple[Any, list[str | int]]] = [(root, [])]
        while stack:
            value, path = stack.pop()
            if isinstance(value, dict | list):
                if len(path) >= MAX_DEPTH:
                    return ([*path[:8], "…"], f"JSON nested deeper than {MAX_DEPTH} levels "
                            "(the limit per item)")
                pairs = value.items() if isinstance(value, dict) else enumerate(value)
                stack.extend((v, [*path, k]) for k, v in pairs
                             if isinstance(v, dict | list | int))
            elif (isinstance(value, int) and not isinstance(value, bool)
                  and not _INT64[0] <= value <= _INT64[1]):
                return path, "integer outside the 64-bit range"
        return None

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
                    if isinstance(v, (str, dict, list, tuple)):
                        stack.append((v, [*path, k]))
            elif isinstance(value, list | tuple):
                stack.extend((v, [*path, i]) for i, v in enumerate(value)
                             if isinstance(v, (str, dict, list, tuple)))
        return None

    def text_problem(self, value: Any) -> str | None:
        """What is wrong with the strings in ``value`` (any JSON-like value; tuples count as
        arrays): one over ``max_string_chars`` or one holding NUL; None when neither. The
        check OTLP spans get, as native items get it in :meth:`errors`."""
        try:  # one C pass decides whether a walk is needed, as in errors()
            dumped: bytes | None = orjson.dumps(value)
        except TypeError:
            dumped = None
        limit = self.max_string_chars
        if dumped is None or len(dumped) > limit:
            where = self._find(value, lambda s: len(s) > limit)
            if where is not None:
                return (f"{'.'.join(map(str, where[0])) or 'name'}: string of {len(where[1])} "
                        f"characters exceeds the limit of {limit} (setting max_string_chars)")
        if dumped is None or b"\\u0000" in dumped:
            where = self._find(value, lambda s: "\x00" in s)
            if where is not None:
                return (f"{'.'.join(map(str, where[0])) or 'name'}: text must not contain NUL "
                        "(\\u0000) characters (PostgreSQL cannot store them)")
        return None
