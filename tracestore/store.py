"""The write path: validated traces in, rows upserted, roll-ups recomputed.

One function, :func:`write_traces`, serves native ingest, OTLP ingest and the CLI. It takes the
session as a keyword argument and never commits: the caller owns the transaction.

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
import json
import operator
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Table, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tracestore.db import update_per_trace, upsert
from tracestore.models import Edge, Node, Outcome, Trace
from tracestore.pricing import PRICED_KINDS, Pricer
from tracestore.schemas import NodeIn, OutcomeIn, TraceIn
from tracestore.summaries import refresh_tasks

__all__ = [
    "content_hash",
    "canonical_json",
    "node_row",
    "upsert_rows_fast",
    "write_traces",
    "write_outcomes",
    "recompute_rollups",
]

TRACE_T: Table = Trace.__table__  # type: ignore[attr-defined]
NODE_T: Table = Node.__table__  # type: ignore[attr-defined]
EDGE_T: Table = Edge.__table__  # type: ignore[attr-defined]
OUTCOME_T: Table = Outcome.__table__  # type: ignore[attr-defined]

_TRACE_FIELDS = (
    "workflow", "task_id", "team", "feature", "user_id", "session_id", "environment",
    "service_name", "tags",
)


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


def _cap(text: str | None, cap: int, field: str, cut: dict[str, int]) -> tuple[str | None, str | None]:
    """Keep at most ``cap`` characters; return (kept text, hash of the full text)."""
    if text is None:
        return None, None
    h = content_hash(text)
    if len(text) > cap:
        cut[field] = len(text)
        return text[:cap], h
    return text, h


def node_row(project_id: int, trace_id: str, node: NodeIn, cap: int) -> dict[str, Any]:
    """Normalise one validated node into a ``nodes`` row (content capped and hashed)."""
    # A copy of the validated field values: ``model_dump`` per node cost more than all the
    # rest of this function (bench/RESULTS.md); NodeIn has only flat fields besides these.
    row = dict(node.__dict__)
    cut: dict[str, int] = {}
    row["project_id"] = project_id
    row["trace_id"] = trace_id
    prompt, ph = _cap(node.prompt, cap, "prompt", cut)
    output, oh = _cap(node.output, cap, "output", cut)
    row["prompt"], row["output"] = prompt, output
    row["prompt_hash"] = node.prompt_hash or ph
    row["output_hash"] = node.output_hash or oh
    if node.documents is not None:
        docs = []
        for i, d in enumerate(node.documents):
            doc = {k: v for k, v in d.__dict__.items() if v is not None}
            if d.content is not None:
                doc["content"], doc["content_hash"] = _cap(
                    d.content, cap, f"documents.{i}.content", cut
                )
            docs.append(doc)
        row["documents"] = docs
    else:
        row["documents"] = None
    args = node.args
    if args is not None:
        canon = canonical_json(args)
        row["args_hash"] = node.args_hash or content_hash(canon)
        if len(canon) > cap:
            cut["args"] = len(canon)
            args = {"_truncated": canon[:cap]}
    row["args"] = args
    result = node.result
    if result is not None and not isinstance(result, str):
        result = canonical_json(result)
    kept, rh = _cap(result, cap, "result", cut)
    row["result"] = kept
    row["result_hash"] = node.result_hash or rh
    attrs = dict(node.attributes) if node.attributes else {}
    if cut:
        attrs["tracestore.truncated"] = cut
    row["attributes"] = attrs or None
    row["cost_usd"] = None
    row["price_source"] = None
    row["priced"] = False
    return row


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # e.g. an integer beyond 64 bits from a non-JSON source
        return json.dumps(value, default=str)


def upsert_rows_fast(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], *, keys: Sequence[str],
    update: bool = True, batch_size: int = 1000,
) -> None:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` every other column (``DO NOTHING`` with
    ``update=False``), as :func:`db.upsert`
    does, but handed to the driver's ``executemany`` as plain tuples. SQLAlchemy's per-row
    bind processing was the largest cost of native ingest (bench/RESULTS.md); here JSON
    columns are encoded once with orjson (``None`` as JSON ``null``, like the JSON type) and
    everything else goes to the driver as is. All rows must have the same keys."""
    if not rows:
        return
    first = rows[0]
    cols = [c for c in table.columns if c.name in first]
    names = [c.name for c in cols]
    is_json = [isinstance(c.type, JSON) for c in cols]
    mark = "?" if session.get_bind().dialect.name == "sqlite" else "%s"
    sets = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n not in keys)
    quoted = ", ".join(f'"{n}"' for n in names)
    action = f"UPDATE SET {sets}" if sets and update else "NOTHING"
    sql = (f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join([mark] * len(names))}) "
           f"ON CONFLICT ({', '.join(keys)}) DO {action}")
    get = operator.itemgetter(*names)
    json_at = [i for i, j in enumerate(is_json) if j]
    params: list[Any] = []
    for r in rows:
        values = list(get(r))
        for i in json_at:
            values[i] = _json_text(values[i])
        params.append(tuple(values))
    conn = session.connection()
    for i in range(0, len(params), batch_size):
        conn.exec_driver_sql(sql, params[i : i + batch_size])


