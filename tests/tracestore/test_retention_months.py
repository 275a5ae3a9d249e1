"""Retention by month (docs/operations.md, "Deleting data and retention"): on PostgreSQL,
``prune`` over every project drops the ``nodes``/``edges`` partitions of each month whose
traces all started before the cutoff and deletes the rest row by row; SQLite (and a prune of
one project) deletes rows. The same traces go on both backends. A trace's month is fixed by
its first part, so a root that arrives last and started the month before does not move it."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text

from tracestore.cli.main import cli
from tracestore.ingest.delete import prune
from tracestore.schemas import to_epoch
from tracestore.store.engine import make_engine
from tracestore.store.partitions import month_partitions


def _node(nid: str, parent: str | None, at: str) -> dict[str, Any]:
    return {"node_id": nid, "parent_id": parent, "kind": "llm" if parent else "agent",
            "name": f"step {nid}", "start": at}


def _trace(tid: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {"trace_id": tid, "nodes": list(nodes)}


# the requests, in the order sent
REQUESTS = [
    _trace("sep-a", _node("r", None, "2026-09-10T10:00:00Z"),
           _node("a", "r", "2026-09-10T10:00:05Z")),
    _trace("oct-a", _node("r", None, "2026-10-03T10:00:00Z"),
           _node("a", "r", "2026-10-03T10:00:05Z"), _node("b", "r", "2026-10-03T10:00:09Z")),
    _trace("oct-b", _node("r", None, "2026-10-20T10:00:00Z")),
    # children first (November), root last (October): the month stays November
    _trace("split", _node("a", "r", "2026-11-01T00:05:00Z"),
           _node("b", "r", "2026-11-01T00:06:00Z")),
    _trace("split", _node("r", None, "2026-10-31T23:50:00Z")),
    _trace("nov-a", _node("r", None, "2026-11-10T10:00:00Z"),
           _node("a", "r", "2026-11-10T10:00:01Z")),
    _trace("dec-a", _node("r", None, "2026-12-02T10:00:00Z")),
    # first part in September; its root sent again starting after the cutoff: the trace stays
    # in September's partition but is kept, so September is not dropped whole
    _trace("moved", _node("r", None, "2026-09-15T10:00:00Z")),
    _trace("moved", _node("r", None, "2026-11-20T10:00:00Z")),
]
CUTOFF = "2026-11-05T00:00:00Z"


def _load(client: TestClient) -> None:
    for body in REQUESTS:
        r = client.post("/api/v1/traces", json=body)
        assert r.status_code == 200, r.text
    r = client.post("/api/v1/traces", json={"trace_id": "oct-a", "edges": [
        {"src": "a", "dst": "b", "kind": "uses"}]})
    assert r.status_code == 200, r.text


def _state(db_url: str) -> tuple[dict[str, tuple[int, int]], list[int]]:
    """trace id -> (trace_month, its node rows), and the months with a partition."""
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT t.trace_id, t.trace_month, (SELECT count(*) FROM nodes n WHERE "
            "n.project_id = t.project_id AND n.trace_id = t.trace_id "
            "AND n.trace_month = t.trace_month) FROM traces t")).all()
        parts = month_partitions(conn)
    engine.dispose()
    return {r[0]: (r[1], r[2]) for r in rows}, parts


def test_a_trace_keeps_the_month_of_its_first_part(client: TestClient, db_url: str) -> None:
    _load(client)
    state, parts = _state(db_url)
    assert state == {"sep-a": (202609, 2), "oct-a": (202610, 3), "oct-b": (202610, 1),
                     "split": (202611, 3), "nov-a": (202611, 2), "dec-a": (202612, 1),
                     "moved": (202609, 1)}
    split = client.get("/api/v1/traces/split").json()
    assert (split["started_at"], len(split["nodes"])) == ("2026-10-31T23:50:00.000Z", 3)
    if "postgresql" in db_url:
        assert parts == [202609, 202610, 202611, 202612]
    else:
        assert parts == []


def test_prune_drops_whole_months_older_than_the_cutoff(client: TestClient,
                                                        db_url: str) -> None:
    _load(client)
    engine = make_engine(db_url)
    deleted = prune(engine, before=to_epoch(CUTOFF))
    engine.dispose()
    state, parts = _state(db_url)
    # started before the cutoff: sep-a, oct-a, oct-b, split (its root: October 31)
    assert state == {"nov-a": (202611, 2), "dec-a": (202612, 1), "moved": (202609, 1)}
    assert (deleted.traces, deleted.nodes, deleted.edges) == (4, 9, 1)
    if "postgresql" in db_url:
        # October went whole (oct-a, oct-b); September holds "moved", kept: rows deleted there
        assert deleted.months == 1
        assert parts == [202609, 202611, 202612]
    else:
        assert deleted.months == 0
    assert sorted(t["trace_id"] for t in client.get("/api/v1/traces").json()["items"]) == [
        "dec-a", "moved", "nov-a"]
    # later, every trace of September is past the cutoff: the month goes whole
    engine = make_engine(db_url)
    deleted = prune(engine, before=to_epoch("2026-12-01T00:00:00Z"))
    engine.dispose()
    state, parts = _state(db_url)
    assert state == {"dec-a": (202612, 1)}
    assert (deleted.traces, deleted.nodes) == (2, 3)
    if "postgresql" in db_url:
        assert (deleted.months, parts) == (2, [202612])


def test_prune_of_one_project_deletes_rows(client: TestClient, db_url: str) -> None:
    _load(client)
    r = CliRunner().invoke(cli, ["prune", "--before", CUTOFF, "--project", "default",
                                 "--database-url", db_url], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "deleted 4 traces" in r.output and "(9 nodes, 1 edges" in r.output
    state, parts = _state(db_url)
    assert sorted(state) == ["dec-a", "moved", "nov-a"]
    if "postgresql" in db_url:  # rows went; every partition stays
        assert parts == [202609, 202610, 202611, 202612]


def test_writers_in_parallel_make_a_new_month_once(db_url: str) -> None:
    """Several writers (own connections, as several server processes) storing traces of a
    month with no partition yet at the same moment: every write succeeds, and the month gets
    one partition of each per-span table."""
    from concurrent.futures import ThreadPoolExecutor

    from tracestore.config import Settings
    from tracestore.ingest.pipeline import Writer, project_id_for
    from tracestore.store.engine import create_schema

    engine = make_engine(db_url)
    create_schema(engine)
    pid = project_id_for(engine, "default")
    settings = Settings(database_url=db_url, ingest_workers=0)
    writers = [Writer(make_engine(db_url), settings) for _ in range(4)]

    def write(k: int) -> int:
        return writers[k].ingest_native(pid, [_trace(f"w{k}-{i}", _node(
            "r", None, f"2027-03-0{1 + i}T10:00:00Z")) for i in range(3)]).accepted_nodes

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(write, range(4))) == [3, 3, 3, 3]
    for w in writers:
        w.close()
        w.engine.dispose()
    state, parts = _state(db_url)
    engine.dispose()
    assert len(state) == 12 and {m for m, _ in state.values()} == {202703}
    if "postgresql" in db_url:
        assert parts == [202703]


def test_a_month_whose_locks_wait_is_deleted_by_rows(client: TestClient, db_url: str,
                                                    monkeypatch: Any) -> None:
    """A write in flight (the shared advisory lock held) past the drop's lock timeout: the
    month is not dropped, its traces are deleted row by row in the same prune, and the next
    prune (no write in flight) drops the emptied partitions."""
    if "postgresql" not in db_url:
        pytest.skip("partitions exist on PostgreSQL only")
    import tracestore.ingest.delete as delete
    from tracestore.store.locks import store_key_args
    from tracestore.store.partitions import WRITE_LOCK_KEY

    _load(client)
    monkeypatch.setattr(delete, "DROP_LOCK_TIMEOUT", "200ms")
    engine = make_engine(db_url)
    with engine.connect() as writer:
        writer.execute(text(
            f"SELECT pg_advisory_xact_lock_shared({store_key_args(WRITE_LOCK_KEY)})"))
        deleted = prune(engine, before=to_epoch(CUTOFF))
        writer.rollback()
    state, parts = _state(db_url)
    assert (deleted.months, deleted.traces, deleted.nodes) == (0, 4, 9)
    assert sorted(state) == ["dec-a", "moved", "nov-a"]
    assert parts == [202609, 202610, 202611, 202612]
    # the usual timeout again (the app's background analysis may be reading nodes)
    monkeypatch.undo()
    deleted = prune(engine, before=to_epoch(CUTOFF))
    engine.dispose()
    assert (deleted.months, deleted.traces) == (1, 0)  # October, now empty
    assert _state(db_url)[1] == [202609, 202611, 202612]
