"""Server time of every analyst page on a large store (issue 17: p50 <= 300 ms at 1M nodes).

    python -m bench.pages --nodes 1000000 [--db FILE] [--repeat 20] [--append]

Builds (or reuses) a SQLite store the way :mod:`bench.queries` does (the seeded demo
generator through ``Writer.ingest_native``, summaries in start-time order), analyses the
pages' week (2026-W47: findings and summaries as the server would have them), then requests each
page in-process through the real app (``TestClient``: routing, auth, queries, Jinja2) — 5 warm-up
requests, then ``--repeat`` measured — and prints wall p50/p95 and CPU p50 per page.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bench.queries import build_store, measure, report
from tracestore.analysis import Window, analyze_window, default_suite
from tracestore.api import create_app
from tracestore.config import Settings
from tracestore.demo import W47_START
from tracestore.store.engine import make_engine
from tracestore.store.tables import FINDING_T, NODE_T, STORED_T, TRACE_T

WEEK = 7 * 86400.0


def _analyse_week(url: str) -> float:
    engine = make_engine(url)
    t0 = time.perf_counter()
    analyze_window(engine, project_id=1, window=Window(since=W47_START, until=W47_START + WEEK),
                   suite=default_suite(), baseline_days=28.0, now=W47_START + 8 * 86400)
    engine.dispose()
    return time.perf_counter() - t0


def _cold(client: TestClient, url: str, path: str, params: dict[str, str]
          ) -> tuple[float, float]:
    """Wall and CPU ms of one request after the stored pages and digests are dropped (the
    first view of a week after a change: tracestore.store.stored)."""
    engine = make_engine(url)
    with Session(engine) as s:
        s.execute(delete(STORED_T))  # the stored pages and digests
        s.commit()
    engine.dispose()
    t0, c0 = time.perf_counter(), time.process_time()
    assert client.get(path, params=params).status_code == 200
    return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=None, help="SQLite file to build or reuse.")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--append", action="store_true", help="Append to bench/RESULTS.md.")
    ap.add_argument("--cold", action="store_true",
                    help="also time each page's first request with its stored rows dropped")
    ap.add_argument("--skip", action="append", default=[],
                    help="a page path not to measure (e.g. /digest); may be repeated")
    args = ap.parse_args()
    db = args.db or Path(tempfile.mkdtemp()) / "bench_pages.db"
    url = f"sqlite:///{db}"
    lines = []
    if not db.exists():
        print(f"building {db} …", flush=True)
        built = build_store(url, args.nodes)
        lines.append(f"built: ingest {built['ingest_s']:.0f} s, summaries "
                     f"{built['summaries_s']:.0f} s; analysis of 2026-W47 "
                     f"{_analyse_week(url):.0f} s")
    engine = make_engine(url)
    with Session(engine) as s:
        nodes = s.execute(select(func.count()).select_from(NODE_T)).scalar_one()
        traces = s.execute(select(func.count()).select_from(TRACE_T)).scalar_one()
        findings = s.execute(select(func.count()).select_from(FINDING_T)).scalar_one()
        trace_id = s.execute(select(FINDING_T.c.trace_id).order_by(
            FINDING_T.c.wasted_cost_usd.desc()).limit(1)).scalar() or "none"
    engine.dispose()
    lines.insert(0, f"store: {nodes:,} nodes, {traces:,} traces, {findings:,} findings "
                    "(SQLite); pages for 2026-W47")
    week = {"week": "2026-W47"}
    pages = [("/", week), ("/", {**week, "workflow": "support_triage"}),
             ("/workflows/support_triage", week), ("/paths", week),
             ("/paths", {**week, "workflow": "support_triage"}), ("/findings", week),
             (f"/traces/{trace_id}", {}), ("/prices", week), ("/digest", week)]
    with TestClient(create_app(Settings(database_url=url, settle_seconds=0,
                                        alert_interval_seconds=0))) as client:
        for path, params in pages:
            if path in args.skip:
                continue
            shown = path if not path.startswith("/traces/") else "/traces/{id}"
            if args.cold:
                wall, cpu = _cold(client, url, path, params)
                lines.append(f"GET {shown} {params or ''} cold (nothing stored): {wall:.0f} ms "
                             f"wall, {cpu:.0f} ms CPU")
                print(lines[-1], flush=True)
            p50, p95, cpu, size = measure(client, path, params, args.repeat)
            lines.append(f"GET {shown} {params or ''}: p50 {p50:.1f} ms, p95 {p95:.1f} ms wall; "
                         f"p50 {cpu:.1f} ms CPU ({size:,} bytes)")
            print(lines[-1], flush=True)
    report(lines, append=args.append, heading="pages (issue 17): server time per page",
           command=f"python -m bench.pages --nodes {args.nodes}"
                   + (" --cold" if args.cold else "") + "".join(f" --skip {p}" for p in args.skip),
           target="p50 <= 300 ms at 1M nodes")


if __name__ == "__main__":
    main()
