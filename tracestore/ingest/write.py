"""The write path: validated traces in, rows upserted, roll-ups recomputed.

Two steps serve native ingest, OTLP ingest and the CLI: :func:`build_rows` (pure: redaction,
capping, hashing; OTLP runs it in worker processes) and :func:`write_rows` (pricing, upserts,
roll-ups), which takes the session as a keyword argument and never commits: the caller owns
the transaction. :func:`write_traces` does both in one call.

Merging rules (a trace may arrive in many requests, in any order):

* nodes are keyed by ``(project, trace_id, node_id)``; a node sent again replaces the old row;
* trace-level fields are merged with ``COALESCE(new, old)``, so a later part that omits a
  field never erases it;
* roll-ups (node count, tokens, cost, errors, start/end) are recomputed from the node rows of
  every touched trace, so they are exact whatever the arrival order;
* a trace with no workflow takes its root node's name; ``task_id`` defaults to ``trace_id``.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import JSON, select
from sqlalchemy.orm import Session

from tracestore.pricing.pricer import Pricer
from tracestore.reports.summaries import refresh_tasks
from tracestore.schemas import NodeIn, OutcomeIn, TraceIn
from tracestore.store.engine import upsert
from tracestore.store.jsontext import json_text
from tracestore.store.partitions import ensure_partitions, hold_for_write, month_of, trace_months
from tracestore.store.queue import enqueue
from tracestore.store.rollups import recompute_rollups
from tracestore.store.tables import EDGE_T, NODE_T, OUTCOME_T, TRACE_T

if TYPE_CHECKING:
    from tracestore.ingest.redact import Redactor

__all__ = [
    "NodeTuples",
    "TraceRows",
    "build_rows",
    "canonical_json",
    "content_hash",
    "node_row",
    "node_tuples",
    "recompute_rollups",
    "write_outcomes",
    "write_rows",
    "write_traces",
]


_TRACE_FIELDS = (
    "workflow", "task_id", "team", "feature", "user_id", "session_id", "environment",
    "service_name", "tags",
)
_TRACE_KEYS = ("project_id", "trace_id")


def content_hash(data: str | bytes) -> str:
    """A short, stable content hash (BLAKE2b-128, hex).

    >>> content_hash("hello")
    '46fb7408d4f285228f4af516ea25851b'
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def canonical_json(value: Any) -> str:
    """Sorted-key compact JSON, the canonical form hashed into ``args_hash``.

    >>> canonical_json({"b": 1, "a": [1, 2]})
    '{"a":[1,2],"b":1}'
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def _cap(text: str | None, cap: int, field: str, cut: dict[str, int]
         ) -> tuple[str | None, str | None]:
    """Keep at most ``cap`` characters; return (kept text, hash of the full text)."""
    if text is None:
        return None, None
    h = content_hash(text)
    if len(text) > cap:
        cut[field] = len(text)
        return text[:cap], h
    return text, h


def _documents(docs_in: list[dict[str, Any]], cap: int, cut: dict[str, int]
               ) -> list[dict[str, Any]]:
    """A node's documents as stored: None fields left out, content capped and hashed."""
    docs = []
    for i, d in enumerate(docs_in):
        content = d["content"]
        doc = {k: v for k, v in d.items() if v is not None}
        if content is not None:
            doc["content"], doc["content_hash"] = _cap(content, cap, f"documents.{i}.content",
                                                       cut)
        docs.append(doc)
    return docs


def node_row(project_id: int, trace_id: str, node: NodeIn, cap: int,
             redactor: Redactor | None = None) -> dict[str, Any]:
    """Normalise one validated node into a ``nodes`` row: content redacted (when a
    ``redactor`` is given, before anything is hashed), capped and hashed."""
    # The field values, shallow (iterating a model yields its fields): ``model_dump`` would
    # also convert the nested documents, made into dicts here.
    row = dict(node)
    docs_in: list[dict[str, Any]] | None = None
    if node.documents is not None:
        docs_in = [dict(d) for d in node.documents]
    if redactor:
        redactor.row(row, docs_in)
    cut: dict[str, int] = {}
    row["project_id"] = project_id
    row["trace_id"] = trace_id
    prompt, ph = _cap(row["prompt"], cap, "prompt", cut)
    output, oh = _cap(row["output"], cap, "output", cut)
    row["prompt"], row["output"] = prompt, output
    row["prompt_hash"] = node.prompt_hash or ph
    row["output_hash"] = node.output_hash or oh
    if docs_in is not None:
        row["documents"] = _documents(docs_in, cap, cut)
    args = row["args"]
    if args is not None:
        canon = canonical_json(args)
        row["args_hash"] = node.args_hash or content_hash(canon)
        if len(canon) > cap:
            cut["args"] = len(canon)
            row["args"] = {"_truncated": canon[:cap]}
    result = row["result"]
    if result is not None:
        if not isinstance(result, str):
            result = canonical_json(result)
        kept, rh = _cap(result, cap, "result", cut)
        row["result"] = kept
        row["result_hash"] = node.result_hash or rh
    else:
        row["result_hash"] = node.result_hash or None
    if cut:
        attrs = row["attributes"]
        attrs = dict(attrs) if attrs else {}
        attrs["tracestore.truncated"] = cut
        row["attributes"] = attrs
    elif not row["attributes"]:
        row["attributes"] = None
    row["cost_usd"] = None
    row["price_source"] = None
    row["priced"] = False
    return row


