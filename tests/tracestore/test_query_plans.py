"""Every SQL statement of the ingest paths (native, OTLP, outcomes) and of the analysis of a
batch of traces, checked with the backend's query plan: where one trace's (or one task's) rows
are meant, the statement reads them through an index on ``(project_id, trace_id, …)`` (or
``(project_id, task_id)``), never by scanning a project's nodes or traces. Such a scan makes
ingest slow down as the store grows (docs/performance.md; bench/growth.py measures it).

The store is pre-filled (bulk inserts, ANALYZEd on PostgreSQL) so the planner sees a project
with many traces over several months, as it would in production; SQLite is left un-analysed,
as stores are. On PostgreSQL, where ``nodes`` and ``edges`` are partitioned by the trace's
month, a statement reading them may read at most as many partitions as the months its traces
span (two here), never all of them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, insert, text
from sqlalchemy.orm import Session

from tracestore.analysis.run import analyze_traces
from tracestore.analysis.suite import default_suite
from tracestore.api import create_app
from tracestore.config import Settings
from tracestore.ingest.pipeline import project_id_for
from tracestore.pricing.pricer import Pricer
from tracestore.reports.focus import FocusQuery, focus_rows
from tracestore.reports.latency import latency_report
from tracestore.reports.simulate import ScenarioIn, SimulateIn, simulate
from tracestore.store.engine import create_schema, make_engine
from tracestore.store.partitions import ensure_partitions, month_of, month_partitions
from tracestore.store.tables import EDGE_T, FINDING_T, NODE_T, SUMMARY_T, TRACE_T

# Tables that grow with the store; a read of them must name the trace (or task) it wants.
BIG = ("nodes", "traces", "edges", "findings", "trace_summaries", "outcomes", "analysis_queue")
# A constraint on one of these columns (beside project_id) picks one trace's/task's rows.
KEYED = re.compile(r"\b(trace_id|task_id|id)\b")
PREFILL_TRACES = 3000
PREFILL_NODES = 5  # per trace
# Seconds between pre-fill traces: 3,000 traces over 42 days around the ingest traffic's
# start (2026-11-16), so its month's partition holds most of them (three months in all).
PREFILL_STEP = 1200.0
INGEST_START = 1_794_819_600
# The most partitions of one table a statement here may read: the analysis batch holds
# traces of two months; every ingest request's traces lie in one.
MAX_PARTITIONS = 2
PARTITION = re.compile(r"\b(nodes|edges)_p(\d{6})(?!\d)")


def _prefill(engine: Engine, project_id: int) -> None:
    """Bulk rows in the ingest project: many traces, so a per-project walk would show."""
    traces, nodes, edges, summaries, findings = [], [], [], [], []
    t0 = INGEST_START - PREFILL_TRACES // 2 * PREFILL_STEP
    for i in range(PREFILL_TRACES):
        tid = f"fill-{i:06d}"
        start = t0 + i * PREFILL_STEP
        month = month_of(start)
        # Traces written by one request share updated_at, as the writer stamps them.
        written = t0 + i // 500
        traces.append({"project_id": project_id, "trace_id": tid, "workflow": None,
                       "task_id": tid, "started_at": start, "ended_at": start + 5,
                       "node_count": PREFILL_NODES, "updated_at": written,
                       "analyzed_at": written, "trace_month": month})
        for j in range(PREFILL_NODES):
            nodes.append({"project_id": project_id, "trace_id": tid, "node_id": f"n{j}",
                          "parent_id": None if j == 0 else "n0",
                          "kind": "agent" if j == 0 else "llm", "name": f"step{j}",
                          "start": start + j, "end": start + j + 0.5, "provider": "openai",
                          "model": "gpt-4o", "input_tokens": 100, "output_tokens": 10,
                          "trace_month": month})
        edges.append({"project_id": project_id, "trace_id": tid, "src": "n1", "dst": "n2",
                      "kind": "tool_call", "inferred": False, "trace_month": month})
        summaries.append({"project_id": project_id, "trace_id": tid, "task_id": tid,
                          "started_at": start, "summarized_at": start})
        findings.append({"project_id": project_id, "id": f"f-{tid}", "trace_id": tid,
                         "analyzer": "churn", "code": "retry_loop", "node_ids": ["n1"],
                         "evidence": {}, "trace_started_at": start, "created_at": start})
    with engine.begin() as conn:
        ensure_partitions(conn, {t["trace_month"] for t in traces})
        for table, rows in ((TRACE_T, traces), (NODE_T, nodes), (EDGE_T, edges),
                            (SUMMARY_T, summaries), (FINDING_T, findings)):
            conn.execute(insert(table), rows)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))


@contextmanager
def _captured() -> Iterator[list[tuple[str, Any]]]:
    """Every statement any engine executes meanwhile, with its (first) parameters."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if executemany and parameters:
            parameters = parameters[0]
        seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _native(trace_id: str, nodes: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"trace_id": trace_id, "nodes": nodes, **fields}


