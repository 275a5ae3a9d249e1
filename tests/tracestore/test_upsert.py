"""The one upsert helper (``tracestore.store.engine.upsert``) every table write goes through,
on SQLite and PostgreSQL: dict and tuple rows, defaults, merge, do-nothing, literal NULLs."""

from __future__ import annotations

from sqlalchemy import select

from tracestore.store.engine import create_schema, make_engine, session_scope, upsert
from tracestore.store.tables import EDGE_T, TRACE_T


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
        upsert(s, EDGE_T, [{"project_id": 1, "trace_id": "a", "src": "n1", "dst": "n2",
                            "kind": "k", "inferred": False}] * 2,
               keys=("project_id", "trace_id", "src", "dst", "kind"), update=False)
        upsert(s, EDGE_T, [{"project_id": 1, "trace_id": "a", "src": "n1", "dst": "n2",
                            "kind": "k", "inferred": True}],
               keys=("project_id", "trace_id", "src", "dst", "kind"), update=False)
    with engine.connect() as conn:
        rows = conn.execute(select(t.trace_id, t.workflow, t.team, t.tags, t.updated_at,
                                   t.node_count, t.cost_usd).order_by(t.trace_id)).all()
        edges = conn.execute(select(EDGE_T.c.inferred)).scalars().all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("a", "w", "t", ["x"], 2.0, 0, 0.0),
                                        ("b", None, None, None, 3.0, 0, 0.0)]
    assert edges == [False]