_NODE_JSON = frozenset(c.name for c in NODE_T.columns if isinstance(c.type, JSON))
_NODE_KEYS = ("project_id", "trace_id", "node_id", "trace_month")
_EDGE_KEYS = ("project_id", "trace_id", "src", "dst", "kind", "trace_month")


@dataclass(slots=True)
class NodeTuples:
    """Node rows as the node upsert takes them (:func:`~tracestore.store.engine.upsert`):
    ``columns`` in table order, ``nulls`` the columns NULL in every row, ``values`` one tuple
    per row of the other columns, JSON columns encoded."""

    columns: tuple[str, ...] = ()
    nulls: tuple[str, ...] = ()
    values: list[tuple[Any, ...]] = field(default_factory=list)

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as dicts again (JSON columns stay encoded)."""
        bound = [c for c in self.columns if c not in self.nulls]
        empty = dict.fromkeys(self.nulls)
        return [{**empty, **dict(zip(bound, v, strict=True))} for v in self.values]


def node_tuples(rows: list[dict[str, Any]], *, encode_json: bool = True) -> NodeTuples:
    """Node rows (all with the same keys) → :class:`NodeTuples`, JSON columns encoded as
    :func:`~tracestore.store.jsontext.json_text` (unless ``encode_json=False``: encoded already).
    The JSON values are replaced in the dicts themselves, which is cheaper than building a
    list per row. A column no row sets is listed in ``nulls`` instead of bound row by row."""
    columns = tuple(c.name for c in NODE_T.columns if c.name in rows[0])
    if encode_json:
        json_names = [n for n in columns if n in _NODE_JSON]
        for r in rows:
            for n in json_names:
                r[n] = json_text(r[n])
    nulls = tuple(n for n in columns if all(r[n] is None for r in rows))
    get = operator.itemgetter(*[n for n in columns if n not in nulls])
    if len(columns) - len(nulls) == 1:  # itemgetter of one name returns the bare value
        return NodeTuples(columns, nulls, [(get(r),) for r in rows])
    return NodeTuples(columns, nulls, [get(r) for r in rows])


def _trace_upsert(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert trace rows; existing fields are kept where the new part leaves them null. An
    absent ``tags`` or ``metadata`` is written as SQL NULL, not JSON ``null`` (which is a
    value to COALESCE: a later part without tags erased them)."""
    upsert(session, TRACE_T, rows, keys=_TRACE_KEYS, update=["updated_at"],
           merge=(*_TRACE_FIELDS, "metadata"), encode_json=_json_or_null)


def _json_or_null(value: Any) -> str | None:
    return None if value is None else json_text(value)


def write_outcomes(
    session: Session, *, project_id: int, outcomes: Iterable[OutcomeIn], now: float
) -> int:
    """Upsert outcomes keyed by ``task_id`` (posting again updates). Returns the count."""
    rows: list[dict[str, Any]] = []
    outcomes = list(outcomes)
    # An outcome posted with only a trace_id belongs to that trace's task (when stored).
    by_trace = [o.trace_id for o in outcomes if o.task_id is None and o.trace_id]
    known: dict[str, str] = {}
    if by_trace:
        known = {tid: task for tid, task in session.execute(
            select(TRACE_T.c.trace_id, TRACE_T.c.task_id).where(
                TRACE_T.c.project_id == project_id, TRACE_T.c.trace_id.in_(by_trace))
        ) if task}
    for o in outcomes:
        task = o.task_id or known.get(o.trace_id or "") or o.trace_id
        if task is None:
            continue
        rows.append(
            {
                "project_id": project_id,
                "task_id": task,
                "status": o.status,
                "type": o.type,
                "value_usd": o.value_usd,
                "occurred_at": o.occurred_at,
                "trace_id": o.trace_id,
                "node_id": None,
                "workflow": o.workflow,
                "updated_at": now,
            }
        )
    rows.sort(key=lambda r: r["task_id"])  # one lock order for concurrent writers
    upsert(session, OUTCOME_T, rows, keys=("project_id", "task_id"))
    # A late outcome refreshes the precomputed summaries of its task's traces (no node reads).
    refresh_tasks(session, project_id=project_id, task_ids=[r["task_id"] for r in rows])
    return len(rows)


