"""The one upsert helper (``tracestore.store.engine.upsert``) every table write goes through,
on SQLite and PostgreSQL: dict and tuple rows, defaults, merge, do-nothing, literal NULLs."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from tracestore.store.engine import create_schema, make_engine, session_scope, upsert
from tracestore.store.partitions import ensure_partitions
from tracestore.store.tables import EDGE_T, TRACE_T

EDGE_KEYS = ("project_id", "trace_id", "src", "dst", "kind", "trace_month")


def test_upsert_dicts_tuples_merge_and_nothing(db_url: str) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    t = TRACE_T.c
    with session_scope(engine) as s:
        upsert(s, TRACE_T, [{"project_id": 1, "trace_id": "a", "workflow": "w", "tags": ["x"],
                             "updated_at": 1.0}], keys=("project_id", "trace_id"))
        # a later part without workflow keeps it (merge), updated_at is replaced
        upsert(s, TRACE_T, [{"project_id": 1, "trace_id": "a", "workflow": None,
                             "team": "t", "updated_at": 2.0}],
               keys=("project_id", "trace_id"), update=["updated_at"],
               merge=("workflow", "team"))
        # tuples with a literal-NULL column
        upsert(s, TRACE_T, [(1, "b", 3.0)], columns=("project_id", "trace_id", "team",
                                                      "updated_at"),
               keys=("project_id", "trace_id"), nulls=("team",))
        ensure_partitions(s.connection(), [202611])
        upsert(s, EDGE_T, [{"project_id": 1, "trace_id": "a", "src": "n1", "dst": "n2",
                            "kind": "k", "inferred": False, "trace_month": 202611}] * 2,
               keys=EDGE_KEYS, update=False)
        upsert(s, EDGE_T, [{"project_id": 1, "trace_id": "a", "src": "n1", "dst": "n2",
                            "kind": "k", "inferred": True, "trace_month": 202611}],
               keys=EDGE_KEYS, update=False)
    with engine.connect() as conn:
        rows = conn.execute(select(t.trace_id, t.workflow, t.team, t.tags, t.updated_at,
                                   t.node_count, t.cost_usd).order_by(t.trace_id)).all()
        edges = conn.execute(select(EDGE_T.c.inferred)).scalars().all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("a", "w", "t", ["x"], 2.0, 0, 0.0),
                                        ("b", None, None, None, 3.0, 0, 0.0)]
    assert edges == [False]


def test_bulk_upsert_matches_row_by_row(db_url: str) -> None:
    """On PostgreSQL from COPY_MIN_ROWS rows the upsert goes through COPY and one merge; the
    rows it leaves equal the row-by-row path's: a key given twice keeps its last row, JSON
    and literal-NULL columns, updates of existing rows, DO NOTHING."""
    from tracestore.store.engine import COPY_MIN_ROWS
    from tracestore.store.tables import NODE_T

    engine = make_engine(db_url)
    create_schema(engine)
    n = NODE_T.c
    cols = ("project_id", "trace_id", "node_id", "kind", "attributes", "model", "input_tokens",
            "trace_month")

    def rows(k: int, tag: str) -> list[tuple[object, ...]]:
        return [(1, "t", f"n{i % k}", "llm", f'{{"i": {i}, "tag": "{tag}"}}', i, 202611)
                for i in range(COPY_MIN_ROWS * 2)]

    keys = ("project_id", "trace_id", "node_id", "trace_month")
    with session_scope(engine) as s:  # 2 x COPY_MIN_ROWS rows, every key twice
        ensure_partitions(s.connection(), [202611])
        upsert(s, NODE_T, rows(COPY_MIN_ROWS, "a"), columns=cols, keys=keys,
               encode_json=None, nulls=("model",))
    with session_scope(engine) as s:  # update the first half, add nothing twice
        upsert(s, NODE_T, rows(COPY_MIN_ROWS * 2, "b")[:COPY_MIN_ROWS], columns=cols,
               keys=keys, encode_json=None, nulls=("model",))
        upsert(s, NODE_T, rows(COPY_MIN_ROWS * 2, "c"), columns=cols, keys=keys,
               encode_json=None, nulls=("model",), update=False)
    with engine.connect() as conn:
        got = conn.execute(select(n.node_id, n.attributes, n.model, n.input_tokens, n.priced)
                           .order_by(n.input_tokens)).all()
    engine.dispose()
    half = COPY_MIN_ROWS
    expected = [(f"n{i}", {"i": i, "tag": "b"}, None, i, False) for i in range(half)] + [
        (f"n{i}", {"i": i, "tag": "c"}, None, i, False) for i in range(half, 2 * half)]
    assert [tuple(r) for r in got] == expected


def test_a_later_part_without_tags_or_metadata_keeps_them(client: TestClient,
                                                          db_url: str) -> None:
    """Trace fields merge as COALESCE(new, old): a part that leaves out tags, metadata or
    team keeps the stored ones (tags and metadata were erased when an absent value was
    written as JSON null)."""
    def node(i: int) -> dict[str, object]:
        return {"node_id": f"n{i}", "kind": "agent", "start": 1_790_000_000 + i}

    def stored() -> tuple[object, ...]:
        engine = make_engine(db_url)
        t = TRACE_T.c
        with engine.connect() as conn:
            row = conn.execute(select(t.tags, t["metadata"], t.team, t.node_count)).one()
        engine.dispose()
        return tuple(row)

    first = {"trace_id": "t", "tags": ["x"], "metadata": {"a": 1}, "team": "t1",
             "nodes": [node(0)]}
    assert client.post("/api/v1/traces", json=first).status_code == 200
    assert client.post("/api/v1/traces", json={"trace_id": "t", "nodes": [node(1)]}
                       ).status_code == 200
    assert stored() == (["x"], {"a": 1}, "t1", 2)
    assert client.get("/api/v1/traces/t").json()["tags"] == ["x"]
    again = {"trace_id": "t", "tags": ["y"], "nodes": [node(2)]}
    assert client.post("/api/v1/traces", json=again).status_code == 200
    assert stored() == (["y"], {"a": 1}, "t1", 3)