def _trace_upsert(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert trace rows; existing fields are kept where the new part leaves them null."""
    if not rows:
        return
    insert = sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
    stmt = insert(TRACE_T)
    set_: dict[str, Any] = {
        f: func.coalesce(stmt.excluded[f], TRACE_T.c[f]) for f in (*_TRACE_FIELDS, "metadata")
    }
    set_["updated_at"] = stmt.excluded.updated_at
    stmt = stmt.on_conflict_do_update(index_elements=["project_id", "trace_id"], set_=set_)
    session.execute(stmt, list(rows))


def write_outcomes(
    session: Session, *, project_id: int, outcomes: Iterable[OutcomeIn], now: float
) -> int:
    """Upsert outcomes keyed by ``task_id`` (posting again updates). Returns the count."""
    rows = []
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
    upsert(session, OUTCOME_T, rows, keys=["project_id", "task_id"])
    # A late outcome refreshes the precomputed summaries of its task's traces (no node reads).
    refresh_tasks(session, project_id=project_id, task_ids=[r["task_id"] for r in rows])
    return len(rows)


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
    trace_rows: dict[str, dict[str, Any]] = {}
    node_rows: list[dict[str, Any]] = []
    edge_rows: list[dict[str, Any]] = []
    outcomes: list[tuple[OutcomeIn, str | None]] = []
    for t in traces:
        row = trace_rows.get(t.trace_id)
        new = {f: getattr(t, f) for f in _TRACE_FIELDS}
        new["metadata"] = t.metadata
        if row is None:
            row = {"project_id": project_id, "trace_id": t.trace_id, "updated_at": now, **new}
            trace_rows[t.trace_id] = row
        else:  # two parts of one trace in the same request: later non-null values win
            row.update({k: v for k, v in new.items() if v is not None})
        for n in t.nodes:
            nr = node_row(project_id, t.trace_id, n, max_content_chars)
            node_rows.append(nr)
            if n.kind == "outcome" and n.outcome_status:
                outcomes.append(
                    (
                        OutcomeIn(
                            task_id=t.task_id or t.trace_id,
                            status=n.outcome_status,
                            type=n.outcome_type,
                            value_usd=n.outcome_value_usd,
                            occurred_at=n.end or n.start,
                            trace_id=t.trace_id,
                            workflow=t.workflow,
                        ),
                        n.node_id,
                    )
                )
        for e in t.edges:
            edge_rows.append(
                {
                    "project_id": project_id,
                    "trace_id": t.trace_id,
                    "src": e.src,
                    "dst": e.dst,
                    "kind": e.kind,
                    "inferred": False,
                }
            )
        if t.outcome is not None:
            o = t.outcome
            outcomes.append(
                (
                    o.model_copy(
                        update={
                            "task_id": o.task_id or t.task_id or t.trace_id,
                            "trace_id": o.trace_id or t.trace_id,
                            "workflow": o.workflow or t.workflow,
                        }
                    ),
                    None,
                )
            )
    # Within one request the last copy of a node wins, as it would across requests.
    dedup: dict[tuple[str, str], dict[str, Any]] = {}
    for nr in node_rows:
        dedup[(nr["trace_id"], nr["node_id"])] = nr
    node_rows = list(dedup.values())
    pricer.price_rows(node_rows, session=session, project_id=project_id)
    _trace_upsert(session, list(trace_rows.values()))
    upsert_rows_fast(session, NODE_T, node_rows, keys=["project_id", "trace_id", "node_id"],
                     batch_size=batch_size)
    upsert_rows_fast(session, EDGE_T, edge_rows,
                     keys=["project_id", "trace_id", "src", "dst", "kind"], update=False,
                     batch_size=batch_size)
    if outcomes:
        write_outcomes(session, project_id=project_id, outcomes=[o for o, _ in outcomes], now=now)
    recompute_rollups(session, project_id=project_id, trace_ids=list(trace_rows))
    return len(node_rows)


def recompute_rollups(session: Session, *, project_id: int, trace_ids: Sequence[str]) -> None:
    """Recompute the roll-up columns of ``trace_ids`` from their node rows."""
    n = NODE_T.c
    is_model = n.kind.in_(PRICED_KINDS)
    for i in range(0, len(trace_ids), 500):
        chunk = list(trace_ids[i : i + 500])
        agg = session.execute(
            select(
                n.trace_id,
                func.count(),
                func.sum(case((is_model, 1), else_=0)),
                func.sum(n.input_tokens),
                func.sum(n.output_tokens),
                func.sum(func.coalesce(n.cost_usd, 0.0)),
                func.sum(n.reported_cost_usd),
                func.sum(case((is_model & (n.priced == False), 1), else_=0)),  # noqa: E712
                func.sum(case((n.status == "error", 1), else_=0)),
                func.min(n.start),
                func.max(func.coalesce(n.end, n.start)),
                func.sum(case((is_model & (n.priced == False),  # noqa: E712
                               n.input_tokens + n.output_tokens), else_=0)),
                func.sum(case((n.cost_mismatch == True, 1), else_=0)),  # noqa: E712
            )
            .where(n.project_id == project_id, n.trace_id.in_(chunk))
            .group_by(n.trace_id)
        ).all()
        params = [
            {
                "b_trace_id": r[0],
                "node_count": r[1],
                "llm_calls": r[2] or 0,
                "input_tokens": r[3] or 0,
                "output_tokens": r[4] or 0,
                "cost_usd": float(r[5] or 0.0),
                "reported_cost_usd": r[6],
                "unpriced_count": r[7] or 0,
                "error_count": r[8] or 0,
                "started_at": r[9],
                "ended_at": r[10],
                "unpriced_tokens": r[11] or 0,
                "cost_mismatch_count": r[12] or 0,
            }
            for r in agg
        ]
        update_per_trace(session, TRACE_T, params, project_id=project_id)
        root_name = (
            select(n.name)
            .where(
                n.project_id == TRACE_T.c.project_id,
                n.trace_id == TRACE_T.c.trace_id,
                n.parent_id.is_(None),
            )
            .order_by(n.start, n.node_id)
            .limit(1)
            .scalar_subquery()
        )
        base = (TRACE_T.c.project_id == project_id) & TRACE_T.c.trace_id.in_(chunk)
        session.execute(
            update(TRACE_T).where(base, TRACE_T.c.workflow.is_(None)).values(workflow=root_name),
            execution_options={"synchronize_session": False},
        )
        session.execute(
            update(TRACE_T)
            .where(base, TRACE_T.c.task_id.is_(None))
            .values(task_id=TRACE_T.c.trace_id),
            execution_options={"synchronize_session": False},
        )
