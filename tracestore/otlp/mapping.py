"""Decoded spans → :class:`~tracestore.schemas.TraceIn` parts, grouped by trace id.

Field mapping follows shared/reference/conventions.md §5.2 (first match wins, left to right:
OTel GenAI old and new names, OpenInference, Langfuse, OpenLLMetry) and DESIGN §3 for our own
``tracestore.*`` attributes. Span attributes that no rule reads are kept in
``NodeIn.attributes``, bounded by :func:`~tracestore.otlp.content.bounded_attributes`.

Edges: the span tree gives ``parent`` (from ``parent_id``); a span link into the same trace gives
a ``link`` edge (linked span → linking span); a tool call an LLM decided (an output message's
tool-call id) joined to the tool span that ran it (``gen_ai.tool.call.id`` / ``tool.id``) gives
a ``tool_call`` edge. Spans arrive in batches, so unmatched tool-call ids wait in a bounded
:class:`ToolCallJoiner` for their partner in a later request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from tracestore.otlp.content import FLAT_RE, as_float, bounded_attributes, maybe_json, unflatten
from tracestore.otlp.decode import Rejected, Span
from tracestore.otlp.fields import node_fields
from tracestore.otlp.nodes import first, str_list
from tracestore.schemas import EdgeIn, NodeIn, OutcomeIn, TraceIn

__all__ = ["ToolCallJoiner", "spans_to_traces"]

_UNKNOWN_SERVICE = "unknown_service"  # OTel SDK default service.name prefix
_TRACE_META_PREFIXES = ("langfuse.trace.metadata.", "traceloop.association.properties.")


class ToolCallJoiner:
    """Remembers unmatched tool-call ids (both sides) so that an LLM span and the tool span
    that executed its call join even when they arrive in different requests. Bounded LRU:
    ids older than ``capacity`` entries are forgotten (such a join is then lost, never wrong).
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._decided: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self._executed: OrderedDict[tuple[Any, ...], str] = OrderedDict()

    def join(self, scope: Any, decided: dict[tuple[str, str], str],
             executed: dict[tuple[str, str], str]) -> list[tuple[str, str, str]]:
        """(trace_id, llm node, tool node) for every match, now or with remembered ids."""
        out = []
        for (trace, call), llm in decided.items():
            tool = executed.get((trace, call)) or self._executed.pop((scope, trace, call), None)
            if tool is not None:
                out.append((trace, llm, tool))
            else:
                self._remember(self._decided, (scope, trace, call), llm)
        for (trace, call), tool in executed.items():
            if (trace, call) in decided:
                continue
            llm = self._decided.pop((scope, trace, call), None)
            if llm is not None:
                out.append((trace, llm, tool))
            else:
                self._remember(self._executed, (scope, trace, call), tool)
        return out

    def _remember(self, store: OrderedDict[tuple[Any, ...], str], key: tuple[Any, ...],
                  value: str) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > self.capacity:
            store.popitem(last=False)


def _trace_fields(sp: Span, a: dict[str, Any]) -> dict[str, Any]:
    r = sp.resource
    f: dict[str, Any] = {
        "workflow": first(a, ("tracestore.workflow", "gen_ai.workflow.name",
                              "langfuse.trace.name", "traceloop.workflow.name"))
        or r.get("tracestore.workflow"),
        "task_id": a.get("tracestore.task.id") or r.get("tracestore.task.id"),
        "team": first(a, ("tracestore.team",)) or first(r, ("tracestore.team", "team")),
        "feature": first(a, ("tracestore.feature",)) or first(r, ("tracestore.feature",
                                                                   "feature")),
        "user_id": first(a, ("user.id", "langfuse.user.id")),
        "session_id": first(a, ("session.id", "gen_ai.conversation.id", "langfuse.session.id")),
        "environment": first(a, ("langfuse.environment",))
        or first(r, ("deployment.environment.name", "deployment.environment")),
    }
    svc = r.get("service.name")
    if not isinstance(svc, str) or svc.startswith(_UNKNOWN_SERVICE):
        svc = r.get("openinference.project.name") or svc
    f["service_name"] = svc
    return {k: str(v) for k, v in f.items() if v is not None and v != ""}


