"""The created schema keeps the rules a distributed (Citus) deployment needs, on SQLite and
PostgreSQL; the per-span tables are keyed (and on PostgreSQL partitioned) by the trace's month;
a store made by an earlier release (findings keyed (project_id, id), no analysis queue) and one
made by the previous release (ab8862f: no trace_month, nothing partitioned; its DDL and rows
in ``previous_release/``, made by ``previous_release/make.py``) are migrated by
``create_schema`` with every row kept."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    event,
    insert,
    inspect,
    select,
    text,
)

from tracestore.api import create_app
from tracestore.config import Settings
from tracestore.store.engine import create_schema, make_engine, session_scope
from tracestore.store.partitions import PARTITIONED, month_of, month_partitions
from tracestore.store.rollups import recompute_rollups
from tracestore.store.tables import TRACE_T

# Tables holding rows of one trace: every key leads with (project_id, trace_id), so rows of a
# trace can live on one shard (distribution column trace_id) and joins stay shard-local.
PER_TRACE = {"traces", "nodes", "edges", "findings", "trace_summaries", "trace_waste",
             "analysis_queue"}
# Project-level tables (small; reference tables on Citus): every key leads with project_id
# or is the table's own surrogate id. outcomes are per task, keyed (project_id, task_id).
PER_PROJECT = {"outcomes", "workflow_settings", "analysis_baselines"}
# Per-span tables: partitioned by trace_month on PostgreSQL, keyed with it on both backends.
PER_SPAN = {"nodes", "edges"}


def test_the_per_span_tables_are_the_partitioned_ones() -> None:
    assert {t.name for t in PARTITIONED} == PER_SPAN


def _key_problems(insp: Any, table: str) -> list[str]:
    """Keys of ``table`` that break the rules: every key of a per-trace table leads with
    (project_id, trace_id), of a project table with project_id; every key of a per-span
    table holds trace_month; every index leads with project_id."""
    lead = ["project_id", "trace_id"] if table in PER_TRACE else ["project_id"]
    keys: list[tuple[str, list[Any]]] = [
        ("primary key", insp.get_pk_constraint(table)["constrained_columns"])]
    keys += [(f"unique {u['name']}", u["column_names"])
             for u in insp.get_unique_constraints(table)]
    keys += [(f"unique index {i['name']}", i["column_names"])
             for i in insp.get_indexes(table) if i["unique"]]
    problems = [f"{table} {what} {cols}" for what, cols in keys if cols[: len(lead)] != lead]
    if table in PER_SPAN:
        problems += [f"{table} {what} {cols} lacks trace_month" for what, cols in keys
                     if "trace_month" not in cols]
    # every index is per project first (no cross-project scans, shard-local on Citus)
    problems += [f"{table} index {i['name']} {i['column_names']}"
                 for i in insp.get_indexes(table) if i["column_names"][0] != "project_id"]
    return problems


def _partitioning(engine: Any) -> dict[str, str]:
    """PostgreSQL: table -> its partition key (``pg_get_partkeydef``), every partitioned
    table of the schema."""
    with engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(text(
            "SELECT c.relname, pg_get_partkeydef(c.oid) FROM pg_partitioned_table p "
            "JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relnamespace = to_regnamespace(current_schema())"))}


def test_every_key_of_a_per_trace_table_leads_with_project_and_trace(db_url: str) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    insp = inspect(engine)
    problems = [p for table in sorted(PER_TRACE | PER_PROJECT) for p in _key_problems(insp, table)]
    if engine.dialect.name == "postgresql":
        assert _partitioning(engine) == {t: "RANGE (trace_month)" for t in PER_SPAN}
    engine.dispose()
    assert problems == []


def test_the_key_rules_catch_a_bad_key() -> None:
    class Insp:
        def get_pk_constraint(self, table: str) -> dict[str, Any]:
            return {"constrained_columns": ["project_id", "trace_id", "node_id"]}

        def get_unique_constraints(self, table: str) -> list[dict[str, Any]]:
            return [{"name": "u", "column_names": ["trace_id", "project_id"]}]

        def get_indexes(self, table: str) -> list[dict[str, Any]]:
            return [{"name": "ix", "column_names": ["start"], "unique": False}]

    assert _key_problems(Insp(), "nodes") == [
        "nodes unique u ['trace_id', 'project_id']",
        "nodes primary key ['project_id', 'trace_id', 'node_id'] lacks trace_month",
        "nodes unique u ['trace_id', 'project_id'] lacks trace_month",
        "nodes index ix ['start']"]


def _previous_release(metadata: MetaData) -> None:
    """The tables of ea81324 this release reads or changes: traces as they were (unchanged
    since), findings keyed (project_id, id); no analysis_queue."""
    TRACE_T.to_metadata(metadata)
    Table("findings", metadata,
          Column("project_id", Integer, primary_key=True),
          Column("id", String(64), primary_key=True),
          Column("trace_id", String(128), nullable=False),
          Column("workflow", String), Column("analyzer", String, nullable=False),
          Column("code", String, nullable=False),
          Column("node_ids", JSON, nullable=False),
          Column("wasted_tokens", BigInteger, nullable=False),
          Column("wasted_cost_usd", Float, nullable=False),
          Column("savings_usd", Float, nullable=False),
          Column("confidence", Float, nullable=False),
          Column("evidence", JSON, nullable=False), Column("message", String, nullable=False),
          Column("trace_started_at", Float), Column("created_at", Float, nullable=False),
          Index("ix_findings_project_trace", "project_id", "trace_id"),
          Index("ix_findings_project_cost", "project_id", "wasted_cost_usd"),
          Index("ix_findings_project_code", "project_id", "code"))


def test_a_previous_release_store_is_migrated(db_url: str) -> None:
    engine = make_engine(db_url)
    old = MetaData()
    _previous_release(old)
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO traces (project_id, trace_id, workflow, started_at, updated_at, "
            "analyzed_at, node_count, llm_calls, input_tokens, output_tokens, cost_usd, "
            "unpriced_count, error_count) VALUES "
            "(1, 'done', 'w', 1.0, 5.0, 6.0, 1, 0, 0, 0, 0, 0, 0), "
            "(1, 'stale', 'w', 1.0, 9.0, 6.0, 1, 0, 0, 0, 0, 0, 0), "
            "(1, 'new', 'w', 1.0, 9.0, NULL, 1, 0, 0, 0, 0, 0, 0)"))
        conn.execute(text(
            "INSERT INTO findings (project_id, id, trace_id, workflow, analyzer, code, node_ids,"
            " wasted_tokens, wasted_cost_usd, savings_usd, confidence, evidence, message, "
            "trace_started_at, created_at) VALUES (1, 'f1', 'done', 'w', 'churn', "
            "'churn.repeat', '[\"n1\"]', 10, 0.5, 0.5, 0.9, '{}', 'm', 1.0, 6.0)"))
    create_schema(engine)
    create_schema(engine)  # idempotent
    insp = inspect(engine)
    assert insp.get_pk_constraint("findings")["constrained_columns"] == [
        "project_id", "trace_id", "id"]
    assert {i["name"] for i in insp.get_indexes("findings")} >= {
        "ix_findings_project_trace", "ix_findings_project_cost", "ix_findings_project_code"}
    with engine.connect() as conn:
        findings = conn.execute(text(
            "SELECT trace_id, id, code, wasted_cost_usd FROM findings")).all()
        queued = conn.execute(text(
            "SELECT trace_id, updated_at FROM analysis_queue ORDER BY trace_id")).all()
    engine.dispose()
    assert [tuple(r) for r in findings] == [("done", "f1", "churn.repeat", 0.5)]
    assert [tuple(r) for r in queued] == [("new", 9.0), ("stale", 9.0)]
    assert insp.has_table("nodes") and insp.has_table("trace_summaries")


PREVIOUS = Path(__file__).resolve().parent / "previous_release"


def _make_previous_release_store(engine: Any) -> dict[str, Any]:
    """The tables of ab8862f (its DDL on this backend) with the rows its writer and analysis
    stored (``previous_release/store.json``); returns that file's tables."""
    ddl = (PREVIOUS / f"schema.{engine.dialect.name}.sql").read_text()
    data: dict[str, Any] = json.loads((PREVIOUS / "store.json").read_text())["tables"]
    with engine.begin() as conn:
        for stmt in ddl.split(";\n"):
            if stmt.strip():
                conn.exec_driver_sql(stmt)
    old = MetaData()
    old.reflect(engine)
    assert "trace_month" not in old.tables["nodes"].c
    with engine.begin() as conn:
        for name, table in data.items():
            if table["rows"]:
                conn.execute(insert(old.tables[name]),
                             [dict(zip(table["columns"], r, strict=True)) for r in table["rows"]])
    return data


