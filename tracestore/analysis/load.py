"""Batched reads of stored traces for analysis: many traces per query, graphs built once.

A batch of trace ids costs three queries (trace rows, node rows, edge rows) whatever its size,
instead of three per trace; the rows are grouped in Python and handed to
:func:`tracestore.graph.build_trace_graph`.

>>> from tracestore.db import create_schema, make_engine
>>> from sqlalchemy.orm import Session
>>> engine = make_engine("sqlite://"); create_schema(engine)
>>> with Session(engine) as s:
...     list(iter_trace_graphs(s, project_id=1, trace_ids=["missing"]))
[]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import networkx as nx
import orjson
from sqlalchemy import JSON, Table, Text, and_, cast, or_, select
from sqlalchemy.orm import Session

from tracestore.graph import build_trace_graph
from tracestore.models import Edge, Node, Outcome, Trace

__all__ = [
    "BATCH_SIZE", "LoadedTrace", "Window", "iter_trace_graphs", "preloaded", "select_trace_ids",
]

TRACE_T: Table = Trace.__table__  # type: ignore[attr-defined]
NODE_T: Table = Node.__table__  # type: ignore[attr-defined]
EDGE_T: Table = Edge.__table__  # type: ignore[attr-defined]
OUTCOME_T: Table = Outcome.__table__  # type: ignore[attr-defined]

# Traces per read batch: 500 ids keep the IN (...) list far below SQLite's 32,766 bound
# parameters (SQLITE_MAX_VARIABLE_NUMBER since 3.32) and a batch of 20-node traces at ~10k
# node rows, a few MB of Python objects.
BATCH_SIZE = 500


@dataclass(frozen=True)
class Window:
    """Which traces an analysis run covers: ``since <= started_at < until`` (epoch seconds;
    either bound may be open) and optionally one workflow."""

    since: float | None = None
    until: float | None = None
    workflow: str | None = None


@dataclass(frozen=True)
class LoadedTrace:
    """One trace's graph plus the row facts the store needs back after analysis."""

    trace_id: str
    workflow: str | None
    started_at: float | None
    updated_at: float
    graph: nx.DiGraph


def _window_conds(window: Window, project_id: int) -> list[Any]:
    t = TRACE_T.c
    conds: list[Any] = [t.project_id == project_id]
    if window.workflow is not None:
        conds.append(t.workflow == window.workflow)
    if window.since is not None:
        conds.append(t.started_at >= window.since)
    if window.until is not None:
        conds.append(t.started_at < window.until)
    return conds


def select_trace_ids(
    session: Session, *, project_id: int, window: Window, settled_before: float | None = None
) -> list[str]:
    """Ids of the traces in ``window``, sorted. With ``settled_before``, only traces last
    updated before it and not analysed since their last update (the background worker)."""
    t = TRACE_T.c
    conds = _window_conds(window, project_id)
    if settled_before is not None:
        conds.append(t.updated_at <= settled_before)
        conds.append(or_(t.analyzed_at.is_(None), t.updated_at > t.analyzed_at))
    return list(session.execute(select(t.trace_id).where(and_(*conds)).order_by(t.trace_id))
                .scalars())


