"""Many server processes, one PostgreSQL: three ``tracestore serve`` processes ingest parts of
the same traces at the same time, one is SIGKILLed mid-load; every acknowledged node is stored
exactly once and every trace's roll-ups equal the sums over its stored nodes. ``serve
--workers 2`` on PostgreSQL; SQLite refuses a second server process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from tests.tracestore.scale_out import (
    BASE,
    pg_schema,
    start_servers,
    tracestore_process,
    wait_healthy,
)
from tests.tracestore.server_process import free_port, server_process
from tracestore.store.engine import make_engine

TRACES = [f"shared-{i:02d}" for i in range(24)]


def _part(cid: int, k: int, tid: str) -> dict[str, Any]:
    """Client ``cid``'s ``k``-th part of trace ``tid``: three model calls under the root."""
    return {"trace_id": tid, "workflow": "many", "nodes": [
        {"node_id": f"c{cid}-{k}-{j}", "parent_id": "root", "kind": "llm", "provider": "openai",
         "model": "gpt-4o-mini", "input_tokens": 100 + cid + j, "output_tokens": 7 + k,
         "start": BASE + k + j * 0.1 + cid * 0.01, "end": BASE + k + j * 0.1 + 0.05}
        for j in range(3)]}


def _check_store(url: str, acked: list[tuple[str, str]]) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = Counter((t, n) for t, n in conn.execute(text(
            "SELECT trace_id, node_id FROM nodes")))
        wrong = conn.execute(text(
            "SELECT t.trace_id FROM traces t JOIN (SELECT project_id, trace_id, count(*) AS n, "
            "sum(input_tokens) AS i, sum(output_tokens) AS o, min(start) AS s, "
            "max(coalesce(\"end\", start)) AS e, sum(coalesce(cost_usd, 0)) AS c "
            "FROM nodes GROUP BY project_id, trace_id) a "
            "ON a.project_id = t.project_id AND a.trace_id = t.trace_id "
            "WHERE t.node_count <> a.n OR t.input_tokens <> a.i OR t.output_tokens <> a.o "
            "OR t.started_at <> a.s OR t.ended_at <> a.e OR abs(t.cost_usd - a.c) > 1e-12"
        )).scalars().all()
        traces = conn.execute(text("SELECT count(*) FROM traces")).scalar()
    engine.dispose()
    missing = [a for a in acked if stored[a] != 1]
    assert not missing, f"{len(missing)} acknowledged nodes not stored once: {missing[:5]}"
    assert max(stored.values()) == 1
    assert wrong == [], f"roll-ups differ from the nodes for {wrong[:5]}"
    assert traces == len(TRACES)


def test_three_servers_one_postgres_sigkill_one(tmp_path: Path) -> None:
    with pg_schema() as url:
        servers = start_servers(url, tmp_path, 3)
        acked: list[tuple[str, str]] = []
        statuses: Counter[int] = Counter()
        lock = threading.Lock()
        stop = threading.Event()

        def client(cid: int) -> None:
            k, target = 0, cid % 3
            with httpx.Client(timeout=30) as http:
                while not stop.is_set():
                    # two traces a request, in opposite orders on odd and even clients
                    pair = [TRACES[(k + cid) % len(TRACES)], TRACES[(k * 7 + 3) % len(TRACES)]]
                    parts = [_part(cid, k, t) for t in (pair if cid % 2 else pair[::-1])]
                    if pair[0] == pair[1]:
                        parts = parts[:1]
                    try:
                        r = http.post(f"{servers[target].url}/api/v1/traces",
                                      content=orjson.dumps(parts),
                                      headers={"content-type": "application/json"})
                    except httpx.TransportError:  # the server died: the balancer moves on
                        target = (target + 1) % 3
                        continue
                    with lock:
                        statuses[r.status_code] += 1
                        if r.status_code == 200:
                            acked.extend((p["trace_id"], n["node_id"]) for p in parts
                                         for n in p["nodes"])
                    k += 1

        try:
            threads = [threading.Thread(target=client, args=(c,)) for c in range(6)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 120
            while len(acked) < 600 and time.monotonic() < deadline:
                time.sleep(0.01)
            servers[0].kill()  # mid-load: requests are in flight on it
            before = len(acked)
            while len(acked) < before + 600 and time.monotonic() < deadline:
                time.sleep(0.01)
            stop.set()
            for t in threads:
                t.join(60)
            # roots last, as OTLP exporters send them: roll-ups and workflow stay exact
            with httpx.Client(timeout=30) as http:
                r = http.post(f"{servers[1].url}/api/v1/traces", content=orjson.dumps([
                    {"trace_id": t, "nodes": [{"node_id": "root", "kind": "agent",
                                               "name": "agent", "start": BASE - 1}]}
                    for t in TRACES]), headers={"content-type": "application/json"})
                assert r.status_code == 200, r.text
                acked.extend((t, "root") for t in TRACES)
        finally:
            stop.set()
            for s in servers:
                s.stop()
        assert set(statuses) == {200}, statuses
        assert len(acked) >= 1200
        _check_store(url, acked)
        for s in servers[1:]:
            assert "deadlock" not in s.log().lower()


def test_serve_workers_on_postgres(tmp_path: Path) -> None:
    with pg_schema() as url:
        port = free_port()
        log = tmp_path / "serve.log"
        proc = tracestore_process(["serve", "--workers", "2", "--port", str(port),
                                   "--database-url", url], log, TRACESTORE_SETTLE_SECONDS="0")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, proc, log, timeout=180)
            acked: list[tuple[str, str]] = []

            def client(cid: int) -> None:
                with httpx.Client(timeout=30) as http:
                    for k in range(15):
                        parts = [_part(cid, k, TRACES[(k + cid) % len(TRACES)])]
                        r = http.post(f"{base}/api/v1/traces", content=orjson.dumps(parts),
                                      headers={"content-type": "application/json"})
                        assert r.status_code == 200, r.text
                        acked.extend((p["trace_id"], n["node_id"]) for p in parts
                                     for n in p["nodes"])

            threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert len(acked) == 4 * 15 * 3
            engine = make_engine(url)
            with engine.connect() as conn:
                n = conn.execute(text("SELECT count(*) FROM nodes")).scalar()
            engine.dispose()
            assert n == len(acked)
            assert log.read_text().count("Started server process") == 2
        finally:
            proc.terminate()
            proc.wait(30)


def test_sqlite_refuses_a_second_server_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    run = [sys.executable, "-c", "from tracestore.cli.main import main; main()", "serve",
           "--database-url", url, "--port", str(free_port())]
    many = subprocess.run([*run, "--workers", "2"], capture_output=True, text=True, timeout=60)
    assert many.returncode == 2 and "needs PostgreSQL" in many.stderr
    with server_process(url, tmp_path / "first.log"):
        second = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert "already serving the SQLite database" in second.stderr