def _rows(engine: Any, data: dict[str, Any]) -> dict[str, list[list[Any]]]:
    """Every table's rows of the columns in ``data``, sorted as :func:`_sorted` sorts."""
    md = MetaData()
    md.reflect(engine, only=list(data))
    out = {}
    with engine.connect() as conn:
        for name, table in data.items():
            cols = [md.tables[name].c[c] for c in table["columns"]]
            out[name] = _sorted([list(r) for r in conn.execute(select(*cols))])
    return out


def _sorted(rows: list[list[Any]]) -> list[list[Any]]:
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def test_the_retired_digest_cache_is_dropped(db_url: str) -> None:
    """A store of the releases that kept digests in ``digest_cache`` loses that table (the
    digests are stored results now); nothing else of the store changes."""
    engine = make_engine(db_url)
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE digest_cache (project_id INTEGER NOT NULL, week "
                          "VARCHAR(10) NOT NULL, fingerprint VARCHAR(64) NOT NULL, body TEXT "
                          "NOT NULL, built_at FLOAT NOT NULL, PRIMARY KEY (project_id, week))"))
        conn.execute(text("INSERT INTO digest_cache VALUES (1, '2026-W47', 'f', '{}', 0)"))
    before = set(inspect(engine).get_table_names())
    create_schema(engine)
    after = set(inspect(engine).get_table_names())
    engine.dispose()
    assert "digest_cache" in before
    assert after == before - {"digest_cache"}


