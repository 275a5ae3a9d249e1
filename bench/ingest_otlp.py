"""OTLP ingest throughput: pre-encoded protobuf requests → ``tracestore serve`` → SQLite.

The loader (this process) pre-encodes ``--spans`` spans of realistic agent traces (an
``invoke_agent`` root; retrieval with document content; chat calls with message content and
token usage incl. cache reads; tool calls with arguments and results) into
``ExportTraceServiceRequest`` bodies of ``--batch`` spans, starts the server as a separate
process on a loopback port, and posts the bodies over ``--connections`` keep-alive HTTP/1.1
connections. The clock runs from the first POST until every span is queryable (the nodes table
holds them all; a 2xx already means committed). Beside the wall clock it reports the CPU time
per span of the server process and of its ingest worker processes (``/proc``), which a busy
machine inflates much less than the wall clock. Usage::

    python -m bench.ingest_otlp                 # 100,000 spans, batches of 500, 2 connections
    python -m bench.ingest_otlp --stages        # also CPU per span of decode/map/rows/write
    python -m bench.ingest_otlp --database-url postgresql+psycopg://postgres@127.0.0.1/test

Target (issue 3): ≥ 20,000 spans/s into SQLite on the 2-core CI machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

# Run as a script, bench/ is sys.path[0], and sibling bench scripts (bench/analyzers.py) would
# shadow the packages of the same name; the installed packages must win.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for bench.common

import orjson  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bench.common import free_port, scratch_database, start_tracestore, stop  # noqa: E402

T0_NS = 1_794_819_600_000_000_000  # 2026-11-16T09:00:00Z
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"),
          ("anthropic", "claude-sonnet-4-20250514")]
WORDS = ["refund", "order", "customer", "policy", "shipping", "invoice", "account", "delivery",
         "warranty", "ticket", "escalate", "priority", "billing", "address", "product", "return",
         "damaged", "late", "tracking"]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _attr(span: Span, key: str, value: object) -> None:
    kv = span.attributes.add()
    kv.key = key
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = str(value)


def _trace_spans(rng: random.Random, n: int, seq: int) -> list[Span]:
    """One agent run of ``n`` spans with content, as OTel GenAI instrumentations emit it."""
    trace_id = rng.randbytes(16)
    t = T0_NS + seq * 10**9
    root = Span(trace_id=trace_id, span_id=rng.randbytes(8), name="invoke_agent support",
                kind=1, start_time_unix_nano=t, end_time_unix_nano=t + n * 10**8)
    for k, v in (("gen_ai.operation.name", "invoke_agent"), ("gen_ai.agent.name", "support"),
                 ("gen_ai.workflow.name", "support_triage"),
                 ("tracestore.task.id", f"TICKET-{seq}"), ("session.id", f"s-{seq % 97}")):
        _attr(root, k, v)
    spans = [root]
    call = 0
    while len(spans) < n:
        i = len(spans)
        s = Span(trace_id=trace_id, span_id=rng.randbytes(8), parent_span_id=root.span_id,
                 kind=1, start_time_unix_nano=t + i * 10**8,
                 end_time_unix_nano=t + i * 10**8 + 9 * 10**7)
        r = i % 4
        if r == 1:
            s.name = "retrieval kb"
            docs = [{"id": f"doc-{rng.randrange(5000)}", "score": round(rng.random(), 3),
                     "content": _text(rng, 60)} for _ in range(4)]
            _attr(s, "gen_ai.operation.name", "retrieval")
            _attr(s, "gen_ai.retrieval.query.text", _text(rng, 6))
            _attr(s, "gen_ai.retrieval.documents", orjson.dumps(docs).decode())
        elif r in (2, 0):
            provider, model = rng.choice(MODELS)
            s.name = f"chat {model}"
            call += 1
            msgs = [{"role": "system", "parts": [{"type": "text", "content": _text(rng, 40)}]},
                    {"role": "user", "parts": [{"type": "text", "content": _text(rng, 120)}]}]
            out = [{"role": "assistant", "finish_reason": "tool_call", "parts": [
                {"type": "text", "content": _text(rng, 40)},
                {"type": "tool_call", "id": f"call_{seq}_{call}", "name": "lookup",
                 "arguments": {"order": rng.randrange(10**6)}}]}]
            inp = rng.randrange(800, 6000)
            for k, v in (("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", provider),
                         ("gen_ai.request.model", model), ("gen_ai.usage.input_tokens", inp),
                         ("gen_ai.usage.output_tokens", rng.randrange(50, 600)),
                         ("gen_ai.usage.cache_read.input_tokens", inp // 3),
                         ("gen_ai.input.messages", orjson.dumps(msgs).decode()),
                         ("gen_ai.output.messages", orjson.dumps(out).decode()),
                         ("server.address", "api.example.com")):
                _attr(s, k, v)
        else:
            s.name = "execute_tool lookup"
            for k, v in (("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", "lookup"),
                         ("gen_ai.tool.call.id", f"call_{seq}_{call}"),
                         ("gen_ai.tool.call.arguments", orjson.dumps({"order": call}).decode()),
                         ("gen_ai.tool.call.result", _text(rng, 30))):
                _attr(s, k, v)
        spans.append(s)
    return spans


def build_requests(total: int, batch: int, seed: int = 7) -> list[tuple[bytes, int]]:
    """(body, span count) pairs: ``total`` spans in bodies of about ``batch`` spans; traces
    of 8–24 spans, never split across bodies."""
    rng = random.Random(seed)
    out: list[tuple[bytes, int]] = []
    spans: list[Span] = []
    seq = made = 0
    while made < total:
        n = min(rng.randrange(8, 25), total - made)
        spans.extend(_trace_spans(rng, n, seq))
        seq += 1
        made += n
        if len(spans) >= batch or made >= total:
            req = ExportTraceServiceRequest()
            rs = req.resource_spans.add()
            kv = rs.resource.attributes.add()
            kv.key, kv.value.string_value = "service.name", "support-bot"
            rs.scope_spans.add().spans.extend(spans)
            out.append((req.SerializeToString(), len(spans)))
            spans = []
    return out


def _post_all(port: int, bodies: list[bytes], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/x-protobuf"}
    for body in bodies:
        conn.request("POST", "/v1/traces", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200 or data:
            errors.append(f"{resp.status} {data[:200]!r}")
    conn.close()


def post_concurrently(port: int, bodies: list[bytes], connections: int) -> tuple[float, float]:
    """POST ``bodies`` to ``/v1/traces`` over ``connections`` keep-alive connections, each
    taking every n-th body; returns (perf_counter at the first POST, seconds until every
    POST was answered). Any non-200 or non-empty answer aborts the benchmark."""
    errors: list[str] = []
    shares = [bodies[i::connections] for i in range(connections)]
    threads = [threading.Thread(target=_post_all, args=(port, s, errors)) for s in shares]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, first: {errors[0]}")
    return start, time.perf_counter() - start


def stages(bodies: list[bytes], spans: int) -> None:
    """CPU time per span of each stage, in this process (SQLite): decode, map, rows
    (redaction, capping, hashing, pricing by library rates, encoding the node tuples) — what
    the worker processes do, timed under their garbage-collector settings — then, under the
    default ones as in the server process, the single writer's write (upserts, roll-ups,
    commit) and the WAL checkpoints its background thread runs meanwhile."""
    from tracestore.config import Settings
    from tracestore.ingest.otlp import decode_protobuf_request
    from tracestore.ingest.otlp.mapping import map_spans
    from tracestore.ingest.otlp.prepare import WORKER_GC_THRESHOLD
    from tracestore.ingest.pipeline import Writer, project_id_for
    from tracestore.store.engine import create_schema, make_engine

    settings = Settings(database_url=f"sqlite:///{tempfile.mkdtemp()}/stages.db")
    engine = make_engine(settings.database_url)
    create_schema(engine)
    writer, pid = Writer(engine, settings), project_id_for(engine, "default")
    cpu = {"decode": 0.0, "map": 0.0, "rows": 0.0, "write": 0.0}
    clock = time.thread_time  # this thread only: the WAL checkpoint thread is counted apart
    process0 = time.process_time()
    default_gc = gc.get_threshold()
    gc.freeze()
    for body in bodies:
        gc.set_threshold(*WORKER_GC_THRESHOLD)
        t0 = clock()
        decoded, _ = decode_protobuf_request(body)
        t1 = clock()
        traces = map_spans(decoded).traces
        t2 = clock()
        rows = writer.rows(pid, traces)
        rows.encode_nodes(writer.pricer)
        t3 = clock()
        gc.set_threshold(*default_gc)
        writer.write_rows(pid, rows)
        t4 = clock()
        cpu["decode"] += t1 - t0
        cpu["map"] += t2 - t1
        cpu["rows"] += t3 - t2
        cpu["write"] += t4 - t3
    writer.close()
    cpu["checkpoints"] = time.process_time() - process0 - sum(cpu.values())
    per = {k: v / spans * 1e6 for k, v in cpu.items()}
    total = sum(per.values())
    serial = per["write"] + per["checkpoints"]
    print("CPU per span: " + ", ".join(f"{k} {v:.0f} µs" for k, v in per.items())
          + f" -> one core {1e6 / total:,.0f} spans/s; two cores, writer serial: "
          f"{min(1e6 / serial, 2e6 / total):,.0f} spans/s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the server's forkserver and its ingest workers)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cpu_tree(pid: int) -> tuple[float, dict[int, float]]:
    """(CPU seconds of ``pid``, of each live descendant); processes gone meanwhile are 0."""
    sub = {}
    for c in _descendants(pid):
        with contextlib.suppress(OSError):
            sub[c] = _cpu_seconds(c)
    return _cpu_seconds(pid), sub


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--database-url", default=None,
                    help="PostgreSQL base URL (a fresh schema, dropped afterwards); default SQLite")
    ap.add_argument("--stages", action="store_true",
                    help="also time decode/map/write per span in-process")
    args = ap.parse_args()

    t = time.perf_counter()
    reqs = build_requests(args.spans, args.batch)
    bodies = [b for b, _ in reqs]
    spans = sum(n for _, n in reqs)
    mb = sum(len(b) for b in bodies) / 1e6
    print(f"encoded {spans} spans in {len(bodies)} requests ({mb:.1f} MB) in "
          f"{time.perf_counter() - t:.1f}s")

    with scratch_database(args.database_url) as (url, _):
        engine = create_engine(url)
        port = free_port()
        log = Path(tempfile.mkdtemp(prefix="bench-otlp-")) / "server.log"
        server = start_tracestore(url, port, log)  # background analysis off: ingest alone
        try:
            main0, sub0 = _cpu_tree(server.pid)
            start, posted = post_concurrently(port, bodies, args.connections)
            with engine.connect() as conn:
                while conn.execute(text("SELECT count(*) FROM nodes")).scalar_one() < spans:
                    time.sleep(0.01)
            elapsed = time.perf_counter() - start
            main1, sub1 = _cpu_tree(server.pid)
        finally:
            stop(server)
            engine.dispose()
    print(f"{spans} spans, {len(bodies)} requests of ~{args.batch}, {args.connections} "
          f"connections, {'PostgreSQL' if args.database_url else 'SQLite'}: "
          f"all POSTs answered in {posted:.2f}s, all spans queryable after "
          f"{elapsed:.2f}s -> {spans / elapsed:,.0f} spans/s "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    workers = sum(v - sub0.get(p, 0.0) for p, v in sub1.items())
    print(f"server CPU per span: main process {(main1 - main0) / spans * 1e6:.0f} µs, ingest "
          f"workers {workers / spans * 1e6:.0f} µs (together "
          f"{(main1 - main0 + workers) / spans * 1e6:.0f} µs)")
    if args.stages:
        stages(bodies, spans)


if __name__ == "__main__":
    main()
