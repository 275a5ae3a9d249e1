"""PostgreSQL at 1M and 10M nodes (issue 18 item 7): ``/paths``, ``/attribution`` and
``/findings`` p50 for one workflow-week, bytes per node, and the server's RSS per process.

    python -m bench.pg_scale --sqlite pages1m.db \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test [--copies 10] [--append]

How the stores are made (the build is timed and printed, not part of the figures):

1. the analysed 1M-node SQLite store of :mod:`bench.pages` (``--sqlite``; built by its builder
   when the file does not exist: the seeded demo generator through ``Writer.ingest_native``,
   summaries for every trace, the analysis of 2026-W47) is copied table by table into a fresh
   PostgreSQL schema with ``COPY``, then ``VACUUM ANALYZE`` (as autovacuum leaves a store that
   grew over time): **the 1M store**, the same rows as the SQLite one;
2. measured (below);
3. grown to ``--copies`` times its size by ``INSERT … SELECT`` of every trace's rows (traces,
   nodes, edges, outcomes, findings, summaries, waste by code), copy *k* shifted 2·*k* weeks
   earlier (the demo spans two weeks) with ``~k`` appended to its trace and task ids, so the
   measured workflow-week (support_triage, 2026-W47) holds the same traces in both stores and
   the store around it is ten times larger, as months of history make it; ``VACUUM
   ANALYZE``; **the 10M store**; measured again; the schema is dropped at the end.

Measured on each store: ``tracestore serve`` as a separate process (its ingest workers
started), over one keep-alive loopback connection each query 3 times to warm up and
``--repeat`` times measured, wall p50/p95 and the server's mean CPU per request (its own
process; PostgreSQL's backend time is inside the wall time only): ``/paths`` and
``/attribution`` for support_triage in 2026-W47 (as :mod:`bench.queries`), ``/findings`` for
the same workflow-week and the project's first page (largest waste first); then the server's
``VmRSS`` and ``VmHWM`` per process (main and each ingest worker apart, ``/proc``) and the
bytes per node (``pg_total_relation_size`` of every table of the schema, indexes and TOAST
included, over the nodes).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench.common import free_port, percentile, pg_schema, start_tracestore, stop
from bench.queries import report
from tracestore.demo import W47_START
from tracestore.store.engine import create_schema, make_engine
from tracestore.store.partitions import ensure_partitions

WEEK = 7 * 86400.0
WINDOW: dict[str, str | float] = {"since": W47_START, "until": W47_START + WEEK}
WF_WEEK: dict[str, str | float] = {"workflow": "support_triage", **WINDOW}
QUERIES: list[tuple[str, str, dict[str, Any]]] = [
    ("paths", "/api/v1/paths", WF_WEEK),
    ("attribution", "/api/v1/attribution", WF_WEEK),
    ("findings", "/api/v1/findings", {**WF_WEEK, "limit": 50}),
    ("findings (project, first page)", "/api/v1/findings", {"limit": 50}),
]
# Tables copied from SQLite, in an order that satisfies nothing but readability (no FKs).
TABLES = ("projects", "workflow_settings", "price_overrides", "traces", "nodes", "edges",
          "outcomes", "findings", "trace_summaries", "trace_waste")
# Per table of per-trace rows: the time columns shifted and the id columns suffixed by a copy.
TIME_COLS = {"traces": ("started_at", "ended_at", "updated_at", "analyzed_at"),
             "nodes": ("start", "end"), "edges": (), "outcomes": ("occurred_at", "updated_at"),
             "findings": ("trace_started_at", "created_at"),
             "trace_summaries": ("started_at", "summarized_at"), "trace_waste": ("started_at",)}
ID_COLS = {"traces": ("trace_id", "task_id"), "nodes": ("trace_id",), "edges": ("trace_id",),
           "outcomes": ("task_id", "trace_id"), "findings": ("id", "trace_id"),
           "trace_summaries": ("trace_id", "task_id"), "trace_waste": ("trace_id",)}


def copy_from_sqlite(db: Path, url: str) -> float:
    """Every table of ``db`` into the (fresh) schema of ``url`` by COPY; returns seconds."""
    engine = make_engine(url)
    create_schema(engine)
    old = make_engine(f"sqlite:///{db}")
    create_schema(old)  # a store of an earlier release gets trace_month first
    old.dispose()
    t0 = time.perf_counter()
    src = sqlite3.connect(db)
    with engine.begin() as conn:  # the monthly partitions of nodes and edges the rows go to
        ensure_partitions(conn, [m for (m,) in src.execute(
            "SELECT DISTINCT trace_month FROM traces WHERE trace_month IS NOT NULL")])
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for table in TABLES:
            cols = [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]
            names = ", ".join(f'"{c}"' for c in cols)
            cur.execute(f'DELETE FROM "{table}"')  # create_schema's own rows (the project)
            n = 0
            with cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                for row in src.execute(f'SELECT {names} FROM "{table}"'):
                    copy.write_row(row)
                    n += 1
            raw.commit()
            print(f"  copied {table}: {n:,} rows", flush=True)
        for table in ("projects", "price_overrides"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
        raw.commit()
    finally:
        raw.close()
        src.close()
        engine.dispose()
    vacuum(url)
    return time.perf_counter() - t0


def vacuum(url: str) -> None:
    """``VACUUM ANALYZE`` of this schema's tables only (other schemas share the database)."""
    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in TABLES:
            conn.execute(text(f'VACUUM ANALYZE "{table}"'))
    engine.dispose()


