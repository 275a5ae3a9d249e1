"""Time partitions of the per-span tables (``nodes``, ``edges``) on PostgreSQL.

Both tables are declared ``PARTITION BY RANGE (trace_month)``: ``trace_month`` is the month
(``yyyymm``, UTC) of the trace, fixed on its ``traces`` row when its first part is written
(the earliest node start of that part, else the time of the write) and never changed after,
so every row of a trace lies in one partition even when a root span that arrives last
started in the month before. Each partition holds one month: ``nodes_p202611`` holds
``trace_month`` 202611. The primary keys end with ``trace_month`` (PostgreSQL requires the
partition key in every unique key) and still lead with ``(project_id, trace_id)``.

Partitions are made as rows arrive (:func:`ensure_partitions`, in the writer's transaction,
serialised across processes by an advisory lock) and dropped whole by retention
(:func:`tracestore.ingest.delete.prune`) once every trace of their month is older than the
cutoff. The writer holds :data:`WRITE_LOCK_KEY` shared for its transaction
(:func:`hold_for_write`) and retention takes it exclusively before dropping a month, so a
partition is never dropped under a write in flight. Statements over many traces read, update
or delete each month's rows in that month's partition, named (:func:`by_partition`). SQLite
has the same columns and keys in plain tables: there nothing is made or dropped, and every
statement names the table. docs/performance.md explains the choices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import ColumnElement, Connection, Table, inspect, select, text, true
from sqlalchemy.engine.reflection import Inspector
from sqlalchemy.orm import Session

from tracestore.store.locks import store_key_args
from tracestore.store.tables import EDGE_T, NODE_T, TRACE_T

__all__ = [
    "PARTITIONED",
    "WRITE_LOCK_KEY",
    "by_partition",
    "ensure_partitions",
    "hold_for_write",
    "is_partitioned",
    "migrate_per_span_tables",
    "month_of",
    "month_partitions",
    "next_month",
    "partition_name",
    "trace_months",
    "window_months",
]

log = logging.getLogger("tracestore")

# The per-span tables, partitioned by trace_month on PostgreSQL.
PARTITIONED: tuple[Table, ...] = (NODE_T, EDGE_T)
# pg_advisory_xact_lock keys, each per store (with its schema: store_key_args): the writer
# holds WRITE_LOCK_KEY shared, retention exclusively ("trw1"); CREATE_LOCK_KEY serialises
# creating partitions ("trp1").
WRITE_LOCK_KEY = 0x74727731
CREATE_LOCK_KEY = 0x74727031


def month_of(epoch: float) -> int:
    """The month ``yyyymm`` (UTC) of epoch seconds.

    >>> month_of(1_794_819_600.0), month_of(1_796_083_199.0), month_of(1_796_083_200.0)
    (202611, 202611, 202612)
    """
    t = time.gmtime(epoch)
    return t.tm_year * 100 + t.tm_mon


def next_month(month: int) -> int:
    """The month after ``month``.

    >>> next_month(202611), next_month(202612)
    (202612, 202701)
    """
    year, mon = divmod(month, 100)
    return year * 100 + mon + 1 if mon < 12 else (year + 1) * 100 + 1


def partition_name(table: Table | str, month: int) -> str:
    """The name of ``table``'s partition for ``month``.

    >>> partition_name("nodes", 202611)
    'nodes_p202611'
    """
    return f"{table if isinstance(table, str) else table.name}_p{month}"


def is_partitioned(conn: Connection) -> bool:
    """Whether this database's per-span tables are partitioned (PostgreSQL)."""
    return conn.dialect.name == "postgresql"


def hold_for_write(session: Session) -> None:
    """PostgreSQL: take :data:`WRITE_LOCK_KEY` shared until the transaction ends, before the
    transaction locks any row (retention, which takes it exclusively, then waits for the
    writes in flight and holds new ones back while it drops a month)."""
    conn = session.connection()
    if is_partitioned(conn):
        conn.exec_driver_sql(
            f"SELECT pg_advisory_xact_lock_shared({store_key_args(WRITE_LOCK_KEY)})")


