"""Analyst query latency: ``GET /api/v1/paths`` and ``GET /api/v1/attribution`` for one
workflow-week, over a store of about 1M nodes.

Run from the repo root: ``python -m bench.queries [--nodes 1000000] [--db PATH] [--append]``.
Target (issue 6 item 6): p50 ≤ 200 ms for each at 1M stored nodes.

How the store is made (untimed, reused when ``--db`` points at an existing file):

1. the seeded demo generator (:func:`tracestore.demo.generate`, ~10 nodes a trace, three
   workflows over ISO weeks 2026-W46 and 2026-W47) in chunks of 2,000 traces with seeds
   1, 2, … until ``--nodes`` nodes exist, each chunk written through the one write path
   (:meth:`tracestore.ingest.pipeline.Writer.ingest_native`, then ``write_outcomes`` for the late
   outcomes);
2. per-trace summaries written as the analysis runtime writes them after a batch
   (:func:`tracestore.reports.summaries.summarize_traces`, 500 traces a transaction, in start-time
   order; the analyzers themselves are not run, so there are no findings — the reports read
   only summaries; waste is the attribution's own dead-end booking).

Each query then runs through the real app (``TestClient``; HTTP parsing, validation and JSON
encoding included) 5 times to warm up and ``--repeat`` times measured: wall-clock p50/p95,
and the p50 of the process's CPU time (SQLite runs in-process, so this is the query's own
cost, robust to other load on a shared machine; the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracestore.api import create_app
from tracestore.config import Settings
from tracestore.demo import W47_START, generate
from tracestore.ingest.pipeline import Writer, project_id_for
from tracestore.reports.summaries import summarize_traces
from tracestore.schemas import OutcomeIn
from tracestore.store.engine import create_schema, make_engine, session_scope
from tracestore.store.tables import Node, Trace, TraceSummary

WEEK = 7 * 86400.0
CHUNK = 2000  # traces per generated chunk


def build_store(url: str, nodes: int) -> dict[str, float]:
    """Fill ``url`` with about ``nodes`` nodes through the write path; return timings."""
    engine = make_engine(url)
    create_schema(engine)
    settings = Settings(database_url=url)
    writer = Writer(engine, settings)
    pid = project_id_for(engine, settings.project)
    t0 = time.perf_counter()
    total, seed = 0, 1
    while total < nodes:
        data = generate(seed=seed, n_traces=CHUNK)
        for i in range(0, len(data.traces), 500):
            report = writer.ingest_native(pid, data.traces[i : i + 500])
            total += report.accepted_nodes
        writer.write_outcomes(pid, [OutcomeIn.model_validate(o) for o in data.outcomes])
        seed += 1
        print(f"  ingested {total:,} nodes", flush=True)
    t_ingest = time.perf_counter() - t0
    with Session(engine) as s:
        # In start-time order, as the analysis runtime meets settled traces in production
        # (the summary rows of one week then sit together on disk).
        ids = list(s.execute(select(Trace.trace_id).where(Trace.project_id == pid)
                             .order_by(Trace.started_at, Trace.trace_id)).scalars())
    t0 = time.perf_counter()
    for i in range(0, len(ids), 500):
        with session_scope(engine) as s:
            summarize_traces(s, project_id=pid, trace_ids=ids[i : i + 500])
    t_sum = time.perf_counter() - t0
    engine.dispose()
    return {"ingest_s": t_ingest, "summaries_s": t_sum, "traces": len(ids)}


def measure(client: TestClient, path: str, params: dict[str, object], repeat: int
            ) -> tuple[float, float, float, int]:
    for _ in range(5):
        r = client.get(path, params=params)
        assert r.status_code == 200, r.text
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        r = client.get(path, params=params)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        assert r.status_code == 200
    wall.sort()
    return (statistics.median(wall), wall[int(0.95 * (len(wall) - 1))],
            statistics.median(cpu), len(r.content))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=None, help="SQLite file to build or reuse.")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--append", action="store_true", help="Append to bench/RESULTS.md.")
    args = ap.parse_args()
    db = args.db or Path(tempfile.mkdtemp()) / "bench_queries.db"
    url = f"sqlite:///{db}"
    built: dict[str, float] = {}
    if not db.exists():
        print(f"building {db} …")
        built = build_store(url, args.nodes)
    engine = make_engine(url)
    for index in TraceSummary.__table__.indexes:  # type: ignore[attr-defined]
        index.create(engine, checkfirst=True)  # a store built before an index was added
    with Session(engine) as s:
        n_nodes = s.execute(select(func.count()).select_from(Node)).scalar_one()
        n_traces = s.execute(select(func.count()).select_from(Trace)).scalar_one()
        wk = s.execute(select(func.count()).select_from(Trace).where(
            Trace.workflow == "support_triage", Trace.started_at >= W47_START,
            Trace.started_at < W47_START + WEEK)).scalar_one()
    engine.dispose()
    window = {"since": W47_START, "until": W47_START + WEEK}
    queries = [
        ("/api/v1/paths", {"workflow": "support_triage", **window}),
        ("/api/v1/paths", {"workflow": "support_triage", "order": "cost_per_outcome", **window}),
        ("/api/v1/attribution", {"workflow": "support_triage", **window}),
        ("/api/v1/attribution", {"workflow": "support_triage", "group_by": "team,model",
                                 "compare": "previous", **window}),
    ]
    lines = [(f"store: {n_nodes:,} nodes, {n_traces:,} traces (SQLite); one workflow-week "
              f"(support_triage, 2026-W47) = {wk:,} traces")]
    if built:
        lines.append(f"built: ingest {built['ingest_s']:.0f} s, summaries "
                     f"{built['summaries_s']:.0f} s "
                     f"({built['traces'] / built['summaries_s']:,.0f} traces/s)")
    with TestClient(create_app(Settings(database_url=url, settle_seconds=0))) as client:
        for path, params in queries:
            p50, p95, cpu, size = measure(client, path, params, args.repeat)
            extra = {k: v for k, v in params.items() if k not in ("since", "until", "workflow")}
            lines.append(f"GET {path} {extra or ''}: p50 {p50:.1f} ms, p95 {p95:.1f} ms wall; "
                         f"p50 {cpu:.1f} ms CPU ({size:,} bytes)")
    report(lines, append=args.append,
           heading="queries (issue 6): /paths and /attribution, one workflow-week",
           command=f"python -m bench.queries --nodes {args.nodes}", target="p50 ≤ 200 ms")


def report(lines: list[str], *, append: bool, heading: str, command: str, target: str) -> None:
    """Print the figures with the machine load, and with ``append`` add them to RESULTS.md."""
    lines = [*lines, f"load average during the run: {os.getloadavg()[0]:.1f} on "
                     f"{os.cpu_count()} cores"]
    text = "\n".join(lines)
    print(text)
    if append:
        with open(os.path.join(os.path.dirname(__file__), "RESULTS.md"), "a") as f:
            f.write(f"\n## {heading}\n\n`{command}` on {time.strftime('%Y-%m-%d')}; target "
                    f"{target}.\n\n```\n{text}\n```\n")


if __name__ == "__main__":
    main()