def _loads(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # NaN/Infinity, which the stdlib writes and orjson rejects
        return json.loads(raw)


def _columns(table: Table) -> tuple[list[Any], list[str], frozenset[str]]:
    """Columns to select, their names, and the JSON ones. JSON columns are read as text and
    parsed with orjson: several times faster than the drivers' stdlib ``json`` and the same
    values on both backends."""
    cols: list[Any] = []
    names: list[str] = []
    js: set[str] = set()
    for c in table.columns:
        if isinstance(c.type, JSON):
            cols.append(cast(c, Text).label(c.name))
            js.add(c.name)
        else:
            cols.append(c)
        names.append(c.name)
    return cols, names, frozenset(js)


def _rows(session: Session, table: Table, project_id: int, chunk: list[str],
          skip: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Rows of ``table`` for the traces in ``chunk`` as dicts, without None values (absent
    and None read the same through ``dict.get``, and small dicts build graphs faster) and
    without the columns in ``skip``."""
    cols, names, js = _columns(table)
    keep = [i for i, n in enumerate(names) if n not in skip]
    keep_names = [names[i] for i in keep]
    rows = session.execute(
        select(*(cols[i] for i in keep))
        .where(table.c.project_id == project_id, table.c.trace_id.in_(chunk))
    ).all()
    out = []
    for row in rows:
        d = {k: v for k, v in zip(keep_names, row) if v is not None}
        for k in js.intersection(d):
            v = _loads(d[k])
            if v is None:
                del d[k]
            else:
                d[k] = v
        out.append(d)
    return out


_NODE_SKIP = frozenset({"project_id"})


# Graphs already built in this thread (see :func:`preloaded`), by (project, trace id).
_PRELOADED: ContextVar[dict[tuple[int, str], LoadedTrace] | None] = ContextVar(
    "tracestore_preloaded_graphs", default=None)


@contextmanager
def preloaded(project_id: int, loaded: Iterable[LoadedTrace]) -> Iterator[None]:
    """Within the block, :func:`iter_trace_graphs` serves these traces from memory instead of
    reading them again: the post-analysis steps (per-trace summaries) see exactly the graphs
    the analyzers saw, without a second read of the same rows. Per thread (a ContextVar)."""
    token = _PRELOADED.set({(project_id, lt.trace_id): lt for lt in loaded})
    try:
        yield
    finally:
        _PRELOADED.reset(token)


def iter_trace_graphs(
    session: Session, *, project_id: int, trace_ids: Sequence[str], batch_size: int = BATCH_SIZE
) -> Iterator[LoadedTrace]:
    """Graphs of ``trace_ids`` (missing ids are skipped), in the order given, read in batches
    of ``batch_size`` traces (or from memory inside :func:`preloaded`)."""
    pre = _PRELOADED.get()
    if pre is not None and all((project_id, tid) in pre for tid in trace_ids):
        yield from (pre[(project_id, tid)] for tid in trace_ids)
        return
    for i in range(0, len(trace_ids), batch_size):
        chunk = list(trace_ids[i : i + batch_size])
        traces = {r["trace_id"]: r for r in _rows(session, TRACE_T, project_id, chunk)}
        nodes: dict[str, list[dict[str, Any]]] = {tid: [] for tid in traces}
        for r in _rows(session, NODE_T, project_id, chunk, _NODE_SKIP):
            nodes.setdefault(r["trace_id"], []).append(r)
        edges: dict[str, list[dict[str, Any]]] = {tid: [] for tid in traces}
        for r in _rows(session, EDGE_T, project_id, chunk, _NODE_SKIP):
            edges.setdefault(r["trace_id"], []).append(r)
        # Outcomes recorded per task (inside a trace's `outcome` or posted later over REST)
        # reach the analyzers as G.graph["outcome_status"]; an outcome node wins over it.
        task_status = _task_outcomes(session, project_id, traces.values())
        for tid in chunk:
            trow = traces.get(tid)
            if trow is None:
                continue
            graph = build_trace_graph(trow, nodes[tid], edges[tid])
            status = task_status.get(trow.get("task_id") or tid)
            if status is not None:
                graph.graph["outcome_status"] = status
            yield LoadedTrace(
                trace_id=tid,
                workflow=trow.get("workflow"),
                started_at=trow.get("started_at"),
                updated_at=trow["updated_at"],
                graph=graph,
            )


def _task_outcomes(
    session: Session, project_id: int, trace_rows: Iterable[dict[str, Any]]
) -> dict[str, str]:
    """Outcome status by task id for the tasks of ``trace_rows`` (one query)."""
    tasks = sorted({r.get("task_id") or r["trace_id"] for r in trace_rows})
    if not tasks:
        return {}
    rows = session.execute(
        select(OUTCOME_T.c.task_id, OUTCOME_T.c.status).where(
            OUTCOME_T.c.project_id == project_id, OUTCOME_T.c.task_id.in_(tasks)
        )
    ).all()
    return {task: status for task, status in rows}
