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
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
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
    args = ap.parse_args(argv)
    rows = run([int(s) for s in args.sizes.split(",")], args.database_url, args.db, args.repeat,
               args.workers, args.analyze_max_nodes)
    if args.json:
        write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