def test_a_store_of_the_previous_release_is_migrated(db_url: str) -> None:
    engine = make_engine(db_url)
    data = _make_previous_release_store(engine)
    assert sum(len(t["rows"]) for t in data.values()) > 300
    assert len(data["nodes"]["rows"]) > 200
    create_schema(engine)
    create_schema(engine)  # idempotent
    # every row kept, every value as it was
    got = _rows(engine, data)
    for name, table in data.items():
        assert got[name] == _sorted(table["rows"]), name
    insp = inspect(engine)
    assert [p for t in sorted(PER_TRACE | PER_PROJECT) for p in _key_problems(insp, t)] == []
    # waste by code: a row per code of every wasteful summary, with its summary's columns
    s = data["trace_summaries"]
    want = sorted((r["trace_id"], code, usd, r["workflow"], r["started_at"])
                  for r in (dict(zip(s["columns"], row, strict=True)) for row in s["rows"])
                  if r["waste_usd"] > 0 for code, usd in r["waste_by_code"].items())
    assert len(want) >= 5
    with engine.connect() as conn:
        assert sorted(tuple(r) for r in conn.execute(text(
            "SELECT trace_id, code, wasted_usd, workflow, started_at FROM trace_waste"))) == want
    with engine.connect() as conn:
        # a trace's month: of its start; every node and edge carries its trace's
        months = dict(conn.execute(text("SELECT trace_id, trace_month FROM traces")).all())
        assert (months["oct-1"], months["nov-1"], months["split"]) == (202610, 202611, 202610)
        for table in ("nodes", "edges"):
            assert conn.execute(text(
                f"SELECT count(*) FROM {table} x JOIN traces t ON t.project_id = x.project_id "
                "AND t.trace_id = x.trace_id AND t.trace_month = x.trace_month")).scalar_one() \
                == len(data[table]["rows"])
    if engine.dialect.name == "postgresql":
        assert _partitioning(engine) == {t: "RANGE (trace_month)" for t in PER_SPAN}
        with engine.connect() as conn:
            # every month of its traces, and the current one (for rows with no trace row)
            assert set(month_partitions(conn)) == set(months.values()) | {
                month_of(time.time())}
    # roll-ups recomputed from the migrated nodes equal the stored ones
    with session_scope(engine) as s:
        recompute_rollups(s, project_id=1, trace_ids=sorted(months))
    assert _rows(engine, {"traces": data["traces"]})["traces"] == _sorted(data["traces"]["rows"])
    # a new part of a migrated trace lands in its month; the trace reads whole
    settings = Settings(database_url=db_url, settle_seconds=0, ingest_workers=0)
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/v1/traces", json={"trace_id": "split", "nodes": [
            {"node_id": "c", "parent_id": "r", "kind": "tool", "name": "late",
             "start": "2026-11-02T00:00:00Z"}]})
        assert r.status_code == 200, r.text
        t = client.get("/api/v1/traces/split").json()
    assert (t["node_count"], len(t["nodes"]), t["started_at"]) == (
        4, 4, "2026-10-31T23:56:40.000Z")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT trace_month FROM nodes WHERE trace_id = 'split' "
                                 "AND node_id = 'c'")).scalar_one() == 202610
    engine.dispose()


