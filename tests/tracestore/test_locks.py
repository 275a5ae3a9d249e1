"""Named locks and the write lock belong to one store, not to the database server: on
PostgreSQL, advisory-lock keys are per database, so without the store's schema in the key two
stores in one database (tenants in schemas, or the test suite's stores) would wait for each
other's jobs, writes and retention."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from tests.conftest import pg_schema_store
from tracestore.store.engine import make_engine
from tracestore.store.locks import exclusive, store_key_args
from tracestore.store.partitions import WRITE_LOCK_KEY


@contextmanager
def _other_store(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second store beside ``db_url``: another schema of the same PostgreSQL database, or
    another SQLite file."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    with pg_schema_store() as url:
        yield url


def test_a_named_lock_is_held_per_store(db_url: str, tmp_path: Path) -> None:
    with _other_store(db_url, tmp_path) as other_url:
        here, here_too, other = make_engine(db_url), make_engine(db_url), make_engine(other_url)
        try:
            with exclusive(here, "digest:1") as held:
                assert held
                with exclusive(here_too, "digest:1", wait=False) as again:
                    assert again is False  # the same store: taken
                with exclusive(other, "digest:1", wait=False) as elsewhere:
                    assert elsewhere is True  # another store of the same database: free
                with exclusive(here_too, "alerts:1", wait=False) as another_name:
                    assert another_name is True
            with exclusive(here_too, "digest:1", wait=False) as after:
                assert after is True  # let go on exit
        finally:
            for e in (here, here_too, other):
                e.dispose()


def _take_write_lock(engine: Engine, *, shared: bool) -> None:
    """Take the store's write lock (as a writer, shared; as retention, exclusive) in a
    transaction that fails after 300 ms of waiting."""
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL lock_timeout = '300ms'")
        conn.exec_driver_sql(f"SELECT {fn}({store_key_args(WRITE_LOCK_KEY)})")


def test_retention_in_one_store_does_not_hold_back_writes_in_another(
        db_url: str, tmp_path: Path) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the write lock is an advisory lock of PostgreSQL; SQLite has one writer")
    with _other_store(db_url, tmp_path) as other_url:
        here, other = make_engine(db_url), make_engine(other_url)
        try:
            with here.begin() as retention:  # retention holds this store's write lock
                retention.exec_driver_sql(
                    f"SELECT pg_advisory_xact_lock({store_key_args(WRITE_LOCK_KEY)})")
                _take_write_lock(other, shared=True)  # another store writes meanwhile
                with pytest.raises(OperationalError, match="lock timeout"):
                    _take_write_lock(here, shared=True)  # this store's writers wait
            _take_write_lock(here, shared=True)
        finally:
            here.dispose()
            other.dispose()
