"""Decoded spans → :class:`~tracestore.schemas.TraceIn` parts, grouped by trace id.

Field mapping follows docs/ingest.md, "Field mapping" (first match wins, left to right:
OTel GenAI old and new names, OpenInference, Langfuse, OpenLLMetry) and its list of our own
``tracestore.*`` attributes. Span attributes that no rule reads are kept in
``NodeIn.attributes``, bounded by :func:`~tracestore.ingest.otlp.content.bounded_attributes`.

Edges: the span tree gives ``parent`` (from ``parent_id``); a span link into the same trace gives
a ``link`` edge (linked span → linking span); a tool call an LLM decided (an output message's
tool-call id) joined to the tool span that ran it (``gen_ai.tool.call.id`` / ``tool.id``) gives
a ``tool_call`` edge. Spans arrive in batches, so unmatched tool-call ids wait in a bounded
:class:`ToolCallJoiner` for their partner in a later request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tracestore.ingest.otlp.content import as_float, bounded_attributes, maybe_json, unflatten
from tracestore.ingest.otlp.decode import Rejected, Span
from tracestore.ingest.otlp.fields import node_fields
from tracestore.ingest.otlp.nodes import first, str_list
from tracestore.ingest.otlp.producers import canonical_attributes
from tracestore.schemas import MODEL_KINDS, EdgeIn, NodeIn, OutcomeIn, TraceIn

__all__ = ["Mapped", "ToolCallJoiner", "map_spans", "spans_to_traces"]

_UNKNOWN_SERVICE = "unknown_service"  # OTel SDK default service.name prefix
_TRACE_META_PREFIXES = ("langfuse.trace.metadata.", "traceloop.association.properties.")


def _take(store: OrderedDict[tuple[Any, ...], str], key: tuple[Any, ...]) -> str | None:
    return store.pop(key) if key in store else None


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
            ran = executed.get((trace, call))
            if ran is None:
                ran = _take(self._executed, (scope, trace, call))
            if ran is not None:
                out.append((trace, llm, ran))
            else:
                self._remember(self._decided, (scope, trace, call), llm)
        for (trace, call), tool in executed.items():
            if (trace, call) in decided:
                continue
            decider = _take(self._decided, (scope, trace, call))
            if decider is not None:
                out.append((trace, decider, tool))
            else:
                self._remember(self._executed, (scope, trace, call), tool)
        return out

    def _remember(self, store: OrderedDict[tuple[Any, ...], str], key: tuple[Any, ...],
                  value: str) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > self.capacity:
            store.popitem(last=False)


_WORKFLOW_KEYS = ("tracestore.workflow", "gen_ai.workflow.name", "langfuse.trace.name",
                  "traceloop.workflow.name")
_SPAN_TRACE_KEYS: dict[str, tuple[str, ...]] = {
    "workflow": _WORKFLOW_KEYS,
    "task_id": ("tracestore.task.id",),
    "team": ("tracestore.team",),
    "feature": ("tracestore.feature",),
    # An id set explicitly through the Langfuse SDK wins over what an instrumentation
    # derived (gen_ai.conversation.id); OpenLLMetry's association properties come last.
    # The Vercel AI SDK has no session/user fields: ai 4-6 send telemetry.metadata as
    # ai.telemetry.metadata.* (the sessionId/userId keys Langfuse's Vercel guide names), ai 7
    # the call's runtimeContext as ai.settings.context.* (@ai-sdk/otel getRuntimeContextAttributes).
    "user_id": ("langfuse.user.id", "user.id", "traceloop.association.properties.user_id",
                "ai.telemetry.metadata.userId", "ai.settings.context.userId"),
    "session_id": ("langfuse.session.id", "session.id", "gen_ai.conversation.id",
                   "traceloop.association.properties.session_id",
                   "ai.telemetry.metadata.sessionId", "ai.settings.context.sessionId"),
    "environment": ("langfuse.environment",),
}
_ANY_TRACE_KEY = frozenset(k for keys in _SPAN_TRACE_KEYS.values() for k in keys)
_EXTRA_KEYS = frozenset({"tag.tags", "langfuse.trace.tags", "metadata"})


def _span_trace_fields(a: dict[str, Any]) -> dict[str, str]:
    """Trace-level fields a span's own attributes carry."""
    if a.keys().isdisjoint(_ANY_TRACE_KEY):
        return {}
    out = {}
    for name, keys in _SPAN_TRACE_KEYS.items():
        v = first(a, keys)
        if v is not None:
            out[name] = str(v)
    return out


def _resource_fields(r: dict[str, Any]) -> dict[str, str]:
    """Trace-level fields from resource attributes (service, environment, team, feature)."""
    f: dict[str, Any] = {
        "workflow": r.get("tracestore.workflow"),
        "task_id": r.get("tracestore.task.id"),
        "team": first(r, ("tracestore.team", "team")),
        "feature": first(r, ("tracestore.feature", "feature")),
        "environment": first(r, ("deployment.environment.name", "deployment.environment")),
    }
    svc = r.get("service.name")
    if not isinstance(svc, str) or svc.startswith(_UNKNOWN_SERVICE):
        svc = r.get("openinference.project.name") or svc
    f["service_name"] = svc
    return {k: str(v) for k, v in f.items() if v is not None and v != ""}


