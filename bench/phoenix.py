"""OTLP ingest side by side with Arize Phoenix: the same pre-encoded requests, the same loader,
alternating runs, spans/s from the first POST until every span is queryable, and RSS.

Run from the repo root: ``python -m bench.phoenix [--spans 5000] [--runs 3] [--json PATH]``.

* Phoenix is installed into a throwaway virtualenv, ``bench/out/phoenix-venv`` (gitignored,
  never a project dependency): ``pip index versions arize-phoenix`` first, then
  ``pip install arize-phoenix==<that version>``; an existing venv is reused.
* ``phoenix serve`` runs on loopback (``PHOENIX_HOST=127.0.0.1``) with ``PHOENIX_WORKING_DIR``
  a fresh temp dir per run, so it uses its embedded SQLite; its gRPC collector moves to a free
  port; telemetry and external resources are off. ``tracestore serve`` runs on a fresh SQLite
  file with background analysis off (``bench.common.start_tracestore``).
* Requests: :func:`bench.ingest_otlp.build_requests` (agent traces of 8–24 spans with message,
  document and tool content, ~500 spans a body), encoded once before either server starts, and
  posted by :func:`bench.ingest_otlp.post_concurrently` over 2 keep-alive HTTP/1.1 connections to
  ``/v1/traces`` — byte-identical bodies for both servers.
* Clock: first POST → all spans queryable. tracestore answers 200 only after commit; its span
  count is read from the store (the ``nodes`` table, as ``bench/ingest_otlp.py``). Phoenix queues
  spans and inserts them in the background, so its GraphQL span count for the project is polled
  (every ``POLL_S``) until it reaches the number sent.
* RSS: each server's resident set (``VmRSS``) after the run and its peak (``VmHWM``), summed
  over the server process and its children.
* Runs alternate (tracestore first in odd runs, Phoenix first in even ones); every figure is
  the median of ``--runs`` with min and max; the ratio is tracestore/Phoenix spans/s per pair.
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

from bench.common import (
    free_port,
    machine,
    rss_mb,
    spread,
    start_tracestore,
    stop,
    wait_http,
    write_json,
)
from bench.ingest_otlp import build_requests, post_concurrently

VENV = Path(__file__).resolve().parent / "out" / "phoenix-venv"
PROJECT = "default"  # Phoenix files spans without an openinference.project.name here
POLL_S = 0.25  # Phoenix count poll interval: small against runs of tens of seconds
COUNT_QUERY = "query { projects { edges { node { name recordCount } } } }"


def ensure_phoenix() -> str:
    """The venv's ``phoenix`` executable, installing the newest arize-phoenix if needed."""
    exe = VENV / "bin" / "phoenix"
    if exe.exists():
        return str(exe)
    pip = [sys.executable, "-m", "pip"]
    listing = subprocess.run([*pip, "index", "versions", "arize-phoenix"], capture_output=True,
                             text=True, check=True).stdout
    version = listing.split("(", 1)[1].split(")", 1)[0]  # "arize-phoenix (X.Y.Z)"
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", f"arize-phoenix=={version}"],
                   check=True)
    return str(exe)


def phoenix_version() -> str:
    done = subprocess.run([str(VENV / "bin" / "python"), "-c",
                           "import phoenix; print(phoenix.__version__)"],
                          check=False, capture_output=True, text=True)
    return done.stdout.strip()


def start_phoenix(exe: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(workdir), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(free_port()),
           "PHOENIX_TELEMETRY_ENABLED": "false", "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false"}
    env.pop("PHOENIX_SQL_DATABASE_URL", None)
    log = workdir / "server.log"
    proc = subprocess.Popen([exe, "serve"], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, cwd=workdir)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, log, timeout=300)
    return proc


def phoenix_count(client: httpx.Client) -> int:
    r = client.post("/graphql", json={"query": COUNT_QUERY})
    r.raise_for_status()
    edges = r.json()["data"]["projects"]["edges"]
    return sum(int(e["node"]["recordCount"]) for e in edges)


