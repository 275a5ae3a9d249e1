"""Named locks that hold across every process writing one store.

Scheduled jobs (the weekly digest, alert evaluation) run in every server process; with several
servers on one PostgreSQL, each would find the same digest due, or the same rule newly true, and
post it. :func:`exclusive` makes such a job one-at-a-time:

* PostgreSQL: a session-level advisory lock (``pg_advisory_lock`` / ``pg_try_advisory_lock``)
  on a connection of its own, keyed by a 64-bit hash of the store's schema and the name,
  released on exit (and by PostgreSQL if the process dies, since the connection closes).
  Advisory keys are per database: without the schema, stores in different schemas of one
  database (tenants, or the test suite's stores) would wait for each other's jobs.
* SQLite: a lock of this process, keyed by the database URL and the name. One server process
  writes a SQLite store (a second is refused at start), so the process is the whole scope.

The job must commit what it decided (a delivery row, a rule's state) before the block ends,
so whoever takes the lock next reads it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

__all__ = ["exclusive", "store_key_args"]

# SQLite only: one lock per (database URL, name), made on first use. The registry guards
# correctness, not speed (docs/operations.md, "Several servers").
_local_locks: dict[tuple[str, str], threading.Lock] = {}
_registry = threading.Lock()


# SQL for a signed 64-bit advisory-lock key: the store's schema and the name (bound as
# :name), hashed by PostgreSQL, so stable across processes and hosts.
_KEY_SQL = "hashtextextended(coalesce(current_schema(), '') || '/' || :name, 0)"


def store_key_args(key: int) -> str:
    """The arguments of a ``pg_advisory_xact_lock*(int, int)`` call for the fixed 32-bit
    ``key`` on this store: the key and a hash of the store's schema, so that stores in
    different schemas of one database do not share it."""
    return f"{key}, hashtext(coalesce(current_schema(), ''))"


@contextmanager
def exclusive(engine: Engine, name: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold the lock ``name`` on this store for the block; yields whether it is held.

    ``wait=False`` yields ``False`` at once when another holder has it (the caller skips the
    job: the holder is doing it)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            fn = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
            got = conn.execute(text(f"SELECT {fn}({_KEY_SQL})"), {"name": name}).scalar()
            held = wait or bool(got)
            conn.commit()
            try:
                yield held
            finally:
                if held:
                    conn.execute(text(f"SELECT pg_advisory_unlock({_KEY_SQL})"),
                                 {"name": name})
                    conn.commit()
        return
    with _registry:
        lock = _local_locks.setdefault((str(engine.url), name), threading.Lock())
    held = lock.acquire(blocking=wait)
    try:
        yield held
    finally:
        if held:
            lock.release()
