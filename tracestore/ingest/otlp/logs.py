"""OTLP logs → GenAI message content on the nodes of their spans (docs/ingest.md, "Logs").

The official OTel GenAI instrumentations, in their default mode, send message content not
on the span but as log records (events) carrying the span's trace and span id:
``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``,
``gen_ai.tool.message``, ``gen_ai.choice`` (semconv <= 1.36) and
``gen_ai.client.inference.operation.details`` (later releases). The event name is the log
record's ``event_name`` (proto field 12) or, from older SDKs, its ``event.name`` attribute;
the payload is the record's body (or its attributes).

Logs and spans arrive in any order. :class:`ContentJoiner` keeps the events of every
``(project, trace_id, span_id)`` it has seen (bounded, least recently used first out): a
log request updates the node if it is stored already (only a prompt/output that is empty or
came from earlier events of the same span is replaced), and a later trace request fills the
node's empty prompt/output from the remembered events before it is written. The content goes
through the same redaction, cap (``max_content_chars``) and hash as a span's content.

>>> events, other = decode_logs_json(b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{'
...     b'"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",'
...     b'"eventName":"gen_ai.user.message","body":{"kvlistValue":{"values":[{"key":'
...     b'"content","value":{"stringValue":"hi"}}]}}}]}]}]}')
>>> events[0].name, events[0].attrs["body"], other
('gen_ai.user.message', {'content': 'hi'}, 0)
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from tracestore.errors import BadRequest
from tracestore.ingest.otlp.content import genai_messages, output_text
from tracestore.ingest.otlp.decode import (
    _get,
    _json_attrs,
    _json_value,
    _list,
    _pb_attrs,
    _pb_value,
    parse_id,
)
from tracestore.ingest.otlp.producers import event_messages
from tracestore.ingest.redact import Redactor
from tracestore.ingest.write import TraceRows, content_hash, node_tuples
from tracestore.store.partitions import trace_months
from tracestore.store.tables import NODE_T

__all__ = ["ContentJoiner", "LogEvent", "NodeContent", "decode_logs_json",
           "decode_logs_protobuf", "node_content"]

_EVENTS = frozenset({"gen_ai.system.message", "gen_ai.user.message",
                     "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.choice",
                     "gen_ai.client.inference.operation.details"})


@dataclass(slots=True)
class LogEvent:
    """One GenAI event from a log record; ``attrs`` holds its attributes and its ``body``."""

    trace_id: str
    span_id: str
    name: str
    attrs: dict[str, Any]


def _event(trace: Any, span: Any, name: Any, attrs: dict[str, Any], body: Any
           ) -> LogEvent | None:
    name = name or attrs.get("event.name")
    if not isinstance(name, str) or name not in _EVENTS:
        return None
    try:
        t, s = parse_id(trace, 16), parse_id(span, 8)
    except ValueError:
        return None
    if t is None or s is None:
        return None
    if body is not None:
        attrs["body"] = body
    return LogEvent(t, s, str(name), attrs)


def decode_logs_protobuf(body: bytes) -> tuple[list[LogEvent], int]:
    """(GenAI events, count of other log records) of an ``ExportLogsServiceRequest``."""
    req = ExportLogsServiceRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"not an OTLP ExportLogsServiceRequest: {exc}") from None
    events: list[LogEvent] = []
    other = 0
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            for r in sl.log_records:
                body_v = _pb_value(r.body) if r.HasField("body") else None
                ev = _event(r.trace_id.hex(), r.span_id.hex(), r.event_name,
                            _pb_attrs(r.attributes), body_v)
                if ev is None:
                    other += 1
                else:
                    events.append(ev)
    return events, other


def decode_logs_json(body: bytes) -> tuple[list[LogEvent], int]:
    """The same for OTLP/JSON (ids hex or base64, keys camelCase or snake_case)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("an ExportLogsServiceRequest must be a JSON object")
    events: list[LogEvent] = []
    other = 0
    for rl in _list(doc, "resourceLogs", "resource_logs"):
        for sl in _list(rl, "scopeLogs", "scope_logs") if isinstance(rl, dict) else ():
            for r in _list(sl, "logRecords", "log_records") if isinstance(sl, dict) else ():
                if not isinstance(r, dict):
                    other += 1
                    continue
                ev = _event(_get(r, "traceId", "trace_id"), _get(r, "spanId", "span_id"),
                            _get(r, "eventName", "event_name"), _json_attrs(r.get("attributes")),
                            _json_value(r.get("body")))
                if ev is None:
                    other += 1
                else:
                    events.append(ev)
    return events, other


@dataclass(slots=True)
class NodeContent:
    """What a span's events say: the prompt (JSON message list), the output text, the finish
    reason and the tool-call ids the model decided, all ``None``/empty when absent."""

    prompt: str | None
    output: str | None
    finish_reason: str | None
    calls: list[str]