@dataclass(slots=True)
class TraceRows:
    """What :func:`build_rows` makes of validated traces: plain rows, cheap to pickle, that
    :func:`write_rows` stores. ``traces`` maps trace id to its trace-level fields.

    The OTLP worker processes go one step further (:meth:`encode_nodes`): ``nodes`` become
    ``encoded``, priced by the library's rates and in the node upsert's form, so the single
    writer has no per-node Python work left but the ``executemany``."""

    traces: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[OutcomeIn] = field(default_factory=list)
    encoded: NodeTuples | None = None
    # The Pricer.cost_tolerance ``encoded`` was priced with.
    priced_tolerance: float | None = None

    def add_edge(self, project_id: int, trace_id: str, src: str, dst: str, kind: str) -> None:
        """An edge (and, if this request has none of its nodes, an empty trace row)."""
        if trace_id not in self.traces:
            self.traces[trace_id] = {**dict.fromkeys(_TRACE_FIELDS), "metadata": None}
        self.edges.append({"project_id": project_id, "trace_id": trace_id, "src": src,
                           "dst": dst, "kind": kind, "inferred": False})

    def encode_nodes(self, pricer: Pricer) -> None:
        """Price ``nodes`` without a price book and turn them into ``encoded`` (pure, so
        the OTLP worker processes do it). A project's price book needs the database: when the
        book has overrides, :func:`write_rows` prices the rows again with it, as it prices
        native rows; without one, these are exactly the prices it would compute (one
        difference: a node with neither start nor end is priced at this process's clock,
        milliseconds earlier)."""
        if not self.nodes:
            return
        pricer.price_rows(self.nodes)
        self.encoded = node_tuples(self.nodes)
        self.priced_tolerance = pricer.cost_tolerance
        self.nodes = []


def build_rows(project_id: int, traces: Sequence[TraceIn], *, max_content_chars: int,
               redactor: Redactor | None = None) -> TraceRows:
    """Validated traces → rows: content redacted, capped and hashed. Pure (no database), so
    it may run in another process than :func:`write_rows`."""
    out = TraceRows()
    trace_rows = out.traces
    node_rows: list[dict[str, Any]] = []
    for t in traces:
        row = trace_rows.get(t.trace_id)
        new = {f: getattr(t, f) for f in _TRACE_FIELDS}
        new["metadata"] = redactor.value(t.metadata) if redactor and t.metadata else t.metadata
        if row is None:
            trace_rows[t.trace_id] = new
        else:  # two parts of one trace in the same request: later non-null values win
            row.update({k: v for k, v in new.items() if v is not None})
        for n in t.nodes:
            node_rows.append(node_row(project_id, t.trace_id, n, max_content_chars, redactor))
            if n.kind == "outcome" and n.outcome_status:
                out.outcomes.append(
                    OutcomeIn(
                        task_id=t.task_id or t.trace_id,
                        status=n.outcome_status,
                        type=n.outcome_type,
                        value_usd=n.outcome_value_usd,
                        occurred_at=n.end or n.start,
                        trace_id=t.trace_id,
                        workflow=t.workflow,
                    )
                )
        for e in t.edges:
            out.add_edge(project_id, t.trace_id, e.src, e.dst, e.kind)
        if t.outcome is not None:
            o = t.outcome
            out.outcomes.append(
                o.model_copy(
                    update={
                        "task_id": o.task_id or t.task_id or t.trace_id,
                        "trace_id": o.trace_id or t.trace_id,
                        "workflow": o.workflow or t.workflow,
                    }
                )
            )
    # Within one request the last copy of a node wins, as it would across requests.
    dedup: dict[tuple[str, str], dict[str, Any]] = {}
    for nr in node_rows:
        dedup[(nr["trace_id"], nr["node_id"])] = nr
    out.nodes = list(dedup.values())
    return out