def rows_in(db: Path) -> int:
    """Rows in Phoenix's ``spans`` table (0 before the table exists)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
    except sqlite3.Error:
        return 0


def sqlite_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM nodes").fetchone()[0])


def timed_load(port: int, bodies: list[bytes], queryable: Any, spans: int
               ) -> tuple[float, float, float]:
    """Post every body over 2 connections; (perf_counter at the first POST, seconds until all
    were answered, seconds until all spans were queryable)."""
    start, posted = post_concurrently(port, bodies, 2)
    while queryable() < spans:
        time.sleep(POLL_S)
    return start, posted, time.perf_counter() - start


def run_tracestore(bodies: list[bytes], spans: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-ts-") as d:
        db, port = Path(d) / "bench.db", free_port()
        proc = start_tracestore(f"sqlite:///{db}", port, Path(d) / "server.log")
        try:
            _, posted, elapsed = timed_load(port, bodies, lambda: sqlite_count(db), spans)
            rss, peak = rss_mb(proc.pid)
        finally:
            stop(proc)
        return {"spans_per_s": spans / elapsed, "posted_s": posted, "queryable_s": elapsed,
                "rss_mb": rss, "peak_rss_mb": peak, "db_mb": db.stat().st_size / 1e6}


def run_phoenix(exe: str, bodies: list[bytes], spans: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-phoenix-") as d:
        port = free_port()
        proc = start_phoenix(exe, port, Path(d))
        try:
            seen: list[float] = []

            def count() -> int:
                # Cross-check of the GraphQL count: when did the rows reach Phoenix's SQLite?
                if not seen and rows_in(Path(d) / "phoenix.db") >= spans:
                    seen.append(time.perf_counter())
                return phoenix_count(c)

            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
                start, posted, elapsed = timed_load(port, bodies, count, spans)
            rss, peak = rss_mb(proc.pid)
        finally:
            stop(proc)
        dbs = list(Path(d).glob("*.db"))
        return {"spans_per_s": spans / elapsed, "posted_s": posted, "queryable_s": elapsed,
                "rows_in_db_s": (seen[0] if seen else time.perf_counter()) - start,
                "rss_mb": rss, "peak_rss_mb": peak,
                "db_mb": dbs[0].stat().st_size / 1e6 if dbs else float("nan")}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    exe = ensure_phoenix()
    reqs = build_requests(args.spans, args.batch)
    bodies, spans = [b for b, _ in reqs], sum(n for _, n in reqs)
    print(f"{spans} spans in {len(bodies)} protobuf requests "
          f"({sum(map(len, bodies)) / 1e6:.1f} MB); arize-phoenix {phoenix_version()}",
          flush=True)
    runs: dict[str, list[dict[str, float]]] = {"tracestore": [], "phoenix": []}
    for i in range(args.runs):
        order = ["tracestore", "phoenix"] if i % 2 == 0 else ["phoenix", "tracestore"]
        for who in order:
            r = (run_tracestore(bodies, spans) if who == "tracestore"
                 else run_phoenix(exe, bodies, spans))
            runs[who].append(r)
            print(f"run {i + 1} {who}: {r['spans_per_s']:,.0f} spans/s (POSTs answered "
                  f"{r['posted_s']:.2f} s, queryable {r['queryable_s']:.2f} s), RSS "
                  f"{r['rss_mb']:.0f} MB peak {r['peak_rss_mb']:.0f} MB; load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    ratios = [t["spans_per_s"] / p["spans_per_s"]
              for t, p in zip(runs["tracestore"], runs["phoenix"], strict=True)]
    result: dict[str, Any] = {
        "spans": spans, "requests": len(bodies), "phoenix_version": phoenix_version(),
        "machine": machine(), "ratio": spread(ratios),
        **{who: {k: spread([r[k] for r in rs]) for k in rs[0]} for who, rs in runs.items()}}
    med = {who: result[who]["spans_per_s"]["median"] for who in runs}
    print(f"median spans/s: tracestore {med['tracestore']:,.0f}, Phoenix {med['phoenix']:,.0f}; "
          f"ratio {result['ratio']['median']:.1f}x (min {result['ratio']['min']:.1f}, max "
          f"{result['ratio']['max']:.1f}); RSS median tracestore "
          f"{result['tracestore']['rss_mb']['median']:.0f} MB, Phoenix "
          f"{result['phoenix']['rss_mb']['median']:.0f} MB")
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
