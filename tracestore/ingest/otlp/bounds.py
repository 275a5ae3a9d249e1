"""Counting the messages of a protobuf ``ExportTraceServiceRequest`` before it is parsed.

The protobuf runtime (upb) builds every message of a body at once, ~50 bytes of memory per
``KeyValue`` and ~170 per empty ``Span``, while each costs 2 bytes on the wire: 15 KB of gzip
inflate to 8 million empty spans (1.3 GB once parsed). :func:`check_protobuf` walks the wire
format with no allocation per message and refuses (413) a body of more than
``max_nodes_per_request`` spans or ``max_values_per_request`` messages in all, so what
``FromString`` then builds is bounded (docs/limits.md).

The walk is skipped when the body's size already bounds the counts (every embedded message
takes at least 2 bytes): for bodies under ``2 * max_values_per_request`` bytes only the spans
are counted (one step per span, not per attribute), and bodies under ``2 *
max_nodes_per_request`` bytes are not walked at all.

>>> from tracestore.limits import Limits
>>> span = b"\\x12\\x00"                                     # ScopeSpans.spans: an empty Span
>>> body = b"\\x0a\\x0a" + b"\\x12\\x08" + span * 4            # 1 ResourceSpans, 1 ScopeSpans
>>> check_protobuf(body, Limits(8, 8, max_values=100, max_nodes=4))
>>> check_protobuf(body, Limits(8, 8, max_values=100, max_nodes=3))
Traceback (most recent call last):
tracestore.errors.PayloadTooLarge: more than 3 spans in one request (setting max_nodes_per_request)
"""

from __future__ import annotations

from tracestore.errors import BadRequest, PayloadTooLarge
from tracestore.limits import Limits

__all__ = ["check_protobuf"]

# The messages of opentelemetry/proto/{collector/trace,trace,common,resource}/v1/*.proto that
# hold messages, and which field number holds which (fields not listed are scalars, strings,
# bytes, or messages without message fields, such as Status: counted, not entered).
(_REQUEST, _RESOURCE_SPANS, _RESOURCE, _SCOPE_SPANS, _SCOPE, _SPAN, _EVENT, _LINK, _KEY_VALUE,
 _ANY_VALUE, _ARRAY, _KVLIST, _LEAF) = range(13)
_FIELDS: dict[int, dict[int, int]] = {
    _REQUEST: {1: _RESOURCE_SPANS},
    _RESOURCE_SPANS: {1: _RESOURCE, 2: _SCOPE_SPANS},
    _RESOURCE: {1: _KEY_VALUE},
    _SCOPE_SPANS: {1: _SCOPE, 2: _SPAN},
    _SCOPE: {3: _KEY_VALUE},
    _SPAN: {9: _KEY_VALUE, 11: _EVENT, 13: _LINK, 15: _LEAF},
    _EVENT: {3: _KEY_VALUE},
    _LINK: {4: _KEY_VALUE},
    _KEY_VALUE: {2: _ANY_VALUE},
    _ANY_VALUE: {5: _ARRAY, 6: _KVLIST},
    _ARRAY: {1: _ANY_VALUE},
    _KVLIST: {1: _KEY_VALUE},
    _LEAF: {},
}
# Messages nested deeper are refused; the protobuf runtime's own recursion limit is 100.
_MAX_NESTING = 100


def check_protobuf(body: bytes, limits: Limits) -> None:
    """Refuse (413) a body of more than ``limits.max_nodes`` spans or ``limits.max_values``
    messages; a malformed body is a 400 (as parsing it would be)."""
    if len(body) // 2 < limits.max_nodes:
        return
    try:
        _walk(body, limits, spans_only=len(body) // 2 < limits.max_values)
    except IndexError:
        raise BadRequest("body is not a protobuf ExportTraceServiceRequest: truncated") from None


def _walk(body: bytes, limits: Limits, *, spans_only: bool) -> None:
    """Depth first through the fields, one step per field; ``stack`` holds where each
    enclosing message resumes (so its length is the nesting depth)."""
    messages = spans = 0
    stack: list[tuple[int, int, int]] = []
    i, end, kind = 0, len(body), _REQUEST
    while True:
        if i >= end:
            if i > end:
                raise IndexError
            if not stack:
                return
            i, end, kind = stack.pop()
            continue
        key = body[i]
        i += 1
        if key >= 0x80:
            key, i = _varint(body, i, key)
        wire = key & 7
        if wire == 2:  # length-delimited: a message, a string or bytes
            size = body[i]
            i += 1
            if size >= 0x80:
                size, i = _varint(body, i, size)
            if i + size > end:
                raise IndexError
            child = _FIELDS[kind].get(key >> 3)
            if child is not None:
                messages += 1
                if child == _SPAN:
                    spans += 1
                    if spans > limits.max_nodes:
                        raise _too_many(f"more than {limits.max_nodes} spans",
                                        "max_nodes_per_request", limits.max_nodes)
                if messages > limits.max_values:
                    raise _too_many(f"more than {limits.max_values} protobuf messages",
                                    "max_values_per_request", limits.max_values)
                if size and _FIELDS[child] and not (spans_only and child == _SPAN):
                    if len(stack) >= _MAX_NESTING:
                        raise BadRequest(f"protobuf messages nested deeper than "
                                         f"{_MAX_NESTING} levels")
                    stack.append((i + size, end, kind))
                    end, kind = i + size, child
                    continue
            i += size
        elif wire == 0:
            while body[i] >= 0x80:
                i += 1
            i += 1
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise BadRequest(f"body is not a protobuf ExportTraceServiceRequest: wire "
                             f"type {wire} (groups are not used by OTLP)")


def _too_many(what: str, setting: str, value: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"{what} in one request (setting {setting})",
                           extra={"limit": setting, "limit_value": value})


def _varint(body: bytes, i: int, first: int) -> tuple[int, int]:
    """The rest of a varint whose first byte ``first`` (>= 0x80) was read; (value, next)."""
    value, shift = first & 0x7F, 7
    while True:
        b = body[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise BadRequest("body is not a protobuf ExportTraceServiceRequest: varint too long")