def _trace_extras(a: dict[str, Any], meta: dict[str, Any], tags: list[str]) -> None:
    for t in (*str_list(a.get("tag.tags")), *str_list(a.get("langfuse.trace.tags"))):
        if t not in tags:
            tags.append(t)
    m = maybe_json(a.get("metadata"))
    if isinstance(m, dict):
        for k, v in m.items():
            meta.setdefault(str(k), v)
    for k, v in a.items():
        for p in _TRACE_META_PREFIXES:
            if k.startswith(p):
                meta.setdefault(k[len(p):], v)


def _outcome(a: dict[str, Any]) -> OutcomeIn | None:
    status = a.get("tracestore.outcome.status")
    if status is None:
        return None
    try:
        return OutcomeIn(status=status, type=a.get("tracestore.outcome.type"),
                         value_usd=as_float(a.get("tracestore.outcome.value_usd")))
    except ValidationError:
        return None


def spans_to_traces(
    spans: Iterable[Span], *, joiner: ToolCallJoiner | None = None, scope: Any = None,
    max_nodes_per_trace: int | None = None,
) -> tuple[list[TraceIn], list[Rejected]]:
    """Map spans to one :class:`TraceIn` per trace id; spans that fail validation are
    returned as :class:`Rejected` while the rest are kept."""
    by_trace: dict[str, list[Span]] = {}
    for sp in spans:
        by_trace.setdefault(sp.trace_id, []).append(sp)
    rejected: list[Rejected] = []
    traces: list[TraceIn] = []
    decided: dict[tuple[str, str], str] = {}
    executed: dict[tuple[str, str], str] = {}
    edges: dict[str, list[EdgeIn]] = {}
    for trace_id, group in by_trace.items():
        group.sort(key=lambda s: s.parent_id is not None)  # roots first: their fields win
        fields: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        tags: list[str] = []
        outcome: OutcomeIn | None = None
        nodes: list[NodeIn] = []
        tedges = edges.setdefault(trace_id, [])
        for sp in group:
            a = sp.attributes
            flat = unflatten(a) if any(FLAT_RE.match(k) for k in a) else {}
            try:
                mapped, extra_nodes, calls = node_fields(sp, a, flat)
                node = NodeIn.model_validate(mapped)
                more = [NodeIn.model_validate(x) for x in extra_nodes]
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in err["loc"])
                rejected.append(Rejected(f"span {sp.span_id}: {where}: {err['msg']}"))
                continue
            if max_nodes_per_trace is not None and len(nodes) >= max_nodes_per_trace:
                rejected.append(Rejected(f"span {sp.span_id}: trace {trace_id} exceeds "
                                         f"{max_nodes_per_trace} nodes (max_nodes_per_trace)"))
                continue
            nodes.append(node)
            nodes.extend(more)
            for k, v in _trace_fields(sp, a).items():
                fields.setdefault(k, v)
            _trace_extras(a, meta, tags)
            if node.kind != "outcome":
                outcome = outcome or _outcome(a)
            for call in calls:
                decided[(trace_id, call)] = sp.span_id
            if node.kind == "tool" and node.tool_call_id:
                executed[(trace_id, node.tool_call_id)] = sp.span_id
            for lt, ls, _ in sp.links:
                if lt == trace_id:
                    tedges.append(EdgeIn(src=ls, dst=sp.span_id, kind="link"))
        if not nodes:
            continue
        for k in ("team", "feature"):  # DESIGN §3: also from trace metadata of that name
            if k not in fields and isinstance(meta.get(k), str | int):
                fields[k] = str(meta[k])
        traces.append(TraceIn(
            trace_id=trace_id, nodes=nodes, tags=tags or None,
            metadata=bounded_attributes(meta.items()) if meta else None, outcome=outcome,
            **fields,
        ))
    for trace_id, llm, tool in (joiner or ToolCallJoiner()).join(scope, decided, executed):
        edges.setdefault(trace_id, []).append(EdgeIn(src=llm, dst=tool, kind="tool_call"))
    known = {t.trace_id: t for t in traces}
    for trace_id, es in edges.items():
        if not es:
            continue
        t = known.get(trace_id)
        if t is None:  # all of this trace's spans were rejected; keep the joined edge anyway
            t = known[trace_id] = TraceIn(trace_id=trace_id)
            traces.append(t)
        t.edges.extend(es)
    return traces, rejected
