"""Batched reads of stored traces for analysis: many traces per query, graphs built once.

A batch of trace ids costs four queries (trace rows, node rows, edge rows, the outcomes of its
tasks) whatever its size, run on the driver's cursor (:func:`read_batch`); the rows are
grouped in Python and handed to :func:`tracestore.store.graph.graph_from_parts`
(:func:`build_batch`).

>>> from tracestore.store.engine import create_schema, make_engine
>>> from sqlalchemy.orm import Session
>>> engine = make_engine("sqlite://"); create_schema(engine)
>>> with Session(engine) as s:
...     list(iter_trace_graphs(s, project_id=1, trace_ids=["missing"]))
[]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NamedTuple

import networkx as nx
import orjson
from sqlalchemy import JSON, Boolean, Float, Integer, String, Table, and_, or_, select
from sqlalchemy.orm import Session

from tracestore.store.engine import fetch_in
from tracestore.store.graph import graph_from_parts
from tracestore.store.partitions import by_partition
from tracestore.store.tables import EDGE_T, NODE_T, OUTCOME_T, TRACE_T

__all__ = [
    "BATCH_SIZE", "NODE_BOOKKEEPING", "Batch", "LoadedTrace", "Window", "build_batch",
    "iter_trace_graphs", "preloaded", "read_batch", "select_trace_ids", "window_conds",
]


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


class LoadedTrace(NamedTuple):
    """One trace's graph plus the row facts the store needs back after analysis. (A named
    tuple: made once per trace read, and a frozen dataclass' ``__init__`` cost three times
    as much.)"""

    trace_id: str
    workflow: str | None
    started_at: float | None
    updated_at: float
    graph: nx.DiGraph[str]
    user_id: str | None = None


def window_conds(table: Table, project_id: int, since: float | None, until: float | None,
                 equals: Mapping[str, str | None]) -> list[Any]:
    """Conditions on a per-trace table with ``project_id`` and ``started_at`` (``traces``,
    ``trace_summaries``): the project, ``since <= started_at < until`` (either bound open), and
    each column of ``equals`` equal to its value (a ``None`` value: no condition)."""
    c = table.c
    conds: list[Any] = [c.project_id == project_id]
    if since is not None:
        conds.append(c.started_at >= since)
    if until is not None:
        conds.append(c.started_at < until)
    conds += [c[col] == v for col, v in equals.items() if v is not None]
    return conds


def select_trace_ids(
    session: Session, *, project_id: int, window: Window, settled_before: float | None = None
) -> list[str]:
    """Ids of the traces in ``window``, sorted. With ``settled_before``, only traces last
    updated before it and not analysed since their last update (the background worker)."""
    t = TRACE_T.c
    conds = window_conds(TRACE_T, project_id, window.since, window.until,
                         {"workflow": window.workflow})
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


@dataclass(frozen=True)
class _Reader:
    """A batch read of some columns of one table, run on the raw DB-API cursor.

    SQLAlchemy's row processing was a third of the reading time (bench/RESULTS.md); here
    the driver's tuples are turned into dicts by :attr:`to_dict`, which applies what a Core
    ``select`` would have: JSON columns are read as text (JSON ``null`` made SQL NULL by
    ``NULLIF``) and parsed with orjson (several times faster than the drivers' stdlib
    ``json`` and the same values on both backends); columns whose type converts driver
    values (booleans stored as 0/1 by SQLite) go through SQLAlchemy's own result processor.
    On SQLite, the text, integer and boolean columns of a wide read arrive packed in one JSON
    array (see :func:`_packable`).
    """

    sql: str  # for db.fetch_in: "{mark}" for the project, "{marks}" for the trace ids
    # row tuple -> {column: value} without None values, for the first ``keep`` columns
    # (with the wide node read's ``pack``: the other columns' values, then that dict)
    to_dict: Callable[[Sequence[Any]], Any]


def _row_function(names: Sequence[str], json_cols: Iterable[str],
                  convert: Mapping[str, Any], packed: Sequence[str] = (),
                  tail: Sequence[str] = ()) -> Callable[[Sequence[Any]], Any]:
    """A function of a row tuple returning ``{name: value}`` for the non-None values of the
    first ``len(names)`` columns, JSON parsed (JSON ``null`` left out, like SQL NULL) and
    values converted. With ``packed``, the row's first value is a JSON array of those
    columns' values (in that order) and the other columns follow it; the dict's keys keep
    the order of ``names`` either way. With ``tail`` (columns that follow ``names`` in the
    row, or sit in the packed array), the function returns ``(*tail values as read, dict)``.

    >>> f = _row_function(["a", "b", "c"], ["b"], {"c": bool})
    >>> f((1, '{"x": 1}', 0)), f((None, None, None))
    ({'a': 1, 'b': {'x': 1}, 'c': False}, {})
    """
    js = set(json_cols)
    # name -> (from the packed array?, index there or in the row)
    where: dict[str, tuple[bool, int]] = {name: (True, j) for j, name in enumerate(packed)}
    i = 1 if packed else 0
    for name in (*names, *tail):
        if name not in where:
            where[name] = (False, i)
            i += 1
    # (name, packed?, index, the function applied to a non-None value or None)
    steps = [(name, *where[name], _loads if name in js else convert.get(name))
             for name in names]
    tails = [where[name] for name in tail]

    def to_dict(row: Sequence[Any]) -> Any:
        p = _loads(row[0]) if packed else None
        d: dict[str, Any] = {}
        for name, in_p, k, fn in steps:
            v = p[k] if in_p else row[k]  # type: ignore[index]
            if v is not None:
                if fn is not None:
                    v = fn(v)
                    if v is None:
                        continue
                d[name] = v
        if tails:
            return (*[p[k] if in_p else row[k] for in_p, k in tails], d)  # type: ignore[index]
        return d

    return to_dict


_READERS: dict[tuple[str, str, tuple[str, ...], int, bool], _Reader] = {}


def _packable(c: Any) -> bool:
    """Whether SQLite can hand column ``c`` over inside a ``json_array(...)`` with its value
    unchanged: text columns (always TEXT or NULL: text affinity turns anything else written
    to them into text) and integer and boolean columns (the schemas validate them as ints,
    at most 10**12 for counts; booleans are stored as 0/1), whose JSON is exact; not REAL
    columns (SQLite's JSON writes a REAL with 15 significant digits, not the shortest
    round trip) nor JSON columns (read as text and parsed once; packing them saved nothing).

    Why pack: Python's ``sqlite3`` makes one call into SQLite per column per row whether
    the value is NULL or not, so a wide, mostly NULL node row costs by its column count; one
    JSON text per row, parsed by orjson, replaces 31 of the node read's 40 values
    (bench/RESULTS.md).
    """
    if isinstance(c.type, JSON):
        return False
    return c.type._type_affinity in (String, Integer, Boolean)


def _reader(session: Session, table: Table, names: Sequence[str], keep: int,
            pack: bool = False) -> _Reader:
    """The read of ``names`` from ``table``; ``to_dict`` maps the first ``keep`` of them.
    With ``pack`` (the wide node read), ``to_dict`` returns ``(*values of the columns past
    keep, dict)``, and on SQLite the :func:`_packable` columns among all of ``names`` but the
    last come in one JSON array ahead of the others (the columns past ``keep`` included): the
    last column stays the row's last value, so rows can be grouped by it unconverted."""
    dialect = session.get_bind().dialect
    key = (dialect.name, table.name, tuple(names), keep, pack)
    r = _READERS.get(key)
    if r is not None:
        return r
    quote = dialect.identifier_preparer.quote
    packed: list[str] = []
    if pack and dialect.name == "sqlite":
        packed = [n for n in names[:-1] if _packable(table.c[n])]
    exprs: list[str] = []
    if packed:
        exprs.append(f"json_array({', '.join(quote(n) for n in packed)})")
    json_cols: list[str] = []
    convert: dict[str, Any] = {}
    for name in names:
        c = table.c[name]
        q = quote(name)
        if name in packed:  # its value comes from the array; booleans still converted
            proc = c.type.dialect_impl(dialect).result_processor(dialect, None)
            if proc is not None:
                convert[name] = proc
            continue
        if isinstance(c.type, JSON):
            exprs.append(f"NULLIF(CAST({q} AS TEXT), 'null')")
            json_cols.append(name)
            continue
        exprs.append(q)
        if isinstance(c.type, Float) and not c.type.asdecimal:
            continue  # floats from both drivers (PG's processor wants the driver's type code)
        proc = c.type.dialect_impl(dialect).result_processor(dialect, None)
        if proc is not None:
            convert[name] = proc
    sql = (f"SELECT {', '.join(exprs)} FROM {table.name} "
           "WHERE project_id = {mark} AND trace_id IN ({marks})")
    r = _Reader(sql, _row_function(names[:keep], json_cols, convert, packed,
                                   names[keep:] if pack else ()))
    _READERS[key] = r
    return r


