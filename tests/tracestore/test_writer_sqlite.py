"""The SQLite writer: one connection kept open, WAL checkpoints done by a background thread
(not inside the writer's commits), and nothing of either visible in what is stored."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from tracestore.config import Settings
from tracestore.ingest.pipeline import Writer, project_id_for
from tracestore.schemas import TraceIn
from tracestore.store.engine import (
    WRITER_AUTOCHECKPOINT_PAGES,
    WalCheckpointer,
    create_schema,
    make_engine,
)


def _traces(n: int) -> list[TraceIn]:
    return [TraceIn.model_validate({"trace_id": f"t{i}", "nodes": [
        {"node_id": "root", "kind": "agent", "name": "run", "start": 1794819600 + i},
        {"node_id": "llm", "parent_id": "root", "kind": "llm", "provider": "openai",
         "model": "gpt-4o", "input_tokens": 100, "output_tokens": 10, "prompt": "x" * 500},
    ]}) for i in range(n)]


def _main_file_nodes(db: Path, tmp: Path) -> int:
    """Nodes in the database file alone, as if its -wal were lost: what was checkpointed."""
    copy = tmp / "copy.db"
    shutil.copyfile(db, copy)
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT count(*) FROM nodes").fetchone()[0])
    except sqlite3.OperationalError:  # the table itself is not checkpointed yet
        return 0
    finally:
        conn.close()


@contextmanager
def _writer(db: Path) -> Iterator[tuple[Engine, Writer, int]]:
    """A new store in ``db`` with its writer and default project, closed afterwards."""
    settings = Settings(database_url=f"sqlite:///{db}")
    engine = make_engine(settings.database_url)
    create_schema(engine)
    writer = Writer(engine, settings)
    try:
        yield engine, writer, project_id_for(engine, "default")
    finally:
        writer.close()
        engine.dispose()


def _wait_for_main_file(db: Path, tmp: Path, nodes: int) -> int:
    """Nodes in the database file itself once it holds ``nodes`` (or after 30 s)."""
    deadline = time.monotonic() + 30
    while _main_file_nodes(db, tmp) < nodes and time.monotonic() < deadline:
        time.sleep(0.05)
    return _main_file_nodes(db, tmp)


def test_writes_are_checkpointed_in_the_background(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    with _writer(db) as (engine, writer, pid):
        for part in range(3):
            writer.write(pid, _traces(50)[part * 10 : part * 10 + 10])
        # The writer's own connection would not checkpoint 30 small transactions (far under
        # its autocheckpoint limit); the background thread does, soon after the writes.
        with writer._engine.connect() as conn:
            limit = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        assert limit == WRITER_AUTOCHECKPOINT_PAGES
        assert _wait_for_main_file(db, tmp_path, 60) == 60
        with engine.connect() as conn:  # and through SQLite, everything as written
            assert conn.exec_driver_sql("SELECT count(*), sum(input_tokens) FROM nodes").one() \
                == (60, 3000)
    assert not (tmp_path / "w.db-wal").exists()  # the last connection closed cleanly


def test_writes_within_an_interval_share_one_checkpoint(tmp_path: Path) -> None:
    """Twenty commits 10 ms apart, all within one coalescing interval (1 s here), are
    checkpointed together, once: a checkpoint copies the pages every commit touches, so
    once per interval, not per commit (one a poke would be 20)."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}")
    engine = make_engine(settings.database_url)
    create_schema(engine)
    checkpointer = WalCheckpointer(engine, coalesce_seconds=1.0)
    try:
        t0 = time.monotonic()
        for _ in range(20):  # as the writer pokes it after each commit
            checkpointer.poke()
            time.sleep(0.01)
        assert time.monotonic() - t0 < 1.0  # the pokes fell within one interval
        deadline = time.monotonic() + 30
        while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # longer than an interval: a second checkpoint would have run
        assert checkpointer.checkpoints == 1
    finally:
        checkpointer.close()
        engine.dispose()