def _node(node_id: str, parent: str | None, second: int, **extra: Any) -> dict[str, Any]:
    return {"node_id": node_id, "parent_id": parent, "kind": "llm" if parent else "agent",
            "name": f"do {node_id}", "start": 1_794_819_600 + second,
            "end": 1_794_819_600 + second + 1, **extra}


def _otlp(trace_hex: str, spans: list[tuple[str, str | None]], workflow: bool) -> dict[str, Any]:
    out = []
    for i, (span, parent) in enumerate(spans):
        attrs = [{"key": "gen_ai.operation.name",
                  "value": {"stringValue": "chat" if parent else "invoke_agent"}}]
        if parent is None and workflow:
            attrs.append({"key": "tracestore.workflow", "value": {"stringValue": "wf"}})
        if parent:
            attrs += [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                      {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                      {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "50"}}]
        span_json: dict[str, Any] = {
            "traceId": trace_hex, "spanId": span, "name": f"span {i}", "kind": 1,
            "startTimeUnixNano": str(1_794_819_600_000_000_000 + i * 10**9),
            "endTimeUnixNano": str(1_794_819_600_500_000_000 + i * 10**9), "attributes": attrs}
        if parent:
            span_json["parentSpanId"] = parent
        out.append(span_json)
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeSpans": [{"spans": out}]}]}


def _ingest(client: TestClient) -> None:
    """The ingest traffic: native traces with and without workflow, children before their
    parents, one trace split across requests; OTLP the same; outcomes by task and by trace."""
    def ok(r: Any) -> None:
        assert r.status_code == 200, r.text

    ok(client.post("/api/v1/traces", json=[
        _native("nat-1", [_node("c1", "r", 2, provider="openai", model="gpt-4o",
                                input_tokens=10)]),
        _native("nat-2", [_node("r", None, 0), _node("c", "r", 1)], workflow="triage")]))
    ok(client.post("/api/v1/traces", json=_native("nat-1", [_node("r", None, 0)],
                                                  task_id="T-1")))
    # enough rows for PostgreSQL's bulk path (COPY into a staging table, one merge)
    ok(client.post("/api/v1/traces", json=_native("nat-big", [_node("r", None, 0)] + [
        _node(f"c{i}", "r", i) for i in range(1, 80)])))
    root, child = "a" * 16, "b" * 16
    otlp = ["1" * 32, "2" * 32]
    ok(client.post("/v1/traces", json=_otlp(otlp[0], [(child, root)], workflow=False)))
    ok(client.post("/v1/traces", json=_otlp(otlp[0], [(root, None)], workflow=False)))
    ok(client.post("/v1/traces", json=_otlp(otlp[1], [(child, root), (root, None)],
                                            workflow=True)))
    # one request touching many traces: the planner's row estimates change with the count
    many = _otlp(f"{3:032x}", [(child, root), (root, None)], workflow=False)
    spans = many["resourceSpans"][0]["scopeSpans"][0]["spans"]
    for k in range(4, 80):
        spans += [dict(sp, traceId=f"{k:032x}") for sp in spans[:2]]
    ok(client.post("/v1/traces", json=many))
    ok(client.post("/api/v1/outcomes", json=[{"task_id": "T-1", "status": "success"},
                                             {"trace_id": "nat-2", "status": "failure"}]))
    # GenAI content as a log event, written onto the stored span's node
    content = {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "hi"}}]}}
    ok(client.post("/v1/logs", json={"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": "1794819600000000000", "traceId": otlp[0], "spanId": child,
        "eventName": "gen_ai.user.message", "body": content}]}]}]}))


def _offences_sqlite(plan: list[str]) -> list[str]:
    bad = []
    for detail in plan:
        m = re.match(r"(SCAN|SEARCH) (\w+)(?: AS \w+)?(.*)", detail)
        if not m or m.group(2) not in BIG:
            continue
        if m.group(1) == "SCAN" or not KEYED.search(m.group(3)):
            bad.append(detail)
    return bad


