"""OTLP/HTTP trace request bodies → :class:`Span` records, for both encodings.

* ``application/x-protobuf`` is decoded with the ``opentelemetry-proto`` generated classes.
* ``application/json`` is parsed with orjson and walked here. protobuf's ``json_format.Parse``
  is never used: it base64-decodes the hex ``traceId`` and silently yields 24 wrong bytes
  (docs/ingest.md, "OTLP ingest").

The JSON walker follows the OTLP/JSON encoding rules of the OTLP spec and is lenient where real
exporters deviate: ids are hex of either case *or* base64; 64-bit ints are strings or numbers;
enums are ints or their names; keys are lowerCamelCase or the proto field names.

A span with a malformed id is *rejected* (counted for ``partialSuccess``), not fatal; a body
that is not an ``ExportTraceServiceRequest`` at all raises :class:`~tracestore.errors.BadRequest`.

>>> spans, rejected = decode_json_request(b'{"resourceSpans":[{"scopeSpans":[{"spans":[{'
...     b'"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",'
...     b'"name":"chat","kind":3,"startTimeUnixNano":"1544712660000000000"}]}]}]}')
>>> spans[0].trace_id, spans[0].span_id, spans[0].kind, spans[0].start, rejected
('5b8efff798038103d269b633813fc60c', 'eee19b7ec3c1b174', 3, 1544712660.0, [])
"""

from __future__ import annotations

import base64
import binascii
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tracestore.errors import BadRequest, PayloadTooLarge
from tracestore.ingest.otlp.bounds import check_protobuf
from tracestore.limits import Limits

__all__ = [
    "Rejected",
    "Span",
    "decode_json_request",
    "decode_protobuf_request",
    "parse_id",
    "screen_text",
]

_HEX = frozenset(string.hexdigits)
_TRACE_ID_BYTES, _SPAN_ID_BYTES = 16, 8  # trace.proto: trace_id is 16 bytes, span_id 8
_ZERO_IDS = {_TRACE_ID_BYTES: bytes(_TRACE_ID_BYTES), _SPAN_ID_BYTES: bytes(_SPAN_ID_BYTES)}
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
# 9999-12-31T23:59:59Z in ns: the last instant Python's datetime (hence ISO output) can show.
_MAX_NANOS = 253_402_300_799 * 10**9
_SPAN_KINDS = {"UNSPECIFIED": 0, "INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4,
               "CONSUMER": 5}
_STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}