def _trace_extras(a: dict[str, Any], meta: dict[str, Any], tags: list[str], keys: str) -> None:
    """Tags and metadata of the trace from one span's attributes ``a``; ``keys`` is their
    keys joined by newlines (a substring test there spares most spans a loop over them)."""
    if not a.keys().isdisjoint(_EXTRA_KEYS):
        for t in (*str_list(a.get("tag.tags")), *str_list(a.get("langfuse.trace.tags"))):
            if t not in tags:
                tags.append(t)
        m = maybe_json(a.get("metadata"))
        if isinstance(m, dict):
            for k, v in m.items():
                meta.setdefault(str(k), v)
    if _TRACE_META_PREFIXES[0] not in keys and _TRACE_META_PREFIXES[1] not in keys:
        return
    for k, v in a.items():
        if k.startswith(_TRACE_META_PREFIXES):
            p = next(p for p in _TRACE_META_PREFIXES if k.startswith(p))
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
    m = map_spans(spans, max_nodes_per_trace=max_nodes_per_trace)
    joined = (joiner or ToolCallJoiner()).join(scope, m.decided, m.executed)
    traces = m.traces
    known = {t.trace_id: t for t in traces}
    for trace_id, llm, tool in joined:
        t = known.get(trace_id)
        if t is None:  # all of this trace's spans were rejected; keep the joined edge anyway
            t = known[trace_id] = TraceIn(trace_id=trace_id)
            traces.append(t)
        t.edges.append(EdgeIn(src=llm, dst=tool, kind="tool_call"))
    return traces, m.rejected


@dataclass(slots=True)
class Mapped:
    """Spans mapped to traces, before the tool-call join (which needs the
    :class:`ToolCallJoiner`'s memory of earlier requests): the tool-call ids this request's
    LLM spans decided and its tool spans executed, ``(trace id, call id) → span id``."""

    traces: list[TraceIn]
    rejected: list[Rejected]
    decided: dict[tuple[str, str], str] = field(default_factory=dict)
    executed: dict[tuple[str, str], str] = field(default_factory=dict)


def map_spans(spans: Iterable[Span], *, max_nodes_per_trace: int | None = None) -> Mapped:
    """The pure part of :func:`spans_to_traces`: everything but the tool-call join."""
    by_trace: dict[str, list[Span]] = {}
    for sp in spans:
        by_trace.setdefault(sp.trace_id, []).append(sp)
    rejected: list[Rejected] = []
    traces: list[TraceIn] = []
    decided: dict[tuple[str, str], str] = {}
    executed: dict[tuple[str, str], str] = {}
    resources: dict[int, dict[str, str]] = {}  # one resource dict is shared by its spans
    for trace_id, group in by_trace.items():
        group.sort(key=lambda s: s.parent_id is not None)  # roots first: their fields win
        fields: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        tags: list[str] = []
        outcome: OutcomeIn | None = None
        res_fields: list[dict[str, str]] = []
        nodes: list[NodeIn] = []
        tedges: list[EdgeIn] = []
        named: dict[str, list[tuple[str, str | None]]] = {}  # llm span → its (call id, name)
        for sp in group:
            got = _span_nodes(sp, rejected)
            if got is None:
                continue
            a, keys, node, more, calls = got
            if max_nodes_per_trace is not None and len(nodes) >= max_nodes_per_trace:
                rejected.append(Rejected(f"span {sp.span_id}: trace {trace_id} exceeds "
                                         f"{max_nodes_per_trace} nodes (max_nodes_per_trace)"))
                continue
            nodes.append(node)
            nodes.extend(more)
            if not a.keys().isdisjoint(_ANY_TRACE_KEY):  # most spans carry none
                for k, v in _span_trace_fields(a).items():
                    fields.setdefault(k, v)
            rf = resources.get(id(sp.resource))
            if rf is None:
                rf = resources[id(sp.resource)] = _resource_fields(sp.resource)
            if not (res_fields and res_fields[-1] is rf) and not any(x is rf for x in res_fields):
                res_fields.append(rf)
            _trace_extras(a, meta, tags, keys)
            if outcome is None and node.kind != "outcome" and "tracestore.outcome.status" in a:
                outcome = _outcome(a)
            for call, _name in calls:
                decided[(trace_id, call)] = sp.span_id
            if calls:
                named[sp.span_id] = calls
            if node.kind == "tool" and node.tool_call_id:
                executed[(trace_id, node.tool_call_id)] = sp.span_id
            for lt, ls, _ in sp.links:
                if lt == trace_id:
                    tedges.append(EdgeIn(src=ls, dst=sp.span_id, kind="link"))
        if nodes:
            _wrappers_to_steps(nodes)
            if named:
                nodes = _infer_tool_calls(trace_id, nodes, named, executed)
            traces.append(_trace(trace_id, nodes, tedges, fields, res_fields, meta, tags,
                                 outcome))
    return Mapped(traces, rejected, decided, executed)


