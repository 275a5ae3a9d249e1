"""Native ingest throughput and trace-read latency over real HTTP.

The server (``tracestore serve``, uvicorn) and this loader run as separate processes over
loopback. The loader pre-encodes the demo traffic (:mod:`tracestore.demo`) into request
bodies of about 1,000 nodes each, then posts them over 2 keep-alive connections (httpx). A
run is timed from the first POST until every node is queryable (a 2xx means committed; the
last trace of each connection is then read back and checked). Each run starts from an empty
database; the script reports every run and the median.

Afterwards ``GET /api/v1/traces/{id}`` is timed for random stored traces (p50/p95).

    python bench/ingest_native.py                       # SQLite in a temp dir, 3 runs
    python bench/ingest_native.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
    python bench/ingest_native.py --versus-otlp --runs 3  # native and OTLP runs alternating

``--versus-otlp`` alternates a native run with an OTLP run of as many spans
(:func:`bench.ingest_otlp.build_requests`: protobuf bodies of 500 spans, 2 connections, timed
until every POST is answered, a 200 meaning committed), each into a fresh store, and prints
native nodes/s beside OTLP spans/s per round and their medians (the target: native >= OTLP).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

# Run as a script, this folder comes first on sys.path, where bench/analyzers.py would shadow
# the analyzers package for the in-process measurement.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for bench.common

from bench.common import free_port, scratch_database, start_tracestore, stop  # noqa: E402
from tracestore.demo import generate  # noqa: E402

BATCH_NODES = 1000  # nodes per request body (the benchmark definition)
CONNECTIONS = 2


def encode_batches(traces: list[dict[str, Any]]) -> list[tuple[bytes, int, str]]:
    """(body, node count, last trace id) per request of about BATCH_NODES nodes."""
    out: list[tuple[bytes, int, str]] = []
    cur: list[dict[str, Any]] = []
    n = 0
    for t in traces:
        cur.append(t)
        n += len(t["nodes"])
        if n >= BATCH_NODES:
            out.append((orjson.dumps(cur), n, t["trace_id"]))
            cur, n = [], 0
    if cur:
        out.append((orjson.dumps(cur), n, cur[-1]["trace_id"]))
    return out


def load(port: int, batches: list[tuple[bytes, int, str]]) -> tuple[float, int]:
    """Post every batch over CONNECTIONS keep-alive connections; seconds until all queryable."""
    base = f"http://127.0.0.1:{port}"
    shares = [batches[i::CONNECTIONS] for i in range(CONNECTIONS)]
    clients = [httpx.Client(base_url=base, timeout=120,
                            headers={"content-type": "application/json"})
               for _ in range(CONNECTIONS)]
    for c in clients:  # open the connections before the clock starts
        c.get("/healthz")
    errors: list[str] = []

    def worker(c: httpx.Client, share: list[tuple[bytes, int, str]]) -> None:
        for body, _, _ in share:
            r = c.post("/api/v1/traces", content=body)
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:300]}")
                return

    threads = [threading.Thread(target=worker, args=(c, s))
               for c, s in zip(clients, shares, strict=True)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # all nodes queryable: read back each last trace
    for c, share in zip(clients, shares, strict=True):
        if share:
            r = c.get(f"/api/v1/traces/{share[-1][2]}")
            assert r.status_code == 200, r.text
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"ingest failed: {errors[0]}")
    total = clients[0].get("/api/v1/traces", params={"limit": 1}).status_code
    assert total == 200
    for c in clients:
        c.close()
    return elapsed, sum(n for _, n, _ in batches)


def read_latency(port: int, trace_ids: list[str], n: int = 500) -> tuple[float, float]:
    rng = random.Random(0)
    lat: list[float] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        for _ in range(n):
            tid = rng.choice(trace_ids)
            t0 = time.perf_counter()
            r = c.get(f"/api/v1/traces/{tid}")
            lat.append(time.perf_counter() - t0)
            assert r.status_code == 200
    q = statistics.quantiles(lat, n=100)
    return q[49] * 1000, q[94] * 1000


def in_process(batches: list[tuple[bytes, int, str]]) -> None:
    """CPU per node of decode + validate + write in this process (``time.process_time``, so
    time spent waiting for a core on a busy machine is excluded): the one-core ceiling."""
    from tracestore.config import Settings
    from tracestore.ingest.pipeline import Writer, project_id_for
    from tracestore.store.engine import create_schema, make_engine

    tmp = Path(tempfile.mkdtemp(prefix="tracestore-bench-"))
    url = f"sqlite:///{tmp / 'inproc.db'}"
    engine = make_engine(url)
    create_schema(engine)
    writer = Writer(engine, Settings(database_url=url))
    pid = project_id_for(engine, "default")
    writer.ingest_native(pid, orjson.loads(batches[0][0]))  # warm caches (prices, statements)
    nodes = 0
    cpu0 = time.process_time()
    for body, n, _ in batches[1:]:
        writer.ingest_native(pid, orjson.loads(body))
        nodes += n
    cpu = time.process_time() - cpu0
    engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"in-process: {cpu / nodes * 1e6:.1f} µs CPU per node = one-core ceiling "
          f"{nodes / cpu:,.0f} nodes/s")


def versus_otlp(database_url: str | None, batches: list[tuple[bytes, int, str]],
                runs: int) -> None:
    """Alternating native / OTLP runs of the same item count, each into a fresh store."""
    import os

    from bench.ingest_otlp import _cpu_tree, build_requests, post_concurrently

    nodes = sum(n for _, n, _ in batches)
    otlp = [b for b, _ in build_requests(nodes, 500)]
    print(f"OTLP: {nodes} spans in {len(otlp)} bodies of ~500 spans "
          f"({sum(len(b) for b in otlp) / 1e6:.1f} MB)")
    native_rates: list[float] = []
    otlp_rates: list[float] = []
    for run in range(runs):
        for kind in ("native", "otlp"):
            with scratch_database(database_url) as (url, _):
                port = free_port()
                log = Path(tempfile.mkdtemp(prefix="tracestore-bench-")) / "server.log"
                proc = start_tracestore(url, port, log)
                try:
                    main0, sub0 = _cpu_tree(proc.pid)
                    if kind == "native":
                        elapsed, _ = load(port, batches)
                    else:
                        _, elapsed = post_concurrently(port, otlp, CONNECTIONS)
                    main1, sub1 = _cpu_tree(proc.pid)
                finally:
                    stop(proc)
            rate = nodes / elapsed
            workers = sum(v - sub0.get(p, 0.0) for p, v in sub1.items())
            (native_rates if kind == "native" else otlp_rates).append(rate)
            print(f"run {run + 1} {kind}: {nodes} in {elapsed:.2f}s = {rate:,.0f}/s; server CPU "
                  f"per item: main process {(main1 - main0) / nodes * 1e6:.0f} µs, ingest "
                  f"workers {workers / nodes * 1e6:.0f} µs (load {os.getloadavg()[0]:.1f})",
                  flush=True)
    n, o = statistics.median(native_rates), statistics.median(otlp_rates)
    print(f"median: native {n:,.0f} nodes/s, OTLP {o:,.0f} spans/s, native/OTLP {n / o:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default=None,
                    help="PostgreSQL base URL (a fresh schema per run); default: SQLite")
    ap.add_argument("--traces", type=int, default=10_000, help="demo traces per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--in-process", action="store_true",
                    help="also measure CPU per node of the write path in this process")
    ap.add_argument("--versus-otlp", action="store_true",
                    help="alternate native runs with OTLP runs of as many spans")
    args = ap.parse_args()
    data = generate(seed=11, n_traces=args.traces)
    batches = encode_batches(data.traces)
    ids = [t["trace_id"] for t in data.traces]
    print(f"{len(data.traces)} traces, {sum(n for _, n, _ in batches)} nodes in "
          f"{len(batches)} bodies of ~{BATCH_NODES} nodes "
          f"({sum(len(b) for b, _, _ in batches) / 1e6:.1f} MB)")
    if args.in_process:
        in_process(batches)
    if args.versus_otlp:
        versus_otlp(args.database_url, batches, args.runs)
        return
    rates: list[float] = []
    p50s: list[float] = []
    p95s: list[float] = []
    for run in range(args.runs):
        with scratch_database(args.database_url) as (url, _):
            port = free_port()
            log = Path(tempfile.mkdtemp(prefix="tracestore-bench-")) / "server.log"
            proc = start_tracestore(url, port, log)
            try:
                elapsed, nodes = load(port, batches)
                p50, p95 = read_latency(port, ids)
            finally:
                stop(proc)
        rates.append(nodes / elapsed)
        p50s.append(p50)
        p95s.append(p95)
        print(f"run {run + 1}: {nodes} nodes in {elapsed:.2f}s = {nodes / elapsed:,.0f} nodes/s; "
              f"GET trace p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(f"median: {statistics.median(rates):,.0f} nodes/s; GET /api/v1/traces/{{id}} "
          f"p50 {statistics.median(p50s):.1f} ms, p95 {statistics.median(p95s):.1f} ms")


if __name__ == "__main__":
    main()