@dataclass(slots=True)
class Span:
    """One decoded span, ids as lowercase hex, times as epoch seconds."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: int
    start: float | None
    end: float | None
    attributes: dict[str, Any]
    status_code: int = 0
    status_message: str = ""
    # Read-only; the protobuf decoder leaves the shared empty tuple when a span has none (most
    # have none: two lists a span fewer for the garbage collector to track).
    events: Sequence[tuple[str, float | None, dict[str, Any]]] = ()
    links: Sequence[tuple[str, str, dict[str, Any]]] = ()
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""


@dataclass(slots=True, frozen=True)
class Rejected:
    """A span that could not be taken, and why (reported in ``partialSuccess``)."""

    reason: str


def parse_id(raw: Any, nbytes: int) -> str | None:
    """An OTLP id as lowercase hex: hex of either case, or base64 of ``nbytes`` bytes.

    Returns ``None`` for an absent/empty id; raises ``ValueError`` for a malformed or all-zero
    one (trace.proto: an all-zero id is invalid).

    >>> parse_id("EEE19B7EC3C1B174", 8), parse_id("7uGbfsPBsXQ=", 8), parse_id("", 8)
    ('eee19b7ec3c1b174', 'eee19b7ec3c1b174', None)
    """
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ValueError(f"id must be a string, not {type(raw).__name__}")
    if len(raw) == 2 * nbytes and _HEX.issuperset(raw):
        out = raw.lower()
    else:
        try:
            b = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_" if (
                "-" in raw or "_" in raw) else None, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"id {raw[:40]!r} is neither {2 * nbytes} hex digits nor base64 "
                             f"of {nbytes} bytes") from None
        if len(b) != nbytes:
            raise ValueError(f"id {raw[:40]!r} decodes to {len(b)} bytes, not {nbytes}")
        out = b.hex()
    if out.count("0") == len(out):
        raise ValueError("an all-zero id is invalid")
    return out


# ---------------------------------------------------------------------------- protobuf


def _pb_value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()  # as proto3 JSON would show it
    return None  # string_value_strindex: used by OTLP profiles only


def _pb_attrs(kvs: Any) -> dict[str, Any]:
    # Most attribute values are non-empty strings: reading ``string_value`` first (it is ""
    # unless the oneof holds a string) spares them WhichOneof and a call, ~15% of this loop.
    out = {}
    for kv in kvs:
        v = kv.value
        text = v.string_value
        out[kv.key] = text if text else _pb_value(v)
    return out


def _pb_id(raw: bytes, nbytes: int) -> str | None:
    if not raw:
        return None
    if len(raw) != nbytes:
        raise ValueError(f"id is {len(raw)} bytes, not {nbytes}")
    if raw == _ZERO_IDS[nbytes]:  # a compare, where any() steps through the bytes in Python ints
        raise ValueError("an all-zero id is invalid")
    return raw.hex()


def _secs(nanos: int) -> float | None:
    if nanos < 0 or nanos > _MAX_NANOS:
        raise ValueError(f"timestamp {nanos} ns is out of range")
    return nanos / 1e9 if nanos else None


def _event_secs(nanos: int) -> float | None:
    try:
        return _secs(nanos)
    except ValueError:  # an event's bad time costs the time, not the span
        return None


def _too_many(what: str, n: int, limit: int) -> ValueError:
    return ValueError(f"{n} {what} exceed the limit of {limit} (setting max_attributes)")


def decode_protobuf_request(body: bytes, limits: Limits | None = None,
                            ) -> tuple[list[Span], list[Rejected]]:
    """Decode a binary ``ExportTraceServiceRequest``. With ``limits``, a body of too many
    spans or messages is refused (413) before it is parsed (:func:`check_protobuf`), and a
    span with more than ``max_attributes`` attributes, events or links is rejected."""
    if limits is not None:
        check_protobuf(body, limits)
    lim = limits.max_attributes if limits is not None else None
    try:
        req = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise BadRequest(f"body is not a protobuf ExportTraceServiceRequest: {exc}") from None
    spans: list[Span] = []
    rejected: list[Rejected] = []
    for rs in req.resource_spans:
        resource = _pb_attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = ss.scope.name
            for s in ss.spans:
                try:
                    if lim is not None:
                        for what, items in (("attributes", s.attributes), ("events", s.events),
                                            ("links", s.links)):
                            if len(items) > lim:
                                raise _too_many(what, len(items), lim)
                    trace_id = _pb_id(s.trace_id, _TRACE_ID_BYTES)
                    span_id = _pb_id(s.span_id, _SPAN_ID_BYTES)
                    if trace_id is None or span_id is None:
                        raise ValueError("traceId and spanId are required")
                    parent = _pb_id(s.parent_span_id, _SPAN_ID_BYTES)
                    start, end = _secs(s.start_time_unix_nano), _secs(s.end_time_unix_nano)
                    links: Sequence[tuple[str, str, dict[str, Any]]] = ()
                    if s.links:
                        found = []
                        for ln in s.links:
                            lt = _pb_id(ln.trace_id, _TRACE_ID_BYTES)
                            ls = _pb_id(ln.span_id, _SPAN_ID_BYTES)
                            if lt and ls:
                                found.append((lt, ls, _pb_attrs(ln.attributes)))
                        links = found
                except ValueError as exc:
                    rejected.append(Rejected(f"span {s.name[:80]!r}: {exc}"))
                    continue
                status = s.status
                spans.append(Span(
                    trace_id, span_id, parent, s.name, s.kind, start, end,
                    _pb_attrs(s.attributes), status.code, status.message,
                    [(e.name, _event_secs(e.time_unix_nano), _pb_attrs(e.attributes))
                     for e in s.events] if s.events else (),
                    links, resource, scope,
                ))
    if limits is not None:
        spans = screen_text(spans, rejected, limits)
    return spans, rejected


def screen_text(spans: list[Span], rejected: list[Rejected], limits: Limits) -> list[Span]:
    """The spans whose texts (name, status message, attributes, events, links, resource)
    hold no NUL character and no string over ``max_string_chars``; the others are rejected
    (``partialSuccess``), as native items with them are (docs/limits.md)."""
    kept: list[Span] = []
    resources: dict[int, str | None] = {}  # a resource dict is shared by its spans
    for sp in spans:
        rid = id(sp.resource)
        if rid not in resources:
            resources[rid] = limits.text_problem(sp.resource)
        problem = resources[rid] or limits.text_problem(
            {"name": sp.name, "status": sp.status_message, "attributes": sp.attributes,
             "events": sp.events, "links": sp.links})
        if problem is None:
            kept.append(sp)
        else:
            rejected.append(Rejected(f"span {sp.name[:80].replace(chr(0), '')!r}: {problem}"))
    return kept


# ---------------------------------------------------------------------------- JSON


def _get(d: dict[str, Any], camel: str, snake: str) -> Any:
    v = d.get(camel)
    return d.get(snake) if v is None else v


def _int(raw: Any) -> int:
    """A 64-bit int sent as a number or a decimal string (OTLP/JSON); outside the int64 /
    uint64 range it is an error, as protobuf would make it."""
    if raw is None or raw == "":
        return 0
    if isinstance(raw, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(raw, int):
        v = raw
    elif isinstance(raw, float) and raw.is_integer():
        v = int(raw)
    elif isinstance(raw, str):
        v = int(raw.strip())
    else:
        raise ValueError(f"expected an integer, got {raw!r:.40}")
    if not _INT64_MIN <= v <= _UINT64_MAX:
        raise ValueError(f"integer {v} is outside the 64-bit range")
    return v


def _enum(raw: Any, names: dict[str, int], prefix: str) -> int:
    if isinstance(raw, str) and not raw.strip().lstrip("-").isdigit():
        name = raw.strip().upper().removeprefix(prefix)
        if name not in names:
            raise ValueError(f"unknown enum value {raw!r:.40}")
        return names[name]
    return _int(raw)


def _json_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return None
    for key, val in v.items():
        if key in ("stringValue", "string_value", "boolValue", "bool_value"):
            return val
        if key in ("intValue", "int_value"):
            try:
                v = _int(val)
            except ValueError:  # e.g. "1e5": no OTLP int; the span is rejected, not zeroed
                raise ValueError(f"intValue {val!r:.40} is not an integer") from None
            return v if v <= 2**63 - 1 else str(v)  # int64, like protobuf's int_value
        if key in ("doubleValue", "double_value"):
            try:  # proto3 JSON also allows "NaN"/"Infinity" strings
                return float(val) if isinstance(val, int | float | str) else None
            except ValueError:
                return None
        if key in ("arrayValue", "array_value"):
            vals = val.get("values") if isinstance(val, dict) else None
            return [_json_value(x) for x in vals] if isinstance(vals, list) else []
        if key in ("kvlistValue", "kvlist_value"):
            vals = val.get("values") if isinstance(val, dict) else None
            return _json_attrs(vals)
        if key in ("bytesValue", "bytes_value"):
            return val  # already base64, as the protobuf path renders bytes
    return None


def _json_attrs(kvs: Any) -> dict[str, Any]:
    if not isinstance(kvs, list):
        return {}
    return {kv["key"]: _json_value(kv.get("value")) for kv in kvs
            if isinstance(kv, dict) and isinstance(kv.get("key"), str)}


def _list(d: dict[str, Any], *keys: str) -> list[Any]:
    for k in keys:
        v = d.get(k)
        if isinstance(v, list):
            return v
        if v is not None:
            raise BadRequest(f"{k} must be an array")
    return []


def _json_event_secs(raw: Any) -> float | None:
    try:
        return _secs(_int(raw))
    except ValueError:
        return None


def _json_span(s: dict[str, Any], resource: dict[str, Any], scope: str) -> Span:
    trace_id = parse_id(_get(s, "traceId", "trace_id"), _TRACE_ID_BYTES)
    span_id = parse_id(_get(s, "spanId", "span_id"), _SPAN_ID_BYTES)
    if trace_id is None or span_id is None:
        raise ValueError("traceId and spanId are required")
    raw_status = s.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    links = []
    for ln in _list(s, "links"):
        if isinstance(ln, dict):
            lt = parse_id(_get(ln, "traceId", "trace_id"), _TRACE_ID_BYTES)
            ls = parse_id(_get(ln, "spanId", "span_id"), _SPAN_ID_BYTES)
            if lt and ls:
                links.append((lt, ls, _json_attrs(ln.get("attributes"))))
    events = [
        (str(e.get("name") or ""), _json_event_secs(_get(e, "timeUnixNano", "time_unix_nano")),
         _json_attrs(e.get("attributes")))
        for e in _list(s, "events") if isinstance(e, dict)
    ]
    name = s.get("name")
    return Span(
        trace_id, span_id, parse_id(_get(s, "parentSpanId", "parent_span_id"), _SPAN_ID_BYTES),
        name if isinstance(name, str) else "",
        _enum(s.get("kind"), _SPAN_KINDS, "SPAN_KIND_"),
        _secs(_int(_get(s, "startTimeUnixNano", "start_time_unix_nano"))),
        _secs(_int(_get(s, "endTimeUnixNano", "end_time_unix_nano"))),
        _json_attrs(s.get("attributes")),
        _enum(status.get("code"), _STATUS_CODES, "STATUS_CODE_"),
        str(status.get("message") or ""), events, links, resource, scope,
    )


def _scope_spans(data: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(resourceSpans item, scopeSpans item) pairs of a decoded request."""
    for rs in _list(data, "resourceSpans", "resource_spans"):
        if not isinstance(rs, dict):
            raise BadRequest("each resourceSpans item must be an object")
        # instrumentationLibrarySpans: the pre-1.0 name, still sent by old exporters
        for ss in _list(rs, "scopeSpans", "scope_spans", "instrumentationLibrarySpans"):
            if not isinstance(ss, dict):
                raise BadRequest("each scopeSpans item must be an object")
            yield rs, ss


