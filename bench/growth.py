"""Growth curve: how analysis, ``GET /api/v1/findings``, ``/paths`` and ``/attribution``
latency and the server's RSS grow with the number of stored nodes.

Run from the repo root::

    python -m bench.growth                          # 10k and 100k nodes, SQLite
    python -m bench.growth --sizes 10000,100000,1000000 --json bench/out/growth.json
    python -m bench.growth --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

One store grows through the sizes (as :mod:`bench.queries` builds it: the seeded demo
generator, ~10 nodes a trace, three workflows over ISO weeks 2026-W46/W47, each chunk through
the one write path ``Writer.ingest_native`` and its late outcomes through ``write_outcomes``).
At each size:

1. ``tracestore analyze --workers 2`` over the whole store, as a subprocess (load, graphs,
   analyzers, findings and per-trace summaries written): wall seconds and traces/s. Above
   ``--analyze-max-nodes`` (default 200k: re-analysing a 1M-node store takes longer than a
   bench run should) only the new traces' summaries are written, as :mod:`bench.queries`
   does, and the findings table stays as the last analysed size left it (the row says so);
2. ``tracestore serve`` as a separate process; over one keep-alive loopback connection each
   query runs 3 times to warm up and ``--repeat`` times measured (wall p50/p95):
   ``/findings`` (first page, largest waste first), ``/paths`` and ``/attribution`` for one
   workflow-week (support_triage, 2026-W47, as :mod:`bench.queries`);
3. the server's RSS after the queries and its peak (``VmHWM``), and the SQLite file size.

``--ingest`` measures instead whether ingest slows as the store grows (issue 18)::

    python -m bench.growth --ingest --sizes 0,1000000 --spans 20000 --rounds 2
    python -m bench.growth --ingest --sizes 0,1000000,10000000 --database-url postgresql+psycopg://...

One store per size is bulk-loaded below the write path (:func:`prefill`: 10-node traces in the
default project, SQLite ``executemany`` / PostgreSQL ``COPY`` + VACUUM ANALYZE), a server is
started on each, and in every round the same kind of OTLP traffic (:func:`traffic`: agent runs
split across two requests each, children before their root, without and with a
``tracestore.workflow`` attribute) is posted into each store in turn over 2 connections:
spans/s until every POST is answered (a 200 means committed) and the server's CPU per span,
main process and ingest workers apart (the main process holds the single writer).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.common import (
    free_port,
    machine,
    percentile,
    rss_mb,
    scratch_database,
    start_tracestore,
    stop,
    write_json,
)
from tracestore.config import Settings
from tracestore.demo import W47_START, generate
from tracestore.ingest.pipeline import Writer, project_id_for
from tracestore.reports.summaries import summarize_traces
from tracestore.schemas import OutcomeIn
from tracestore.store.engine import create_schema, make_engine, session_scope
from tracestore.store.partitions import ensure_partitions, month_of, next_month
from tracestore.store.tables import FindingRow, Node, Trace

WEEK = 7 * 86400.0
CHUNK = 2000  # traces per generated chunk, as bench/queries.py
NODES_PER_TRACE = 10  # the demo generator's mean trace size, to size small chunks
WINDOW: dict[str, str | float] = {"since": W47_START, "until": W47_START + WEEK}
QUERIES: list[tuple[str, str, dict[str, str | float]]] = [
    ("findings", "/api/v1/findings", {"limit": 50}),
    ("paths", "/api/v1/paths", {"workflow": "support_triage", **WINDOW}),
    ("attribution", "/api/v1/attribution", {"workflow": "support_triage", **WINDOW}),
    ("attribution_team_model", "/api/v1/attribution",
     {"workflow": "support_triage", "group_by": "team,model", "compare": "previous", **WINDOW}),
]


def count_nodes(url: str) -> tuple[int, int]:
    """(nodes, traces) stored."""
    engine = make_engine(url)
    create_schema(engine)
    with Session(engine) as s:
        nodes = s.execute(select(func.count()).select_from(Node)).scalar_one()
        traces = s.execute(select(func.count()).select_from(Trace)).scalar_one()
    engine.dispose()
    return int(nodes), int(traces)


def count_findings(url: str) -> int:
    engine = make_engine(url)
    with Session(engine) as s:
        n = s.execute(select(func.count()).select_from(FindingRow)).scalar_one()
    engine.dispose()
    return int(n)


def grow(url: str, target: int) -> tuple[list[str], float]:
    """Ingest demo chunks until ``target`` nodes are stored; returns the new trace ids (in
    start-time order) and the seconds spent. Seeds start at the stored trace count + 1, so a
    store reused with ``--db`` grows with traces it does not hold yet (every chunk adds ≥ 50
    traces, hence more than one seed)."""
    engine = make_engine(url)
    create_schema(engine)
    settings = Settings(database_url=url)
    writer, pid = Writer(engine, settings), project_id_for(engine, settings.project)
    total, seed = count_nodes(url)
    seed += 1
    new: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    while total < target:
        n_traces = max(50, min(CHUNK, (target - total) // NODES_PER_TRACE))
        data = generate(seed=seed, n_traces=n_traces)
        for i in range(0, len(data.traces), 500):
            total += writer.ingest_native(pid, data.traces[i : i + 500]).accepted_nodes
        writer.write_outcomes(pid, [OutcomeIn.model_validate(o) for o in data.outcomes])
        new.extend((t["nodes"][0]["start"], t["trace_id"]) for t in data.traces)
        seed += 1
        print(f"  ingested {total:,} nodes", flush=True)
    engine.dispose()
    return [tid for _, tid in sorted(new)], time.perf_counter() - t0


def summarize(url: str, trace_ids: list[str]) -> float:
    """Per-trace summaries for ``trace_ids`` as the analysis runtime writes them (500 traces a
    transaction, start-time order), without running the analyzers; returns seconds."""
    engine = make_engine(url)
    pid = project_id_for(engine, Settings(database_url=url).project)
    t0 = time.perf_counter()
    for i in range(0, len(trace_ids), 500):
        with session_scope(engine) as s:
            summarize_traces(s, project_id=pid, trace_ids=trace_ids[i : i + 500])
    engine.dispose()
    return time.perf_counter() - t0


def analyze(url: str, workers: int) -> float:
    """Wall seconds of ``tracestore analyze --workers N`` over the whole store."""
    exe = Path(sys.executable).with_name("tracestore")
    t0 = time.perf_counter()
    subprocess.run([str(exe), "analyze", "--workers", str(workers), "--database-url", url],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def query_latency(port: int, repeat: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
        for name, path, params in QUERIES:
            for _ in range(3):
                r = c.get(path, params=params)
                assert r.status_code == 200, r.text[:300]
            lat = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                r = c.get(path, params=params)
                lat.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
            lat.sort()
            out[name] = {"p50_ms": percentile(lat, 0.5), "p95_ms": percentile(lat, 0.95),
                         "bytes": len(r.content)}
    return out


@contextmanager
def store(database_url: str | None, db: Path | None) -> Iterator[tuple[str, Path | None]]:
    """The store to grow: ``--db`` (SQLite, kept for later runs), else a scratch one."""
    if db and not database_url:
        db.parent.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{db}", db
        return
    with scratch_database(database_url, "growth.db") as (url, path):
        yield url, path


def run(sizes: list[int], database_url: str | None, db: Path | None, repeat: int,
        workers: int, analyze_max: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with store(database_url, db) as (url, path):
        for size in sizes:
            new_ids, ingest_s = grow(url, size)
            nodes, traces = count_nodes(url)
            analyzed = nodes <= analyze_max
            # Above --analyze-max-nodes only the summaries of the new traces are written (the
            # reports read summaries); the findings stay those of the last analysed size.
            analyze_s = analyze(url, workers) if analyzed else summarize(url, new_ids)
            port = free_port()
            log = Path(tempfile.mkdtemp(prefix="bench-growth-log-")) / "server.log"
            proc = start_tracestore(url, port, log)
            try:
                lat = query_latency(port, repeat)
                rss, peak = rss_mb(proc.pid)
            finally:
                stop(proc)
            row = {"backend": "postgresql" if database_url else "sqlite", "target_nodes": size,
                   "nodes": nodes, "traces": traces, "findings": count_findings(url),
                   "ingest_s": round(ingest_s, 1), "new_traces": len(new_ids),
                   "analyzed": analyzed, "workers": workers,
                   "analyze_s" if analyzed else "summaries_s": round(analyze_s, 1),
                   "analyze_traces_per_s" if analyzed else "summaries_traces_per_s":
                   round((traces if analyzed else len(new_ids)) / analyze_s, 1),
                   "server_rss_mb": round(rss, 1), "server_peak_rss_mb": round(peak, 1),
                   "sqlite_file_mb": round(path.stat().st_size / 1e6, 1) if path else None,
                   "latency": lat, "machine": machine()}
            rows.append(row)
            print(summary(row), flush=True)
    return rows


def summary(row: dict[str, Any]) -> str:
    lat = "; ".join(f"{k} p50 {v['p50_ms']:.0f} ms p95 {v['p95_ms']:.0f} ms"
                    for k, v in row["latency"].items())
    work = (f"analyze {row['analyze_traces_per_s']:,.0f} traces/s ({row['workers']} workers)"
            if row["analyzed"] else f"summaries only, {row['summaries_traces_per_s']:,.0f} "
            f"traces/s")
    return (f"{row['backend']} {row['nodes']:,} nodes / {row['traces']:,} traces / "
            f"{row['findings']:,} findings: {work}; {lat}; "
            f"server RSS {row['server_rss_mb']:.0f} MB (peak {row['server_peak_rss_mb']:.0f}); "
            f"SQLite file {row['sqlite_file_mb']} MB; load {row['machine']['loadavg'][0]}")


# --- ingest rate against store size (--ingest) -------------------------------------------

FILL_NODES_PER_TRACE = 10
FILL_T0 = 1_792_000_000.0  # 2026-10-16: a month of pre-filled traffic before the new traffic
_FILL_NODE_COLS = ("project_id", "trace_id", "node_id", "parent_id", "kind", "name", "start",
                   "end", "status", "provider", "model", "input_tokens", "output_tokens",
                   "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "prompt",
                   "prompt_hash", "output", "output_hash", "cost_usd", "price_source", "priced",
                   "trace_month")
_FILL_TRACE_COLS = ("project_id", "trace_id", "workflow", "task_id", "service_name",
                    "started_at", "ended_at", "node_count", "llm_calls", "input_tokens",
                    "output_tokens", "cost_usd", "unpriced_count", "error_count", "updated_at",
                    "analyzed_at", "trace_month")


def _fill_rows(pid: int, first: int, count: int) -> tuple[list[tuple[Any, ...]],
                                                          list[tuple[Any, ...]]]:
    """(trace rows, node rows) of ``count`` pre-fill traces of 10 nodes from trace ``first``:
    an agent root and llm/tool/retrieval children with ~400 characters of prompt and output
    (what the bench's OTLP traffic stores per node is ~1 KB; the store's indexes are what
    matters here)."""
    prompt = ("Summarise the customer's refund request and decide the next step. " * 6)[:400]
    traces, nodes = [], []
    for i in range(first, first + count):
        tid = f"f{i:031x}"
        t = FILL_T0 + i * 0.25
        month = month_of(t)
        for j in range(FILL_NODES_PER_TRACE):
            llm = j % 3 == 1
            nodes.append((pid, tid, f"{j:016x}", None if j == 0 else f"{0:016x}",
                          "agent" if j == 0 else ("llm" if llm else "tool"),
                          "invoke_agent support" if j == 0 else f"step {j}", t + j * 0.1,
                          t + j * 0.1 + 0.05, "ok", "openai" if llm else None,
                          "gpt-4o" if llm else None, 1200 if llm else 0, 150 if llm else 0, 0,
                          0, 0, prompt if llm else None, f"{i:032x}" if llm else None,
                          prompt[:200] if llm else None, f"{j:032x}" if llm else None,
                          0.0045 if llm else None, "genai-prices" if llm else None, llm, month))
        traces.append((pid, tid, "support_triage" if i % 2 else None, tid, "support-bot", t,
                       t + 1.0, FILL_NODES_PER_TRACE, 3, 3600, 450, 0.0135, 0, 0, t, t, month))
    return traces, nodes


def prefill(url: str, nodes: int) -> float:
    """Bulk-load ``nodes`` nodes (10 a trace) into the default project, below the write path
    (SQLite ``executemany`` in 100k-row transactions; PostgreSQL ``COPY``, then ``VACUUM
    ANALYZE`` as autovacuum would have done to a store that grew over time); returns
    seconds."""
    engine = make_engine(url)
    create_schema(engine)
    pid = project_id_for(engine, Settings(database_url=url).project)
    months, last = [month_of(FILL_T0)], month_of(FILL_T0 + nodes / FILL_NODES_PER_TRACE * 0.25)
    while months[-1] < last:
        months.append(next_month(months[-1]))
    with engine.begin() as conn:  # PostgreSQL: the monthly partitions the rows go to
        ensure_partitions(conn, months)
    t0 = time.perf_counter()
    step = 10_000  # traces per chunk
    raw = engine.raw_connection()
    try:
        pg = engine.dialect.name == "postgresql"
        for first in range(0, nodes // FILL_NODES_PER_TRACE, step):
            count = min(step, nodes // FILL_NODES_PER_TRACE - first)
            traces, node_rows = _fill_rows(pid, first, count)
            for table, cols, rows in (("traces", _FILL_TRACE_COLS, traces),
                                      ("nodes", _FILL_NODE_COLS, node_rows)):
                names = ", ".join(f'"{c}"' for c in cols)
                cur = raw.cursor()
                if pg:
                    with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                        for r in rows:
                            copy.write_row(r)
                else:
                    marks = ", ".join("?" * len(cols))
                    cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
            raw.commit()
            print(f"  pre-filled {(first + count) * FILL_NODES_PER_TRACE:,} nodes", flush=True)
        if pg:  # as autovacuum leaves a store that grew over time: vacuumed and analysed
            raw.commit()
            driver = raw.driver_connection
            assert driver is not None
            driver.autocommit = True  # VACUUM runs outside a transaction
            raw.cursor().execute("VACUUM ANALYZE")
            driver.autocommit = False
    finally:
        raw.close()
        engine.dispose()
    return time.perf_counter() - t0


def traffic(spans: int, batch: int, seed: int, workflow: bool) -> list[bytes]:
    """OTLP bodies of ~``batch`` spans (:func:`bench.ingest_otlp._trace_spans` agent runs) in
    which every trace is split across two requests and arrives children first: a body holds
    the children of one group of traces and the roots of the previous group (the last body
    only roots). ``workflow``: the root carries ``tracestore.workflow``; otherwise no workflow
    attribute at all (the trace takes its root's name, as from most OpenTelemetry clients)."""
    from bench.ingest_otlp import _attr, _trace_spans

    rng = random.Random(seed)
    groups: list[tuple[list[Span], list[Span]]] = []
    made, seq = 0, seed * 5000
    children: list[Span] = []
    roots: list[Span] = []
    while made < spans:
        tspans = _trace_spans(rng, rng.randrange(8, 25), seq)
        seq += 1
        root = tspans[0]
        keep = [kv for kv in root.attributes if kv.key != "gen_ai.workflow.name"]
        del root.attributes[:]
        root.attributes.extend(keep)
        if workflow:
            _attr(root, "tracestore.workflow", "support_triage")
        children.extend(tspans[1:])
        roots.append(root)
        made += len(tspans)
        if len(children) + len(roots) >= batch or made >= spans:
            groups.append((children, roots))
            children, roots = [], []
    bodies = []
    for i in range(len(groups) + 1):
        part = (groups[i][0] if i < len(groups) else []) + (groups[i - 1][1] if i else [])
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        kv = rs.resource.attributes.add()
        kv.key, kv.value.string_value = "service.name", "support-bot"
        rs.scope_spans.add().spans.extend(part)
        bodies.append(req.SerializeToString())
    return bodies


def ingest_growth(database_url: str | None, sizes: list[int], spans: int, batch: int,
                  rounds: int) -> list[dict[str, Any]]:
    """Pre-fill one store per size, start a server on each, then in every round post fresh
    traffic without and with a workflow attribute into each store in turn (alternating, so
    each size sees the same minutes of machine load); spans/s until every POST is answered
    (a 200 means committed) and the server's CPU per span."""
    from bench.ingest_otlp import _cpu_tree, post_concurrently

    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        servers: dict[int, tuple[int, int]] = {}  # size -> (port, server pid)
        for size in sizes:
            url, _ = stack.enter_context(scratch_database(database_url, f"growth-{size}.db"))
            fill_s = prefill(url, size) if size else 0.0
            print(f"store of {size:,} nodes pre-filled in {fill_s:.0f} s", flush=True)
            port = free_port()
            log = Path(tempfile.mkdtemp(prefix="bench-growth-log-")) / "server.log"
            proc = start_tracestore(url, port, log)
            stack.callback(stop, proc)
            servers[size] = (port, proc.pid)
            # warm-up (worker processes, statement caches), not measured
            post_concurrently(port, traffic(1000, batch, 90 + len(servers), True), 2)
        seed = 1
        for rnd in range(rounds):
            for workflow in (False, True):
                for size in sizes:
                    bodies = traffic(spans, batch, seed, workflow)
                    seed += 1
                    port, pid = servers[size]
                    main0, sub0 = _cpu_tree(pid)
                    _, elapsed = post_concurrently(port, bodies, 2)
                    main1, sub1 = _cpu_tree(pid)
                    workers = sum(v - sub0.get(p, 0.0) for p, v in sub1.items())
                    row = {"backend": "postgresql" if database_url else "sqlite",
                           "prefilled_nodes": size, "round": rnd + 1, "workflow": workflow,
                           "spans": spans, "requests": len(bodies),
                           "spans_per_s": round(spans / elapsed),
                           "main_cpu_us_per_span": round((main1 - main0) / spans * 1e6),
                           "worker_cpu_us_per_span": round(workers / spans * 1e6),
                           "loadavg": round(os.getloadavg()[0], 1)}
                    rows.append(row)
                    print(f"round {rnd + 1} {'with' if workflow else 'without'} workflow, "
                          f"{size:,} nodes: {row['spans_per_s']:,} spans/s, server main "
                          f"{row['main_cpu_us_per_span']} µs + workers "
                          f"{row['worker_cpu_us_per_span']} µs CPU a span "
                          f"(load {row['loadavg']})", flush=True)
    for workflow in (False, True):
        base = statistics.median(r["spans_per_s"] for r in rows
                                 if r["prefilled_nodes"] == sizes[0] and r["workflow"] == workflow)
        for size in sizes:
            sel = [r for r in rows if r["prefilled_nodes"] == size and r["workflow"] == workflow]
            rate = statistics.median(r["spans_per_s"] for r in sel)
            cpu = statistics.median(r["main_cpu_us_per_span"] for r in sel)
            print(f"median {'with' if workflow else 'without'} workflow at {size:,} nodes: "
                  f"{rate:,.0f} spans/s ({rate / base:.2f}x of {sizes[0]:,}), server main "
                  f"process {cpu:.0f} µs CPU a span")
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="stored-node counts, ascending")
    ap.add_argument("--database-url", default=None, help="PostgreSQL base URL; default SQLite")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--db", type=Path, default=None,
                    help="SQLite file to grow and keep (reused by later runs); default: scratch")
    ap.add_argument("--analyze-max-nodes", type=int, default=200_000,
                    help="run `tracestore analyze` only up to this store size (see docstring)")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument("--ingest", action="store_true",
                    help="measure OTLP ingest spans/s into stores pre-filled with --sizes nodes "
                    "(bulk-loaded; e.g. --sizes 0,1000000) instead of the query growth curve")
    ap.add_argument("--spans", type=int, default=20_000, help="--ingest: spans a run")
    ap.add_argument("--batch", type=int, default=500, help="--ingest: spans a request")
    ap.add_argument("--rounds", type=int, default=2, help="--ingest: alternating rounds")
    args = ap.parse_args(argv)
    if args.ingest:
        rows = ingest_growth(args.database_url, [int(s) for s in args.sizes.split(",")],
                             args.spans, args.batch, args.rounds)
        if args.json:
            write_json(args.json, rows)
        return rows
    rows = run([int(s) for s in args.sizes.split(",")], args.database_url, args.db, args.repeat,
               args.workers, args.analyze_max_nodes)
    if args.json:
        write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