# A JOIN of a per-trace table and the text of its ON clause, in SQLAlchemy's rendering.
JOIN = re.compile(r"\bJOIN\s+(\w+)(?:\s+AS\s+\w+)?\s+ON\s+(.*?)"
                  r"(?=\s+(?:LEFT OUTER JOIN|JOIN|WHERE|GROUP BY|ORDER BY|LIMIT)\b|\)|$)", re.S)


def _join_problems(sql: str) -> list[str]:
    """Joins of a per-trace table whose ON clause does not equate both project_id and
    trace_id (a join that would cross shards on Citus)."""
    bad = []
    for table, on in JOIN.findall(sql):
        if table not in PER_TRACE:
            continue
        if not all(re.search(rf"\w+\.{c}\s*=\s*\w+\.{c}\b", on)
                   for c in ("project_id", "trace_id")):
            bad.append(f"JOIN {table} ON {on.strip()}")
    return bad


def test_the_join_rule_catches_a_join_on_trace_id_alone() -> None:
    ok = ("SELECT 1 FROM traces JOIN nodes ON nodes.project_id = traces.project_id AND "
          "nodes.trace_id = traces.trace_id WHERE traces.project_id = 1")
    assert _join_problems(ok) == []
    assert _join_problems("SELECT 1 FROM traces JOIN findings ON findings.trace_id = "
                          "traces.trace_id WHERE x") == [
        "JOIN findings ON findings.trace_id = traces.trace_id"]


def test_every_join_of_per_trace_tables_is_on_project_and_trace(client: TestClient) -> None:
    """The reports, the trace reads and the analysis, run on a small store: every JOIN their
    SQL makes between per-trace tables is on (project_id, trace_id, …)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    nodes = [{"node_id": "r", "kind": "agent", "name": "triage", "start": "2026-11-16T09:00:00Z"},
             *[{"node_id": f"l{i}", "parent_id": "r", "kind": "llm", "provider": "openai",
                "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 50,
                "name": "classify", "start": f"2026-11-16T09:00:0{i + 1}Z"} for i in range(3)]]
    event.listen(Engine, "before_cursor_execute", record)
    try:
        for k in range(3):
            r = client.post("/api/v1/traces", json={
                "trace_id": f"t{k}", "workflow": "support", "task_id": f"T{k}", "nodes": nodes,
                "outcome": {"status": "success"}})
            assert r.status_code == 200, r.text
        assert client.post("/api/v1/analyze").status_code == 200
        week = "since=2026-11-16T00:00:00Z&until=2026-11-23T00:00:00Z"
        for path in ("/api/v1/traces", "/api/v1/traces/t0", "/api/v1/traces/t0/graph",
                     "/api/v1/findings", f"/api/v1/attribution?{week}",
                     f"/api/v1/paths?{week}", f"/api/v1/latency?{week}",
                     f"/api/v1/export/focus?{week}", "/api/v1/prices/unpriced"):
            assert client.get(path).status_code == 200, path
        r = client.post("/api/v1/simulate", json={"scenario": {"route": [
            {"to_model": "gpt-4o-mini"}]}})
        assert r.status_code == 200, r.text
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    joins = [s for s in seen if JOIN.search(s)]
    assert len(joins) >= 3  # the FOCUS export, latency and the simulator join nodes
    assert [p for s in seen for p in _join_problems(s)] == []