def _check_counts(data: dict[str, Any], limits: Limits) -> None:
    """Refuse (413) more than ``max_nodes_per_request`` spans before any is decoded."""
    n = sum(len(_list(ss, "spans")) for _, ss in _scope_spans(data))
    if n > limits.max_nodes:
        raise PayloadTooLarge(
            f"{n} spans in one request exceed the limit of {limits.max_nodes} (setting "
            "max_nodes_per_request)",
            extra={"limit": "max_nodes_per_request", "limit_value": limits.max_nodes})


def _json_counts(s: dict[str, Any], lim: int) -> None:
    for what, key in (("attributes", "attributes"), ("events", "events"), ("links", "links")):
        items = s.get(key)
        if isinstance(items, list) and len(items) > lim:
            raise _too_many(what, len(items), lim)


def decode_json_request(body: bytes, limits: Limits | None = None,
                        ) -> tuple[list[Span], list[Rejected]]:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest`` with orjson and this walker. With
    ``limits``, a body of too many JSON values or spans is refused (413) before they are
    built or decoded, and a span with more than ``max_attributes`` attributes, events or
    links is rejected."""
    if limits is not None:
        limits.check_body(body)
    try:
        if not body.strip():
            raise BadRequest("request body is empty; send an OTLP/JSON "
                             "ExportTraceServiceRequest (an object)")
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object (an ExportTraceServiceRequest)")
    if limits is not None:
        _check_counts(data, limits)
    lim = limits.max_attributes if limits is not None else None
    spans: list[Span] = []
    rejected: list[Rejected] = []
    resource: dict[str, Any] = {}
    resource_of: Any = None
    for rs, ss in _scope_spans(data):
        if rs is not resource_of:  # the resource's attributes once for all its scopes
            res, resource_of = rs.get("resource"), rs
            try:
                resource = _json_attrs(res.get("attributes")) if isinstance(res, dict) else {}
            except ValueError as exc:  # every span of the resource would carry it
                raise BadRequest(f"resource attributes: {exc}") from None
        sc = ss.get("scope")
        scope = str(sc.get("name") or "") if isinstance(sc, dict) else ""
        for s in _list(ss, "spans"):
            if not isinstance(s, dict):
                rejected.append(Rejected("a span must be an object"))
                continue
            try:
                if lim is not None:
                    _json_counts(s, lim)
                spans.append(_json_span(s, resource, scope))
            except (ValueError, TypeError, OverflowError) as exc:
                rejected.append(Rejected(f"span {str(s.get('name'))[:80]!r}: {exc}"))
    if limits is not None and (b"\\u0000" in body or len(body) > limits.max_string_chars):
        spans = screen_text(spans, rejected, limits)  # else no string can break a limit
    return spans, rejected