def _month(start: str, shift: float) -> str:
    """The month (yyyymm) of the epoch seconds ``start`` moved ``shift`` earlier."""
    return (f"CAST(to_char(to_timestamp({start} - {shift}) AT TIME ZONE 'UTC', 'YYYYMM') "
            "AS INTEGER)")


def _select_copy(table: str, cols: list[str], k: int) -> str:
    """The select list copying ``table``'s rows (``FROM table AS x``) ``k`` times 2 weeks
    earlier: times shifted, ids suffixed, a trace's month (and its nodes' and edges') that of
    its shifted start."""
    shift = 2 * k * WEEK
    out = []
    for c in cols:
        if c == "trace_month" and table == "traces":
            out.append(_month("COALESCE(started_at, updated_at)", shift))
        elif c == "trace_month":
            out.append(f"(SELECT {_month('COALESCE(t.started_at, t.updated_at)', shift)} "
                       "FROM traces t WHERE t.project_id = x.project_id "
                       "AND t.trace_id = x.trace_id)")
        elif c in TIME_COLS[table]:
            out.append(f'"{c}" - {shift}')
        elif c in ID_COLS[table]:
            out.append(f"\"{c}\" || '~{k}'")
        elif table in ("trace_summaries", "trace_waste") and c == "week":  # of the new start
            out.append(f"to_char(to_timestamp(started_at - {shift}) AT TIME ZONE 'UTC', "
                       "'IYYY-\"W\"IW')")
        else:
            out.append(f'"{c}"')
    return ", ".join(out)