def _wrappers_to_steps(nodes: list[NodeIn]) -> None:
    """A model-call node with no usage and no reported cost that has a model-call descendant of
    the same kind (among this request's spans of the trace) is that call's wrapper, not a
    second call: it becomes a ``chain`` step (docs/ingest.md, "Wrapper spans"). @ai-sdk/otel's
    OpenTelemetry names the ``embed`` operation span and its provider call alike
    (``gen_ai.operation.name`` ``embeddings``) and sets usage only on the inner one."""
    bare = {n.node_id: i for i, n in enumerate(nodes) if n.kind in MODEL_KINDS
            and not (n.input_tokens or n.output_tokens or n.reported_cost_usd)}
    if not bare:
        return
    parent = {n.node_id: n.parent_id for n in nodes}
    wrappers: set[int] = set()
    for n in nodes:
        if n.kind not in MODEL_KINDS:
            continue
        p, seen = n.parent_id, {n.node_id}
        while p is not None and p not in seen:
            seen.add(p)
            i = bare.get(p)
            if i is not None and nodes[i].kind == n.kind:
                wrappers.add(i)
            p = parent.get(p)
    for i in wrappers:
        nodes[i] = nodes[i].model_copy(update={"kind": "chain"})


def _infer_tool_calls(trace_id: str, nodes: list[NodeIn],
                      named: dict[str, list[tuple[str, str | None]]],
                      executed: dict[tuple[str, str], str]) -> list[NodeIn]:
    """Join a tool node that carries no tool-call id (Langfuse tool observations have none)
    to the call that asked for it: the latest model call under the same parent, started
    before the tool, that decided a call of the tool's name not yet run by another tool node
    (tools taken in start order). The tool node gets that id as ``tool_call_id`` and
    ``tracestore.tool_call.inferred`` in its attributes, and joins as executed (a ``tool_call``
    edge; docs/ingest.md, "Inferred tool-call joins"). Only among this request's spans of the
    trace."""
    taken = {call for (t, call) in executed if t == trace_id}
    deciders: dict[str | None, list[NodeIn]] = {}
    for m in nodes:
        if m.node_id in named:
            deciders.setdefault(m.parent_id, []).append(m)
    idless = sorted((i for i, n in enumerate(nodes) if n.kind == "tool" and not n.tool_call_id
                     and n.tool_name and n.parent_id in deciders),
                    key=lambda i: (nodes[i].start or 0.0, nodes[i].node_id))
    for i in idless:
        n = nodes[i]
        best: tuple[float, str, str] | None = None  # (start, llm node, call id)
        for m in deciders[n.parent_id]:
            if (m.start or 0.0) > (n.start or 0.0):
                continue
            call = next((c for c, nm in named[m.node_id]
                         if nm == n.tool_name and c not in taken), None)
            if call is not None and (best is None or (m.start or 0.0, m.node_id) > best[:2]):
                best = (m.start or 0.0, m.node_id, call)
        if best is not None:
            taken.add(best[2])
            attrs = {**(n.attributes or {}), "tracestore.tool_call.inferred": True}
            nodes[i] = n.model_copy(update={"tool_call_id": best[2], "attributes": attrs})
            executed[(trace_id, best[2])] = n.node_id
    return nodes


def _span_nodes(sp: Span, rejected: list[Rejected]
                ) -> tuple[dict[str, Any], str, NodeIn, list[NodeIn],
                           list[tuple[str, str | None]]] | None:
    """(canonical attributes, their keys joined, node, extra human nodes, decided tool-call
    ids) of one span, or None (and a reason in ``rejected``) when it fails validation."""
    keys = "\n".join(sp.attributes)
    a = canonical_attributes(sp.attributes, sp.name, sp.events, keys)
    if a is not sp.attributes:
        keys = "\n".join(a)
    flat = unflatten(a, keys)
    try:
        mapped, extra_nodes, calls = node_fields(sp, a, flat)
        node = NodeIn.model_validate(mapped)
        more = [NodeIn.model_validate(x) for x in extra_nodes]
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        rejected.append(Rejected(f"span {sp.span_id}: {where}: {err['msg']}"))
        return None
    return a, keys, node, more, calls


def _trace(trace_id: str, nodes: list[NodeIn], tedges: list[EdgeIn], fields: dict[str, Any],
           res_fields: list[dict[str, str]], meta: dict[str, Any], tags: list[str],
           outcome: OutcomeIn | None) -> TraceIn:
    """One trace's part from its mapped spans."""
    if len({n.node_id for n in nodes}) < len(nodes):  # a span sent twice in one request
        nodes = list({n.node_id: n for n in nodes}.values())  # is stored once: the last
    for rf in res_fields:  # span attributes win over resource attributes
        for k, v in rf.items():
            fields.setdefault(k, v)
    for k in ("team", "feature"):  # also from trace metadata of that name (docs/ingest.md)
        if k not in fields and isinstance(meta.get(k), str | int):
            fields[k] = str(meta[k])
    return TraceIn(
        trace_id=trace_id, nodes=nodes, edges=tedges, tags=tags or None,
        metadata=bounded_attributes(meta.items()) if meta else None, outcome=outcome,
        **fields,
    )
