"""Past one process on PostgreSQL (issue 18 item 7, in part): native ingest nodes/s with 1 and 2
``tracestore serve`` processes, analysis traces/s with 1 and 2 ``tracestore worker``
processes, bytes per node and server RSS. Alternating runs (1, 2, 1, 2, ...) in the same
minutes, each on a fresh schema; the machine load is recorded with every figure.

    python -m bench.scale_out --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

``--prefill N`` runs every measurement on one schema bulk-loaded first with N nodes
(:func:`bench.growth.prefill`: COPY, partitions, VACUUM ANALYZE) instead of a fresh schema per
run; each run then posts fresh demo traces (its own seed), so ingest and analysis meet a store
of that size (the workers' baselines read the pre-filled month too).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from bench.common import free_port, machine, pg_schema, rss_mb, spread, stop, wait_http, write_json
from tracestore.demo.run import generate_demo_traces
from tracestore.store.engine import make_engine

LOGS = Path("bench/out/scale_out")


def _tracestore(args: list[str], log: Path, url: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from tracestore.cli.main import main; main()", *args],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "TRACESTORE_DATABASE_URL": url, "TRACESTORE_DIGEST_SCHEDULE": "",
             **env})


def ingest(url: str, servers: int, bodies: list[bytes], clients: int) -> dict[str, Any]:
    """Post ``bodies`` from ``clients`` threads round-robin to ``servers`` serve processes."""
    procs, ports = [], []
    for i in range(servers):
        port = free_port()
        log = LOGS / f"serve{i}.log"
        proc = _tracestore(["serve", "--port", str(port)], log, url,
                           TRACESTORE_SETTLE_SECONDS="0")
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log, timeout=180)
        procs.append(proc)
        ports.append(port)
    nodes = [0]
    lock = threading.Lock()

    def client(cid: int) -> None:
        with httpx.Client(timeout=120) as http:
            for k in range(cid, len(bodies), clients):
                port = ports[k % servers]
                r = http.post(f"http://127.0.0.1:{port}/api/v1/traces", content=bodies[k],
                              headers={"content-type": "application/json"})
                r.raise_for_status()
                with lock:
                    nodes[0] += r.json()["accepted_nodes"]

    try:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss = [rss_mb(p.pid)[0] for p in procs]
    finally:
        for p in procs:
            stop(p)
    return {"nodes_per_s": nodes[0] / wall, "nodes": nodes[0], "rss_mb": rss,
            "load": os.getloadavg()[0]}


def analyse(url: str, workers: int) -> dict[str, Any]:
    """Drain the analysis queue with ``workers`` worker processes; traces/s from their start
    until the queue is empty (start-up and baselines included)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        queued = conn.execute(text("SELECT count(*) FROM analysis_queue")).scalar_one()
    t0 = time.perf_counter()
    procs = [_tracestore(["worker", "--settle", "0", "--batch", "200", "--poll", "0.2"],
                         LOGS / f"worker{i}.log", url) for i in range(workers)]
    try:
        while True:
            with engine.connect() as conn:
                left = conn.execute(text("SELECT count(*) FROM analysis_queue")).scalar_one()
            if left == 0:
                break
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a worker exited")
            time.sleep(0.1)
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            stop(p)
    engine.dispose()
    return {"traces_per_s": queued / wall, "traces": queued, "load": os.getloadavg()[0]}


def size(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    with engine.connect() as conn:
        nodes = conn.execute(text("SELECT count(*) FROM nodes")).scalar_one()
        total = conn.execute(text(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        )).scalar_one()
    engine.dispose()
    return {"nodes": nodes, "bytes": int(total), "bytes_per_node": int(total) / max(nodes, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--postgres", default=os.environ.get("TRACESTORE_BENCH_POSTGRES_URL"))
    ap.add_argument("--traces", type=int, default=3000)
    ap.add_argument("--per-request", type=int, default=50)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--prefill", type=int, default=0,
                    help="bulk-load one schema with this many nodes first and run there")
    args = ap.parse_args()
    if not args.postgres:
        raise SystemExit("--postgres URL is required")
    LOGS.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {"ingest_1": [], "ingest_2": [], "analyse_1": [],
                                             "analyse_2": []}
    sizes = []
    with ExitStack() as stack:
        shared = None
        if args.prefill:
            from bench.growth import prefill

            shared = stack.enter_context(pg_schema(args.postgres))
            print(f"pre-filled {args.prefill:,} nodes in {prefill(shared, args.prefill):.0f} s",
                  flush=True)
        seed = 5
        for _ in range(args.rounds):
            for n in (1, 2):
                data = generate_demo_traces(seed=seed, n=args.traces)
                seed += 1
                bodies = [orjson.dumps(data.traces[i : i + args.per_request])
                          for i in range(0, len(data.traces), args.per_request)]
                with ExitStack() as run:
                    url = shared or run.enter_context(pg_schema(args.postgres))
                    runs[f"ingest_{n}"].append(ingest(url, n, bodies, args.clients))
                    runs[f"analyse_{n}"].append(analyse(url, n))
                    sizes.append(size(url))
                print(n, runs[f"ingest_{n}"][-1], runs[f"analyse_{n}"][-1], flush=True)
    out = {"machine": machine(), "traces": args.traces, "prefill": args.prefill,
           "requests": -(-args.traces // args.per_request),
           "clients": args.clients, "size": sizes[-1], "runs": runs,
           **{f"{k}_median": spread([r.get("nodes_per_s", r.get("traces_per_s", 0))
                                     for r in v])["median"] for k, v in runs.items()}}
    write_json(LOGS / "result.json", out)
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