def grow(url: str, copies: int) -> float:
    """Add ``copies - 1`` shifted copies of every trace's rows; returns seconds."""
    engine = make_engine(url)
    t0 = time.perf_counter()
    with engine.connect() as conn:
        for k in range(1, copies):
            ensure_partitions(conn, [m for (m,) in conn.execute(text(
                f"SELECT DISTINCT {_month('COALESCE(started_at, updated_at)', 2 * k * WEEK)} "
                "FROM traces WHERE strpos(trace_id, '~') = 0"))])
            for table in TIME_COLS:
                cols = [r[0] for r in conn.execute(text(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                    "current_schema() AND table_name = :t ORDER BY ordinal_position"),
                    {"t": table})]
                names = ", ".join(f'"{c}"' for c in cols)
                key = "task_id" if table == "outcomes" else "trace_id"
                conn.execute(text(
                    f'INSERT INTO "{table}" ({names}) SELECT {_select_copy(table, cols, k)} '
                    f"FROM \"{table}\" AS x WHERE strpos({key}, '~') = 0"))
            conn.commit()
            print(f"  copy {k} of {copies - 1} written ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    engine.dispose()
    vacuum(url)
    return time.perf_counter() - t0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency(port: int, pid: int, repeat: int) -> list[tuple[str, dict[str, Any], float, float,
                                                            float, int]]:
    """(name, params, p50 ms, p95 ms, server CPU ms a request, bytes) per query."""
    out = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as c:
        for name, path, params in QUERIES:
            for _ in range(3):
                r = c.get(path, params=params)
                assert r.status_code == 200, r.text[:300]
            lat = []
            cpu0 = _cpu_s(pid)
            for _ in range(repeat):
                t0 = time.perf_counter()
                r = c.get(path, params=params)
                lat.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
            cpu = (_cpu_s(pid) - cpu0) / repeat * 1000
            lat.sort()
            out.append((name, params, percentile(lat, 0.5), percentile(lat, 0.95), cpu,
                        len(r.content)))
    return out


def rss_each(pid: int) -> list[tuple[int, str, float, float]]:
    """(pid, role, VmRSS MB, VmHWM MB) of ``pid`` and each of its descendants."""
    out, todo = [], [(pid, "main")]
    while todo:
        p, role = todo.pop(0)
        if role == "forkserver" and any(r == "forkserver" for _, r, _, _ in out):
            role = "ingest worker"  # forked by the forkserver: the same command line
        status = dict(line.split(":", 1) for line in
                      Path(f"/proc/{p}/status").read_text().splitlines() if ":" in line)
        out.append((p, role, int(status["VmRSS"].split()[0]) / 1024,
                    int(status["VmHWM"].split()[0]) / 1024))
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            for c in task.read_text().split():
                cmd = Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                role = ("resource tracker" if "resource_tracker" in cmd else
                        "forkserver" if "forkserver" in cmd else "child")
                todo.append((int(c), role))
    return out


def store_size(url: str) -> tuple[int, int, int, int]:
    """(nodes, traces, findings, bytes of every table of the schema with indexes and TOAST)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        counts = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in ("nodes", "traces", "findings")]
        total = conn.execute(text(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relkind IN ('r', 'p')")).scalar_one()
    engine.dispose()
    return int(counts[0]), int(counts[1]), int(counts[2]), int(total)


def measure(url: str, repeat: int) -> list[str]:
    nodes, traces, findings, size = store_size(url)
    lines = [f"store: {nodes:,} nodes, {traces:,} traces, {findings:,} findings (PostgreSQL); "
             f"{size / 1e9:.2f} GB, {size / nodes:,.0f} bytes a node (tables, indexes, TOAST)"]
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-pg-scale-")) / "server.log"
    proc = start_tracestore(url, port, log)
    try:
        time.sleep(2)  # the ingest workers finish starting
        for name, params, p50, p95, cpu, size_b in latency(port, proc.pid, repeat):
            extra = {k: v for k, v in params.items() if k not in ("since", "until")}
            lines.append(f"GET {name} {extra}: p50 {p50:.1f} ms, p95 {p95:.1f} ms wall; "
                         f"server CPU {cpu:.1f} ms a request ({size_b:,} bytes)")
        for pid, role, rss, hwm in rss_each(proc.pid):
            lines.append(f"server RSS {role} process {pid}: VmRSS {rss:.0f} MB, "
                         f"VmHWM {hwm:.0f} MB")
    finally:
        stop(proc)
    lines.append(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on "
                 f"{os.cpu_count()} cores")
    print("\n".join(lines), flush=True)
    return lines


def build_sqlite(db: Path, nodes: int) -> None:
    """The bench.pages store (write path, summaries, analysis of 2026-W47) at ``db``."""
    subprocess.run([sys.executable, "-m", "bench.pages", "--nodes", str(nodes), "--db", str(db),
                    "--repeat", "1"], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sqlite", type=Path, required=True,
                    help="the analysed bench.pages store to start from (built when missing)")
    ap.add_argument("--nodes", type=int, default=1_000_000, help="size of a missing --sqlite")
    ap.add_argument("--database-url", required=True, help="PostgreSQL base URL")
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--append", action="store_true", help="Append to bench/RESULTS.md.")
    args = ap.parse_args()
    if not args.sqlite.exists():
        build_sqlite(args.sqlite, args.nodes)
    lines: list[str] = []
    with pg_schema(args.database_url) as url:
        lines.append(f"store copied from SQLite in {copy_from_sqlite(args.sqlite, url):.0f} s "
                     "(COPY + VACUUM ANALYZE)")
        lines += measure(url, args.repeat)
        lines.append(f"grown to {args.copies} copies in {grow(url, args.copies):.0f} s "
                     "(INSERT … SELECT + VACUUM ANALYZE)")
        lines += measure(url, args.repeat)
    report(lines, append=args.append,
           heading="PostgreSQL at 1M and 10M nodes (issue 18 item 7): routes, bytes, RSS",
           command=f"python -m bench.pg_scale --sqlite STORE --copies {args.copies} "
                   "--database-url postgresql+psycopg://…",
           target="p50 ≤ 200 ms for one workflow-week; RSS ≤ 300 MB a process")


if __name__ == "__main__":
    main()