def ensure_partitions(conn: Connection, months: Iterable[int],
                      tables: Sequence[Table] = PARTITIONED) -> None:
    """Make the monthly partitions of every per-span table for ``months`` that do not exist
    yet (PostgreSQL; a no-op on SQLite). Idempotent and safe across processes: the missing
    ones are made under an advisory lock held to the end of the transaction, with ``IF NOT
    EXISTS``. Creating a partition locks its parent table briefly (once a month).
    ``tables``: which per-span tables (all by default)."""
    if not is_partitioned(conn):
        return
    wanted = [partition_name(t, m) for m in sorted(set(months)) for t in tables]
    if not wanted:
        return
    missing = [r[0] for r in conn.execute(text(
        "SELECT n FROM unnest(CAST(:names AS text[])) AS n WHERE to_regclass(n) IS NULL"),
        {"names": wanted})]
    if not missing:
        return
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({store_key_args(CREATE_LOCK_KEY)})")
    for name in missing:
        table, _, month = name.rpartition("_p")
        m = int(month)
        conn.exec_driver_sql(
            f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{table}" '
            f"FOR VALUES FROM ({m}) TO ({next_month(m)})")
        log.info("created partition %s", name)


def month_partitions(conn: Connection, table: Table = NODE_T) -> list[int]:
    """The months that have a partition of ``table`` (PostgreSQL), sorted; ``[]`` on SQLite."""
    if not is_partitioned(conn):
        return []
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": table.name})
    prefix = f"{table.name}_p"
    return sorted(int(r[0][len(prefix):]) for r in rows
                  if r[0].startswith(prefix) and r[0][len(prefix):].isdigit())


