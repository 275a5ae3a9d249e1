"""Engine creation, schema creation and every piece of database tuning.

SQLite is the embedded default, PostgreSQL the scale backend; both go through the same
SQLAlchemy Core statements. Every table write goes through :func:`upsert`, one
``INSERT … ON CONFLICT`` whose text both backends accept.

Migrations: the schema is created with ``create_all`` on first start. Additive changes (a new
table, a new nullable column) are applied by :func:`create_schema` too; anything else will go
through Alembic revisions kept in ``tracestore/migrations`` once the first release is cut (see
README, "Schema and migrations").
"""

from __future__ import annotations

import logging
import operator
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    INTEGER,
    JSON,
    BigInteger,
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    event,
    inspect,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, QueuePool
from sqlmodel import SQLModel

from tracestore.store import tables  # (also registers the tables on SQLModel.metadata)
from tracestore.store.jsontext import json_text
from tracestore.store.locks import store_key_args
from tracestore.store.partitions import migrate_per_span_tables
from tracestore.store.waste import backfill_waste

log = logging.getLogger("tracestore")

__all__ = [
    "WalCheckpointer",
    "create_schema",
    "fetch_in",
    "is_sqlite",
    "make_engine",
    "param_mark",
    "session_scope",
    "update_per_trace",
    "upsert",
    "writer_engine",
]


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # 8 KiB pages for a new database (a no-op on an existing one: its page size stays).
    # A node row with content is ~1.7 KB, so 4 KiB pages hold two: most inserts split a
    # page, and a commit and each checkpoint write more page frames (bench/RESULTS.md).
    cur.execute("PRAGMA page_size=8192")
    # WAL: readers never block the writer and vice versa. Cost: a -wal and -shm file beside
    # the database, and the database must sit on a local disk (no NFS).
    cur.execute("PRAGMA journal_mode=WAL")
    # NORMAL under WAL: a commit is durable against a process crash (SIGKILL) but the last
    # transactions may roll back on power loss / OS crash. FULL would fsync every commit.
    cur.execute("PRAGMA synchronous=NORMAL")
    # Wait up to 30 s for the write lock instead of failing with "database is locked".
    # Cost: a writer stuck behind a long transaction waits instead of erroring.
    cur.execute("PRAGMA busy_timeout=30000")
    # Enforce declared foreign keys (cheap; we declare few).
    cur.execute("PRAGMA foreign_keys=ON")
    # 64 MiB page cache per connection (negative = KiB). Cost: memory per open connection.
    cur.execute("PRAGMA cache_size=-65536")
    # Temp B-trees for sorts/group-bys in memory. Cost: memory on big ORDER BY queries.
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` with the backend's tuning applied.

    >>> make_engine("sqlite://").dialect.name
    'sqlite'
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # One connection per checkout; SQLite connections are cheap and this avoids
            # sharing a connection between the writer thread and request threads.
            poolclass=NullPool if url not in ("sqlite://", "sqlite:///:memory:") else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


# The writer's own connection checkpoints the WAL only past this many pages (~40 MiB at the
# default 4 KiB page): a safety valve. Normally WalCheckpointer does it, off the write path.
WRITER_AUTOCHECKPOINT_PAGES = 10_000


def writer_engine(engine: Engine) -> Engine:
    """The engine the single writer uses. For a SQLite file: one connection kept open (a pool
    of one) instead of ``engine``'s connection per checkout. Opening a connection runs the
    pragmas, and closing the last one checkpoints the WAL into the database file and
    truncates it — ~20 ms per request on the ingest path (bench/RESULTS.md). The connection
    leaves checkpoints to :class:`WalCheckpointer` (its own ``wal_autocheckpoint`` is raised
    to :data:`WRITER_AUTOCHECKPOINT_PAGES`). Durability is unchanged (WAL,
    ``synchronous=NORMAL``). Any other engine is returned as is."""
    url = engine.url.render_as_string(hide_password=False)
    if not is_sqlite(engine) or url in ("sqlite://", "sqlite:///:memory:"):
        return engine
    writer = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                           poolclass=QueuePool, pool_size=1, max_overflow=0)
    event.listen(writer, "connect", _sqlite_pragmas)
    event.listen(writer, "connect", _writer_pragmas)
    return writer


def _writer_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # Checkpoint on commit only past this many WAL pages (SQLite's default: 1,000).
    cur.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT_PAGES}")
    cur.close()


# How long a checkpoint waits for more commits to share it (see WalCheckpointer). OTLP ingest,
# 30k spans on SQLite, alternating: 14.6-15.6k spans/s and 42-45 us of the writer's process a
# span with a checkpoint after every commit, 15.8-17.1k and 37-42 us with this (RESULTS.md).
CHECKPOINT_COALESCE_SECONDS = 0.25


class WalCheckpointer:
    """Checkpoints a SQLite WAL from a background thread with its own connection, after each
    write (:meth:`poke`), instead of inside the writer's commit. A checkpoint copies WAL pages
    into the database file and fsyncs it; done by SQLite's autocheckpoint it ran in one
    request in four while that request held the write lock: 30–40 µs per ingested span of the
    single writer's time (bench/RESULTS.md). ``PASSIVE`` never blocks the writer or readers;
    it copies what it can, and the next one copies the rest.

    A checkpoint waits ``coalesce_seconds`` (:data:`CHECKPOINT_COALESCE_SECONDS`) after the
    write that woke it, so that under load the commits of that moment share one checkpoint:
    the pages every commit touches (the tables' and indexes' last leaves and their parents)
    are then copied once per interval instead of once per commit."""

    def __init__(self, engine: Engine,
                 coalesce_seconds: float = CHECKPOINT_COALESCE_SECONDS) -> None:
        self.engine = engine
        self.coalesce_seconds = coalesce_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stopping = False
        self.checkpoints = 0  # run so far (operators' and tests' view of the coalescing)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        """A write was committed: checkpoint soon (starts the thread on first use)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping:
                    self._thread = threading.Thread(target=self._run, name="wal-checkpoint",
                                                    daemon=True)
                    self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        conn = self.engine.raw_connection()
        try:
            while True:
                self._wake.wait()
                self._stop.wait(self.coalesce_seconds)  # the next commits join this one
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    conn.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except Exception:
                    log.exception("WAL checkpoint failed")
        finally:
            conn.close()

    def close(self) -> None:
        self._stopping = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)


# pg_advisory_xact_lock key held while a process creates or migrates the schema ("trac"),
# per store (with its schema: store_key_args).
SCHEMA_LOCK_KEY = 0x74726163


# Tables of earlier releases that hold nothing this one reads, dropped by create_schema:
# digest_cache (stored digests, now in stored_results beside the stored pages; a cache).
RETIRED_TABLES = ("digest_cache",)


def create_schema(engine: Engine) -> None:
    """Create missing tables and indexes (idempotent), add missing nullable columns, and on
    PostgreSQL widen INTEGER columns the models now declare BIGINT (token counts were 32-bit
    there; widening is lossless, SQLite's INTEGER is 64-bit already). A store made before the
    analysis queue existed gets it filled with its traces not analysed since their last
    change, a store made before ``trace_month`` gets it (and on PostgreSQL its per-span
    tables partitioned: :func:`~tracestore.store.partitions.migrate_per_span_tables`), and a
    table whose primary key changed is re-keyed (:func:`_rekey`). One transaction; on
    PostgreSQL under an advisory lock, so server and worker processes starting together do
    not race to create the same tables. A store made before ``trace_waste`` gets it filled
    from its summaries (:func:`~tracestore.store.waste.backfill_waste`), and the tables of
    :data:`RETIRED_TABLES` are dropped."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                f"SELECT pg_advisory_xact_lock({store_key_args(SCHEMA_LOCK_KEY)})")
        new_queue = not inspect(conn).has_table(tables.CLAIM_T.name)
        new_waste = not inspect(conn).has_table(tables.WASTE_T.name)
        SQLModel.metadata.create_all(conn)
        if new_queue:
            _backfill_queue(conn)
        migrate_per_span_tables(conn)
        _rekey(conn)
        _add_columns(conn)
        if new_waste:
            backfill_waste(conn)
        for retired in RETIRED_TABLES:
            conn.execute(text(f"DROP TABLE IF EXISTS {retired}"))


def _rekey(conn: Connection) -> None:
    """Give a table whose primary key differs from its model's the model's key (findings
    were keyed ``(project_id, id)`` before 2026-12-06; now ``(project_id, trace_id, id)``,
    so every key of a per-trace table leads with ``(project_id, trace_id)``). PostgreSQL
    swaps the constraint; SQLite, which cannot alter a key, copies the rows into the table
    made anew."""
    insp = inspect(conn)
    for table in SQLModel.metadata.sorted_tables:
        want = [c.name for c in table.primary_key.columns]
        have = insp.get_pk_constraint(table.name)
        if have["constrained_columns"] == want:
            continue
        log.warning("migrating %s: primary key %s -> %s", table.name,
                    have["constrained_columns"], want)
        if conn.dialect.name == "postgresql":
            conn.execute(text(
                f'ALTER TABLE {table.name} DROP CONSTRAINT "{have["name"]}", '
                f"ADD PRIMARY KEY ({', '.join(want)})"))
            continue
        old = f"_old_{table.name}"
        cols = [c["name"] for c in insp.get_columns(table.name)
                if c["name"] in table.c]
        indexes = [i["name"] for i in insp.get_indexes(table.name)]
        conn.execute(text(f"ALTER TABLE {table.name} RENAME TO {old}"))
        for index in indexes:  # they moved with the table; the new one makes them again
            conn.execute(text(f'DROP INDEX "{index}"'))
        table.create(conn)
        quoted = ", ".join(f'"{c}"' for c in cols)
        conn.execute(text(f"INSERT INTO {table.name} ({quoted}) SELECT {quoted} FROM {old}"))
        conn.execute(text(f"DROP TABLE {old}"))


def _add_columns(conn: Connection) -> None:
    """Nullable columns the models have and the tables lack; INTEGER → BIGINT on PostgreSQL."""
    insp = inspect(conn)
    widen = conn.dialect.name == "postgresql"
    for table in SQLModel.metadata.sorted_tables:
        have = {c["name"]: c["type"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name not in have:
                if col.nullable:
                    coltype = col.type.compile(dialect=conn.dialect)
                    conn.execute(text(
                        f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {coltype}'))
            elif (widen and isinstance(col.type, BigInteger)
                  and type(have[col.name]) is INTEGER):
                conn.execute(text(
                    f'ALTER TABLE {table.name} ALTER COLUMN "{col.name}" TYPE BIGINT'))


def _backfill_queue(conn: Connection) -> None:
    """Queue every trace not analysed since its last change (``tracestore.store.queue``)."""
    q, t = tables.CLAIM_T.name, tables.TRACE_T.name
    conn.execute(text(
        f"INSERT INTO {q} (project_id, trace_id, updated_at) "
        f"SELECT project_id, trace_id, updated_at FROM {t} "
        "WHERE analyzed_at IS NULL OR analyzed_at < updated_at"))


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    *,
    keys: Sequence[str],
    columns: Sequence[str] | None = None,
    update: bool | Collection[str] = True,
    merge: Collection[str] = (),
    encode_json: Callable[[Any], str | None] | None = json_text,
    nulls: Collection[str] = (),
    batch_size: int = 1000,
) -> None:
    """The one upsert every table write goes through: ``INSERT … ON CONFLICT (keys) DO
    UPDATE`` (or ``DO NOTHING``), the same SQL text on SQLite and PostgreSQL, handed to the
    driver's ``executemany`` in batches of ``batch_size``: SQLAlchemy's per-row bind
    processing was the largest cost of ingest and of writing findings (bench/RESULTS.md).
    Does not commit.

    ``rows``: dicts (all with the same keys; ``columns`` is then the table's columns they
    hold, in table order), or tuples in the order of ``columns``. A column left out that has
    a scalar default gets it, as a Core insert would.
    ``update``: ``True`` sets every non-key column written from the new row, ``False`` (or
    an empty collection) does nothing on a conflict, a collection sets only those columns.
    ``merge``: columns set to ``COALESCE(new, old)`` instead (a part that leaves a field
    null keeps the stored value).
    ``encode_json``: encodes the values of JSON columns (default
    :func:`~tracestore.store.jsontext.json_text`, the store's one encoder: the text SQLAlchemy's
    JSON type stores); ``None``: they are encoded already.
    ``nulls``: columns NULL in every row, written as a literal ``NULL`` and left out of the
    tuples (which then hold the other columns, in order): a bound ``None`` costs sqlite3 an
    adapter lookup, ~1 µs, and a node row has a dozen columns that no row of a typical
    request sets (bench/RESULTS.md)."""
    if not rows:
        return
    names, params = _upsert_params(table, rows, columns, nulls)
    if encode_json is not None:
        bound = [n for n in names if n not in nulls]
        json_at = [i for i, n in enumerate(bound) if isinstance(table.c[n].type, JSON)]
        if json_at:
            params = [_encoded(r, json_at, encode_json) for r in params]
    sets = tuple(n for n in _update_columns(names, keys, update) if n not in merge) + tuple(
        n for n in names if n in merge)
    conn = session.connection()
    if conn.dialect.name == "postgresql" and not merge and len(params) >= COPY_MIN_ROWS:
        _copy_upsert(conn, table, names, keys, sets, frozenset(nulls), params)
        return
    sql = _upsert_sql(table, tuple(names), tuple(keys), sets, frozenset(merge),
                      frozenset(nulls), param_mark(session))
    for i in range(0, len(params), batch_size):
        conn.exec_driver_sql(sql, params[i : i + batch_size])


# PostgreSQL: from this many rows an upsert goes through COPY and one merge statement (1.3x
# the executemany's nodes/s inserting, 1.7x updating; bench/pg_copy.py, bench/RESULTS.md).
COPY_MIN_ROWS = 64


def _copy_upsert(conn: Connection, table: Table, names: Sequence[str], keys: Sequence[str],
                 sets: Sequence[str], nulls: frozenset[str],
                 params: Sequence[Sequence[Any]]) -> None:
    """:func:`upsert` on PostgreSQL in bulk: ``COPY`` the rows into a temporary staging table
    (one per table and connection, emptied at commit), then one ``INSERT … SELECT DISTINCT ON
    (keys) … ON CONFLICT`` into ``table``, in the rows' order (so rows land as the
    ``executemany`` writes them, and sums over them add in the same order). A key given twice
    keeps its last row, as the ``executemany`` (one statement per row) does."""
    stage = f"_stage_{table.name}"
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name}, "
        "_n bigint GENERATED ALWAYS AS IDENTITY) ON COMMIT DELETE ROWS")
    conn.exec_driver_sql(f"TRUNCATE {stage}")
    bound = ", ".join(f'"{n}"' for n in names if n not in nulls)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {stage} ({bound}) FROM STDIN") as copy:
        for row in params:
            copy.write_row(row)
    quoted = ", ".join(f'"{n}"' for n in names)
    picked = ", ".join("NULL" if n in nulls else f'"{n}"' for n in names)
    on = ", ".join(keys)
    assigned = ", ".join(f'"{n}" = excluded."{n}"' for n in sets)
    action = f"UPDATE SET {assigned}" if assigned else "NOTHING"
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({quoted}) SELECT {picked} FROM (SELECT DISTINCT ON ({on}) "
        f"* FROM {stage} ORDER BY {on}, _n DESC) AS s ORDER BY _n "
        f"ON CONFLICT ({on}) DO {action}")


def _upsert_params(
    table: Table, rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    columns: Sequence[str] | None, nulls: Collection[str],
) -> tuple[list[str], Sequence[Sequence[Any]]]:
    """The column names and the driver's tuples of :func:`upsert`'s ``rows``, with the
    scalar defaults of the table's columns they leave out appended."""
    params: Sequence[Sequence[Any]]
    if columns is not None:
        names, params = list(columns), rows  # type: ignore[assignment]
    else:
        first = rows[0]
        assert isinstance(first, Mapping)
        names = [c.name for c in table.columns if c.name in first]
        bound = [n for n in names if n not in nulls]
        get = operator.itemgetter(*bound)
        params = ([(get(r),) for r in rows] if len(bound) == 1
                  else [get(r) for r in rows])
    defaults = {c.name: c.default.arg for c in table.columns  # type: ignore[attr-defined]
                if c.name not in names and c.default is not None and c.default.is_scalar}
    if defaults:
        names += list(defaults)
        extra = tuple(defaults.values())
        params = [(*p, *extra) for p in params]
    return names, params


def _encoded(row: Sequence[Any], json_at: Sequence[int],
             encode_json: Callable[[Any], str | None]) -> tuple[Any, ...]:
    values = list(row)
    for i in json_at:
        values[i] = encode_json(values[i])
    return tuple(values)


def _update_columns(names: Sequence[str], keys: Sequence[str],
                    update: bool | Collection[str]) -> tuple[str, ...]:
    if update is True:
        return tuple(n for n in names if n not in keys)
    if update is False:
        return ()
    return tuple(update)


@lru_cache(maxsize=256)
def _upsert_sql(table: Table, names: tuple[str, ...], keys: tuple[str, ...],
                sets: tuple[str, ...], merge: frozenset[str], nulls: frozenset[str],
                mark: str) -> str:
    """The statement's text (the same for SQLite and PostgreSQL, both take ``excluded``)."""
    assigned = ", ".join(
        f'"{n}" = COALESCE(excluded."{n}", {table.name}."{n}")' if n in merge
        else f'"{n}" = excluded."{n}"' for n in sets)
    quoted = ", ".join(f'"{n}"' for n in names)
    values_sql = ", ".join("NULL" if n in nulls else mark for n in names)
    action = f"UPDATE SET {assigned}" if assigned else "NOTHING"
    return (f"INSERT INTO {table.name} ({quoted}) VALUES ({values_sql}) "
            f"ON CONFLICT ({', '.join(keys)}) DO {action}")


def param_mark(session: Session) -> str:
    """The driver's placeholder for SQL handed to it directly: ``?`` (sqlite3) or ``%s``
    (psycopg)."""
    return "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"


def fetch_in(session: Session, sql: str, project_id: int,
             values: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The driver's rows of ``sql`` (a query whose only parameters are ``{mark}`` for the
    project and ``{marks}`` for an IN list of ``values``), in the session's transaction, as
    the driver returns them: no SQLAlchemy result processing, which costs more than the query
    for a batch of 500 keys. Callers convert what needs converting."""
    mark = param_mark(session)
    cur = session.connection().connection.cursor()
    try:
        cur.execute(sql.format(mark=mark, marks=", ".join([mark] * len(values))),
                    (project_id, *values))
        return list(cur.fetchall())
    finally:
        cur.close()


def update_per_trace(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], *, project_id: int
) -> None:
    """Bulk ``UPDATE table SET … WHERE project_id = ? AND trace_id = ?`` through one
    ``executemany``: each row carries its trace in ``b_trace_id`` and the new column values
    under their names (every row the same columns). Does not commit."""
    if not rows:
        return
    c = table.c
    session.execute(
        update(table)
        .where(c.project_id == project_id, c.trace_id == bindparam("b_trace_id"))
        .values({k: bindparam(k) for k in rows[0] if k != "b_trace_id"}),
        list(rows),
        execution_options={"synchronize_session": False},
    )


@contextmanager
def session_scope(engine: Engine | Connection) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error (on
    ``engine``'s connection, or on the given connection, which must not be in a
    transaction)."""
    with Session(engine) as session, session.begin():
        yield session