def _offences_postgres(plan: list[str], big_indexes: set[str]) -> list[str]:
    """Scans of a big table (a partition counts as its table) not keyed by trace or task,
    and reads of more than :data:`MAX_PARTITIONS` partitions of one table."""
    read: dict[str, set[str]] = {}
    for line in plan:
        for table, month in PARTITION.findall(line):
            read.setdefault(table, set()).add(month)
    bad = [f"{table}: {len(months)} partitions read" for table, months in read.items()
           if len(months) > MAX_PARTITIONS]
    plan = [PARTITION.sub(r"\1", line) for line in plan]
    for i, line in enumerate(plan):
        seq = re.search(r"Seq Scan on (\w+)", line)
        if seq and seq.group(1) in BIG:
            bad.append(line.strip())
            continue
        scan = re.search(r"(?:Index|Index Only) Scan (?:Backward )?using (\w+) on (\w+)", line)
        bitmap = re.search(r"Bitmap Index Scan on (\w+)", line)
        if not (scan and scan.group(2) in BIG) and not (bitmap and bitmap.group(1) in big_indexes):
            continue
        depth = len(line) - len(line.lstrip())
        cond = ""
        for nxt in plan[i + 1:]:
            if len(nxt) - len(nxt.lstrip()) <= depth:
                break
            if nxt.strip().startswith("Index Cond:"):
                cond = nxt
        if not KEYED.search(cond):
            bad.append(f"{line.strip()} / {cond.strip() or 'no Index Cond'}")
    return bad


def _plan(engine: Engine, sql: str, params: Any) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return [r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
        # The planner's choice with sequential scans priced out: the index it would use.
        conn.exec_driver_sql("SET enable_seqscan = off")
        # The bulk path's merge reads a per-connection temporary staging table: make it here.
        for table in set(re.findall(r"\b_stage_(\w+)", sql)):
            conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS _stage_{table} (LIKE {table}, "
                                 "_n bigint GENERATED ALWAYS AS IDENTITY)")
        return [r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params)]


def _big_indexes(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT indexname FROM pg_indexes WHERE (tablename = ANY(:t) OR tablename ~ "
            "'^(nodes|edges)_p[0-9]{6}$') AND schemaname = current_schema()"), {"t": list(BIG)})
        # a partition's index is its table's (the partition names are mapped to the table)
        return {PARTITION.sub(r"\1", r[0]) for r in rows}


def _checked(engine: Engine, statements: list[tuple[str, Any]]) -> tuple[int, list[str]]:
    """(statements that read a big table, offences with their SQL)."""
    big = _big_indexes(engine) if engine.dialect.name == "postgresql" else set()
    reads, offences, done = 0, [], set()
    for sql, params in statements:
        head = sql.lstrip().split(None, 1)[0].upper()
        if head not in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH") or sql in done:
            continue
        done.add(sql)
        plan = _plan(engine, sql, params)
        if any(re.search(rf"\b{t}\b", sql) for t in BIG):
            reads += 1
        bad = (_offences_sqlite(plan) if engine.dialect.name == "sqlite"
               else _offences_postgres(plan, big))
        offences += [f"{b}\n    in: {sql[:300]}" for b in bad]
    return reads, offences


def test_ingest_and_analysis_read_one_trace_through_its_key(db_url: str) -> None:
    settings = Settings(database_url=db_url, settle_seconds=0, ingest_workers=0)
    engine = make_engine(db_url)
    create_schema(engine)
    pid = project_id_for(engine, settings.project)
    _prefill(engine, pid)
    with TestClient(create_app(settings)) as client:
        with _captured() as ingest_sql:
            _ingest(client)
        t = client.get("/api/v1/traces/nat-1").json()
        assert (t["node_count"], t["workflow"], t["task_id"]) == (2, "do r", "T-1")
        t = client.get(f"/api/v1/traces/{'1' * 32}").json()
        assert (t["node_count"], t["workflow"]) == (2, "span 0")
    ids = ["nat-1", "nat-2", "1" * 32, "2" * 32, "fill-000007"]
    with _captured() as analysis_sql:
        counts = analyze_traces(engine, project_id=pid, trace_ids=ids, baselines={},
                                suite=default_suite(), now=time.time())
    assert counts.traces == 5
    # the statements were captured: node upserts, the roll-up, the analysis' node read
    joined = "\n".join(s for s, _ in ingest_sql + analysis_sql)
    for needle in ("INTO nodes", "UPDATE traces SET workflow", "INTO outcomes",
                   "FROM nodes", "DELETE FROM findings", "UPDATE nodes SET prompt"):
        assert needle in joined, needle
    if engine.dialect.name == "postgresql":  # the bulk path's merge was planned too
        assert "FROM _stage_nodes" in joined
    reads, offences = _checked(engine, ingest_sql + analysis_sql)
    if engine.dialect.name == "postgresql":  # the roll-up reads the one month of its traces
        with engine.connect() as conn:
            assert len(month_partitions(conn)) >= 3
        # and so do the roll-up and the log content's update of its span's node
        for needle in ("UPDATE traces SET workflow", "UPDATE nodes SET prompt"):
            sql, params = next((q, p) for q, p in ingest_sql if needle in q)
            plan = _plan(engine, sql, params)
            assert {m for _, m in PARTITION.findall("\n".join(plan))} == {
                str(month_of(INGEST_START))}, needle
    engine.dispose()
    assert reads >= 10
    assert not offences, "statements scanning a project's rows:\n" + "\n".join(offences)