def by_partition(conn: Connection, table: Table, months: Mapping[str, int],
                 trace_ids: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Where the rows of ``trace_ids`` in ``table`` are read, updated or deleted: ``(table or
    partition name, the ids whose rows it holds)``, ids in the order given. SQLite: the table,
    every id. PostgreSQL: each month's partition with its traces (``months``: trace id ->
    ``trace_month``), by name, so a statement reads one partition with only the
    ``(project_id, trace_id)`` conditions it had before partitioning; ids of no known month go
    to the parent table (every partition). Naming the partition instead of adding
    ``trace_month = …`` keeps the planner off a plan that walks the month's rows of the
    project through the primary key's trailing column, which it chose for the roll-up on a
    partition not yet analysed (estimated at a row)."""
    if not trace_ids:
        return []
    if not is_partitioned(conn):
        return [(table.name, list(trace_ids))]
    groups: dict[int, list[str]] = {}
    rest = []
    for tid in trace_ids:
        month = months.get(tid)
        if month is None:
            rest.append(tid)
        else:
            groups.setdefault(month, []).append(tid)
    out = [(partition_name(table, m), ids) for m, ids in sorted(groups.items())]
    return [*out, (table.name, rest)] if rest else out


def trace_months(session: Session, *, project_id: int,
                 trace_ids: Sequence[str]) -> dict[str, int]:
    """The stored ``trace_month`` of each of ``trace_ids`` (those with a trace row)."""
    t = TRACE_T.c
    out: dict[str, int] = {}
    for i in range(0, len(trace_ids), 500):
        chunk = list(trace_ids[i : i + 500])
        out.update((tid, m) for tid, m in session.execute(
            TRACE_T.select().with_only_columns(t.trace_id, t.trace_month)
            .where(t.project_id == project_id, t.trace_id.in_(chunk))) if m is not None)
    return out


def window_months(session: Session, conds: Sequence[ColumnElement[bool]],
                  month: ColumnElement[int]) -> ColumnElement[bool]:
    """``month IN (…)``: the months of the traces ``conds`` (conditions on ``traces``) select,
    ``month`` being the ``trace_month`` column of ``nodes`` or ``edges``. Beside a join of a
    window's traces to that table, PostgreSQL then plans only those months' partitions; a
    join condition could not tell the planner which, and it hash-joined a week's traces to
    every month's rows (a store of 1M nodes over 12 months, a week of 1,918 traces:
    157 ms → 18.5 ms, EXPLAIN ANALYZE), so a window report's cost grew with the months kept.
    A node's ``trace_month`` is its trace's (the writer copies it), so no row is lost.
    SQLite (one table): no condition, and no query."""
    conn = session.connection()
    if not is_partitioned(conn):
        return true()
    t = TRACE_T.c
    months = sorted(m for m in session.execute(select(t.trace_month).where(*conds).distinct())
                    .scalars() if m is not None)
    return month.in_(months)


def _month_sql(conn: Connection, expr: str) -> str:
    """SQL for the month ``yyyymm`` (UTC) of the epoch seconds ``expr``."""
    if conn.dialect.name == "postgresql":
        return f"CAST(to_char(to_timestamp({expr}) AT TIME ZONE 'UTC', 'YYYYMM') AS INTEGER)"
    return f"CAST(strftime('%Y%m', {expr}, 'unixepoch') AS INTEGER)"


def migrate_per_span_tables(conn: Connection) -> None:
    """Bring a store made before ``trace_month`` existed to this schema, in the caller's
    transaction: ``traces`` gets the column (the month of its start, else of its last write)
    and its index; ``nodes`` and ``edges`` are made anew (partitioned on PostgreSQL, keyed
    with ``trace_month`` on both backends) and their rows copied in with their trace's month.
    A no-op on a store that has the column."""
    insp = inspect(conn)
    if "trace_month" not in {c["name"] for c in insp.get_columns(TRACE_T.name)}:
        log.warning("migrating traces: adding trace_month")
        conn.exec_driver_sql(f"ALTER TABLE {TRACE_T.name} ADD COLUMN trace_month INTEGER")
        conn.exec_driver_sql(
            f"UPDATE {TRACE_T.name} SET trace_month = "
            f"{_month_sql(conn, 'COALESCE(started_at, updated_at)')}")
        for index in TRACE_T.indexes:
            if "trace_month" in index.columns:
                index.create(conn, checkfirst=True)
    for table in PARTITIONED:
        if "trace_month" not in {c["name"] for c in insp.get_columns(table.name)}:
            _copy_into_new(conn, table, insp)


def _copy_into_new(conn: Connection, table: Table, insp: Inspector) -> None:
    """Rename ``table`` aside, make it anew from the model, copy the rows in with their
    trace's month (a row whose trace row is gone: the current month), drop the old one."""
    log.warning("migrating %s: keyed and (PostgreSQL) partitioned by trace_month", table.name)
    old = f"_old_{table.name}"
    cols = [c["name"] for c in insp.get_columns(table.name) if c["name"] in table.c]
    indexes = [i["name"] for i in insp.get_indexes(table.name)]
    pk = insp.get_pk_constraint(table.name)["name"]
    conn.exec_driver_sql(f"ALTER TABLE {table.name} RENAME TO {old}")
    for index in indexes:  # they moved with the table; the new one makes them again
        conn.exec_driver_sql(f'DROP INDEX "{index}"')
    if conn.dialect.name == "postgresql":  # so is its key's index, by the same name
        conn.exec_driver_sql(f'ALTER TABLE {old} DROP CONSTRAINT "{pk}"')
    table.create(conn)
    now_month = month_of(time.time())
    months = [r[0] for r in conn.exec_driver_sql(
        f"SELECT DISTINCT trace_month FROM {TRACE_T.name} WHERE trace_month IS NOT NULL")]
    ensure_partitions(conn, [*months, now_month], (table,))
    quoted = ", ".join(f'o."{c}"' for c in cols)
    names = ", ".join(f'"{c}"' for c in cols)
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({names}, trace_month) "
        f"SELECT {quoted}, COALESCE(t.trace_month, {now_month}) FROM {old} o "
        f"LEFT JOIN {TRACE_T.name} t ON t.project_id = o.project_id "
        "AND t.trace_id = o.trace_id")
    conn.exec_driver_sql(f"DROP TABLE {old}")