def _names(table: Table, skip: Iterable[str] = ()) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if c.name not in set(skip))


# Stored node columns that are bookkeeping, not part of the graph contract
# (analyzers.graph): where a node's type and cost came from (``source_kind``,
# ``price_source``), the producer's own cost and whether it disagrees with ours
# (``reported_cost_usd``, ``cost_mismatch``). No analyzer, attribution or summary reads them;
# the trace API (GET .../graph) builds its graph from full rows (tracestore.store.graph).
# Leaving them out of the batched read saves reading and converting ~10% of the values.
NODE_BOOKKEEPING = ("source_kind", "reported_cost_usd", "price_source", "cost_mismatch")
# Node attribute columns: every column of the contract plus the stored extras, in table order
# (the order of a node's attribute dict); node_id and trace_id are selected after them.
_NODE_ATTRS = _names(NODE_T, ("project_id", "trace_id", "node_id", "trace_month",
                              *NODE_BOOKKEEPING))
_NODE_COLS = (*_NODE_ATTRS, "node_id", "trace_id")
_EDGE_COLS = ("trace_id", "src", "dst", "kind", "inferred")
# The trace columns the graph, LoadedTrace and the summaries read.
_TRACE_COLS = ("trace_id", "workflow", "task_id", "team", "feature", "user_id", "started_at",
               "cost_usd", "updated_at", "trace_month")