def test_window_reports_read_only_the_months_of_their_traces(db_url: str) -> None:
    """The FOCUS export, the latency report by step and the savings simulator join a window's
    traces to ``nodes``. On PostgreSQL each plans only the partitions of the months those
    traces are in (one of the three here), so its cost does not grow with the months the
    store keeps; on both backends they still see every node of the window."""
    engine = make_engine(db_url)
    create_schema(engine)
    pid = project_id_for(engine, "default")
    _prefill(engine, pid)
    since, until = INGEST_START, INGEST_START + 7 * 86_400
    t0 = INGEST_START - PREFILL_TRACES // 2 * PREFILL_STEP
    traces = sum(since <= t0 + i * PREFILL_STEP < until for i in range(PREFILL_TRACES))
    with _captured() as statements:
        rows = list(focus_rows(engine, FocusQuery(pid, since, until)))
        with Session(engine) as session:
            latency = latency_report(session, project_id=pid, group_by="step", since=since,
                                     until=until)
            sim = simulate(session, project_id=pid, pricer=Pricer(),
                           q=SimulateIn(since=since, until=until, scenario=ScenarioIn()))
    assert traces == 504
    assert len({r["AllocatedResourceId"] for r in rows}) == traces
    assert sum(g.count for g in latency.groups) == traces * PREFILL_NODES
    assert sim.before.attempts == traces
    joins = [(q, p) for q, p in statements if re.search(r"JOIN nodes\b", q)]
    assert len(joins) == 3
    if engine.dialect.name == "postgresql":
        for sql, params in joins:
            plan = "\n".join(_plan(engine, sql, params))
            assert {m for _, m in PARTITION.findall(plan)} == {str(month_of(since))}, sql
    engine.dispose()


@pytest.mark.parametrize("plan, bad", [
    (["SEARCH nodes USING INDEX ix_nodes_project_start (project_id=?)"], 1),
    (["SCAN nodes"], 1),
    (["SEARCH nodes USING INDEX sqlite_autoindex_nodes_1 (project_id=? AND trace_id=?)"], 0),
    (["SCAN agg", "SEARCH projects USING INDEX ix_projects_name (name=?)"], 0),
])
def test_the_sqlite_rule_catches_a_project_walk(plan: list[str], bad: int) -> None:
    assert len(_offences_sqlite(plan)) == bad


def test_the_postgres_rule_catches_a_project_walk() -> None:
    walk = ["Index Scan using ix_nodes_project_start on nodes  (cost=0.1..8.1 rows=1 width=4)",
            "  Index Cond: (project_id = 1)",
            "  Filter: ((trace_id)::text = 'x'::text)"]
    keyed = ["Index Scan using nodes_pkey on nodes  (cost=0.1..8.1 rows=1 width=4)",
             "  Index Cond: ((project_id = 1) AND ((trace_id)::text = ANY ('{a}'::text[])))"]
    bitmap = ["Bitmap Heap Scan on traces", "  ->  Bitmap Index Scan on ix_traces_project_start",
              "        Index Cond: (project_id = 1)"]
    assert len(_offences_postgres(walk, set())) == 1
    assert _offences_postgres(keyed, set()) == []
    assert len(_offences_postgres(bitmap, {"ix_traces_project_start"})) == 1
    assert _offences_postgres(["Seq Scan on nodes"], set()) == ["Seq Scan on nodes"]
    # a partition is its table; a read of every partition is an offence
    assert _offences_postgres(["Seq Scan on nodes_p202611 nodes_1"], set()) == [
        "Seq Scan on nodes nodes_1"]
    three = ["Append", *[f"  ->  Index Scan using nodes_p20261{m}_pkey on nodes_p20261{m} n"
                         f"\n        Index Cond: ((project_id = 1) AND (trace_id = 'x'))"
                         for m in (0, 1, 2)]]
    lines = [part for line in three for part in line.split("\n")]
    assert _offences_postgres(lines, set()) == ["nodes: 3 partitions read"]
    assert _offences_postgres(lines[:5], set()) == []
