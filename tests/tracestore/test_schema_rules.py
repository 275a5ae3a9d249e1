"""The created schema keeps the rules a distributed (Citus) deployment needs, on SQLite and
PostgreSQL, and a store made by the previous release (findings keyed (project_id, id), no
analysis queue) is migrated by ``create_schema``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    text,
)

from tracestore.store.engine import create_schema, make_engine
from tracestore.store.tables import TRACE_T

# Tables holding rows of one trace: every key leads with (project_id, trace_id), so rows of a
# trace can live on one shard (distribution column trace_id) and joins stay shard-local.
PER_TRACE = {"traces", "nodes", "edges", "findings", "trace_summaries", "analysis_queue"}
# Project-level tables (small; reference tables on Citus): every key leads with project_id
# or is the table's own surrogate id. outcomes are per task, keyed (project_id, task_id).
PER_PROJECT = {"outcomes", "workflow_settings"}


def test_every_key_of_a_per_trace_table_leads_with_project_and_trace(db_url: str) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    insp = inspect(engine)
    problems = []
    for table in PER_TRACE | PER_PROJECT:
        lead = ["project_id", "trace_id"] if table in PER_TRACE else ["project_id"]
        keys: list[tuple[str, list[Any]]] = [
            ("primary key", insp.get_pk_constraint(table)["constrained_columns"])]
        keys += [(f"unique {u['name']}", u["column_names"])
                 for u in insp.get_unique_constraints(table)]
        keys += [(f"unique index {i['name']}", i["column_names"])
                 for i in insp.get_indexes(table) if i["unique"]]
        problems += [f"{table} {what} {cols}" for what, cols in keys
                     if cols[: len(lead)] != lead]
        # every index is per project first (no cross-project scans, shard-local on Citus)
        problems += [f"{table} index {i['name']} {i['column_names']}"
                     for i in insp.get_indexes(table) if i["column_names"][0] != "project_id"]
    engine.dispose()
    assert problems == []


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