def node_content(events: list[tuple[str, dict[str, Any]]]) -> NodeContent:
    """The node content of one span's GenAI events, in the form a span's own messages take
    (:func:`tracestore.ingest.otlp.fields.node_fields`)."""
    ins, outs = event_messages(events)
    msgs_in, msgs_out = genai_messages(ins), genai_messages(outs)
    finish = next((str(m["finish_reason"]) for m in msgs_out if m.get("finish_reason")), None)
    calls = [c["id"] for m in msgs_out for c in m.get("tool_calls", ()) if c.get("id")]
    return NodeContent(orjson.dumps(msgs_in).decode() if msgs_in else None,
                       output_text(msgs_out), finish, calls)


def _capped(text: str | None, cap: int, redactor: Redactor | None
            ) -> tuple[str | None, str | None]:
    if text is None:
        return None, None
    if redactor:
        text = redactor.text(text)
    return text[:cap], content_hash(text)


@dataclass(slots=True)
class _Entry:
    events: list[tuple[str, dict[str, Any]]]
    prompt_hash: str | None = None  # of the content last applied from these events
    output_hash: str | None = None


class ContentJoiner:
    """The GenAI events of recent spans, by ``(project, trace_id, span_id)``, bounded LRU:
    beyond ``capacity`` spans the oldest are forgotten (their late partner then stays without
    the content, never with wrong content). Memory only: a restart forgets pending events."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._spans: OrderedDict[tuple[int, str, str], _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._spans)

    def add(self, project_id: int, events: list[LogEvent]) -> dict[tuple[str, str], _Entry]:
        """Remember ``events``; returns the entries (all events so far) of the spans they
        touched, keyed by (trace id, span id)."""
        touched: dict[tuple[str, str], _Entry] = {}
        for ev in events:
            key = (project_id, ev.trace_id, ev.span_id)
            entry = self._spans.get(key)
            if entry is None:
                entry = self._spans[key] = _Entry([])
            self._spans.move_to_end(key)
            entry.events.append((ev.name, ev.attrs))
            touched[(ev.trace_id, ev.span_id)] = entry
        while len(self._spans) > self.capacity:
            self._spans.popitem(last=False)
        return touched

    def get(self, project_id: int, trace_id: str, span_id: str) -> _Entry | None:
        return self._spans.get((project_id, trace_id, span_id))

    def store(self, session: Session, project_id: int, touched: dict[tuple[str, str], _Entry],
              cap: int, redactor: Redactor | None) -> dict[tuple[str, str], str]:
        """Write the touched spans' content onto their stored nodes (an empty prompt/output,
        or one these events wrote before); returns the decided tool calls
        ``(trace id, call id) → span id``."""
        c = NODE_T.c
        decided: dict[tuple[str, str], str] = {}
        # Each update names its node's whole key, the month included, so PostgreSQL plans
        # and probes that month's partition only, not every month's (a trace not stored yet
        # has no month: no node either, and the key without it finds none).
        months = trace_months(session, project_id=project_id,
                              trace_ids=sorted({trace for trace, _ in touched}))
        for (trace, span), entry in touched.items():
            nc = node_content(entry.events)
            for call in nc.calls:
                decided[(trace, call)] = span
            where = (c.project_id == project_id, c.trace_id == trace, c.node_id == span,
                     *((c.trace_month == months[trace],) if trace in months else ()))
            for text, col, hcol, attr in ((nc.prompt, c.prompt, c.prompt_hash, "prompt_hash"),
                                          (nc.output, c.output, c.output_hash, "output_hash")):
                kept, h = _capped(text, cap, redactor)
                if kept is None:
                    continue
                prev = getattr(entry, attr)
                cond = col.is_(None) if prev is None else or_(col.is_(None), hcol == prev)
                session.execute(update(NODE_T).where(*where, cond)
                                .values({col.key: kept, hcol.key: h}))
                setattr(entry, attr, h)
            if nc.finish_reason is not None:
                session.execute(update(NODE_T).where(*where, c.finish_reason.is_(None))
                                .values(finish_reason=nc.finish_reason[:200]))
        return decided

    def fill(self, project_id: int, rows: TraceRows, cap: int,
             redactor: Redactor | None) -> None:
        """Fill the empty prompt/output/finish reason of nodes about to be written from the
        events remembered for them (a span arriving after its logs)."""
        if not self._spans:
            return
        enc = rows.encoded
        dicts = rows.nodes if enc is None else enc.dicts()
        hit = False
        for r in dicts:
            entry = self._spans.get((project_id, r["trace_id"], r["node_id"]))
            if entry is None:
                continue
            nc = node_content(entry.events)
            for text, col, hcol, attr in ((nc.prompt, "prompt", "prompt_hash", "prompt_hash"),
                                          (nc.output, "output", "output_hash", "output_hash")):
                kept, h = _capped(text, cap, redactor)
                if kept is not None and r.get(col) is None:
                    r[col], r[hcol] = kept, h
                    setattr(entry, attr, h)
                    hit = True
            if nc.finish_reason is not None and r.get("finish_reason") is None:
                r["finish_reason"] = nc.finish_reason[:200]
                hit = True
        if hit and enc is not None:
            rows.encoded = node_tuples(dicts, encode_json=False)