def write_rows(
    session: Session,
    *,
    project_id: int,
    rows: TraceRows,
    pricer: Pricer,
    now: float,
    batch_size: int = 1000,
) -> int:
    """Store the rows of :func:`build_rows`: price the nodes, upsert traces, nodes and edges,
    queue the traces for analysis, record outcomes, recompute the touched traces' roll-ups.
    Returns the nodes written."""
    nodes = _priced_node_tuples(session, project_id, rows, pricer)
    hold_for_write(session)
    # Trace rows first and in trace-id order: the row lock each takes serialises every other
    # write of the same trace (its nodes, edges, queue row, roll-ups) behind this one, so
    # concurrent writers in other processes wait instead of deadlocking (docs/operations.md).
    # A new trace's month is fixed here (kept by every later part): tracestore.store.partitions.
    tids = sorted(rows.traces)
    first = _first_months(nodes, tids, now)
    _trace_upsert(session, [{"project_id": project_id, "trace_id": tid, "updated_at": now,
                             **rows.traces[tid], "trace_month": first[tid]} for tid in tids])
    months = trace_months(session, project_id=project_id, trace_ids=tids)
    ensure_partitions(session.connection(), months.values())
    enqueue(session, project_id=project_id, trace_ids=tids, updated_at=now)
    nodes = _with_months(nodes, months)
    upsert(session, NODE_T, nodes.values, columns=nodes.columns, keys=_NODE_KEYS,
           encode_json=None, nulls=nodes.nulls, batch_size=batch_size)
    edges = [{**e, "trace_month": months[e["trace_id"]]} for e in rows.edges]
    upsert(session, EDGE_T, edges, keys=_EDGE_KEYS, update=False, batch_size=batch_size)
    if rows.outcomes:
        write_outcomes(session, project_id=project_id, outcomes=rows.outcomes, now=now)
    recompute_rollups(session, project_id=project_id, trace_ids=tids, months=months)
    return len(nodes.values)


def _first_months(nodes: NodeTuples, tids: Sequence[str], now: float) -> dict[str, int]:
    """The month of each trace's earliest node start in ``nodes`` (else of ``now``): the
    month a trace new to the store gets."""
    bound = [c for c in nodes.columns if c not in nodes.nulls]
    earliest: dict[str, float] = {}
    if "start" in bound and nodes.values:
        at, st = bound.index("trace_id"), bound.index("start")
        for v in nodes.values:
            s, tid = v[st], v[at]
            if s is not None and (tid not in earliest or s < earliest[tid]):
                earliest[tid] = s
    default = month_of(now)
    return {tid: month_of(earliest[tid]) if tid in earliest else default for tid in tids}


def _with_months(nodes: NodeTuples, months: dict[str, int]) -> NodeTuples:
    """``nodes`` with each row's ``trace_month`` (its trace's, as stored) appended."""
    if not nodes.values:
        return nodes
    at = [c for c in nodes.columns if c not in nodes.nulls].index("trace_id")
    return NodeTuples((*nodes.columns, "trace_month"), nodes.nulls,
                      [(*v, months[v[at]]) for v in nodes.values])


def _priced_node_tuples(session: Session, project_id: int, rows: TraceRows,
                        pricer: Pricer) -> NodeTuples:
    """The node upsert's tuples, priced with the project's price book. Rows as dicts (native
    ingest) are priced and encoded here. Tuples from :meth:`TraceRows.encode_nodes` (priced
    without a book) are used as they are unless the book has overrides or another tolerance
    was used: then they are priced again, through dicts, exactly as native rows are (pricing
    reads no JSON column, so the encoded ones can stay encoded)."""
    enc = rows.encoded
    if enc is None:
        if not rows.nodes:
            return NodeTuples()
        pricer.price_rows(rows.nodes, session=session, project_id=project_id)
        return node_tuples(rows.nodes)
    if rows.priced_tolerance == pricer.cost_tolerance and not pricer.book(
            session, project_id).overrides:
        return enc
    dicts = enc.dicts()
    pricer.price_rows(dicts, session=session, project_id=project_id)
    return node_tuples(dicts, encode_json=False)


def write_traces(
    session: Session,
    *,
    project_id: int,
    traces: Sequence[TraceIn],
    pricer: Pricer,
    max_content_chars: int,
    now: float,
    batch_size: int = 1000,
) -> int:
    """Store validated traces (or parts of traces). Returns the number of nodes written."""
    rows = build_rows(project_id, traces, max_content_chars=max_content_chars)
    return write_rows(session, project_id=project_id, rows=rows, pricer=pricer, now=now,
                      batch_size=batch_size)