@dataclass
class Batch:
    """The stored rows of a batch of traces, grouped by trace. Node rows stay the driver's
    tuples until :func:`build_batch` makes one trace's graph of them (``node_item`` turns a
    row into ``(node_id, trace_id, attributes without None)``): a tuple of plain values is
    left alone by the cyclic collector, while a batch of attribute dicts (~40 containers a
    trace) lived long enough to be promoted and rescanned by full collections
    (bench/RESULTS.md, "analysis pass with the collector on")."""

    traces: dict[str, dict[str, Any]]
    nodes: dict[str, list[Sequence[Any]]]
    edges: dict[str, list[tuple[str, str, str, Any]]]
    task_status: dict[str, str]
    node_item: Callable[[Sequence[Any]], Any]


def read_batch(session: Session, *, project_id: int, chunk: Sequence[str]) -> Batch:
    """Four queries: trace rows, node rows (the driver's tuples, by trace), stored edges,
    and the outcome status of the batch's tasks."""
    rd = _reader(session, TRACE_T, _TRACE_COLS, len(_TRACE_COLS))
    to_dict = rd.to_dict
    traces = {row[0]: to_dict(row) for row in fetch_in(session, rd.sql, project_id, chunk)}
    nodes: dict[str, list[Sequence[Any]]] = {tid: [] for tid in traces}
    # PostgreSQL: each month's traces from that month's partitions (by_partition)
    conn, ids = session.connection(), list(traces)
    months = {tid: t["trace_month"] for tid, t in traces.items() if "trace_month" in t}
    rd = _reader(session, NODE_T, _NODE_COLS, len(_NODE_ATTRS), pack=True)
    for part, part_ids in by_partition(conn, NODE_T, months, ids):
        for row in fetch_in(session, _from(rd.sql, NODE_T, part), project_id, part_ids):
            nodes.setdefault(row[-1], []).append(row)  # trace_id: the read's last column
    edges: dict[str, list[tuple[str, str, str, Any]]] = {tid: [] for tid in traces}
    edge_sql = _reader(session, EDGE_T, _EDGE_COLS, 0).sql
    for part, part_ids in by_partition(conn, EDGE_T, months, ids):
        for row in fetch_in(session, _from(edge_sql, EDGE_T, part), project_id, part_ids):
            # inferred as the driver gives it (0/1 on SQLite): the graph takes its truth value
            edges.setdefault(row[0], []).append((row[1], row[2], row[3], row[4]))
    # Outcomes recorded per task (inside a trace's `outcome` or posted later over REST)
    # reach the analyzers as G.graph["outcome_status"]; an outcome node wins over it.
    return Batch(traces, nodes, edges, _task_outcomes(session, project_id, traces.values()),
                 rd.to_dict)


def _from(sql: str, table: Table, name: str) -> str:
    """A reader's ``sql`` reading from ``name`` (a partition of ``table``) instead."""
    return sql.replace(f" FROM {table.name} WHERE ", f" FROM {name} WHERE ", 1)


def build_batch(batch: Batch, chunk: Sequence[str]) -> Iterator[LoadedTrace]:
    """The graphs of a batch read by :func:`read_batch`, in ``chunk`` order (missing ids
    skipped), each made when it is asked for (a trace asked for twice gets two graphs)."""
    node_item = batch.node_item
    for tid in chunk:
        trow = batch.traces.get(tid)
        if trow is None:
            continue
        parts = []
        for row in batch.nodes[tid]:
            node_id, _, attrs = node_item(row)
            parts.append((node_id, attrs))
        graph = graph_from_parts(trow, parts, batch.edges[tid])
        status = batch.task_status.get(trow.get("task_id") or tid)
        if status is not None:
            graph.graph["outcome_status"] = status
        yield LoadedTrace(
            trace_id=tid,
            workflow=trow.get("workflow"),
            started_at=trow.get("started_at"),
            updated_at=trow["updated_at"],
            graph=graph,
            user_id=trow.get("user_id"),
        )


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
        chunk = list(dict.fromkeys(trace_ids[i : i + batch_size]))
        batch = read_batch(session, project_id=project_id, chunk=chunk)
        yield from build_batch(batch, trace_ids[i : i + batch_size])


def _task_outcomes(
    session: Session, project_id: int, trace_rows: Iterable[dict[str, Any]]
) -> dict[str, str]:
    """Outcome status by task id for the tasks of ``trace_rows`` (one query)."""
    tasks = sorted({r.get("task_id") or r["trace_id"] for r in trace_rows})
    if not tasks:
        return {}
    return dict(fetch_in(session, f"SELECT task_id, status FROM {OUTCOME_T.name} "
                         "WHERE project_id = {mark} AND task_id IN ({marks})",
                         project_id, tasks))
