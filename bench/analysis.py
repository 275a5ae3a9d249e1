"""Analysis runtime throughput: traces/s *including* reading the store and building graphs,
on SQLite and PostgreSQL; and one 1,000-node trace from the store.

Run from the repo root: ``python -m bench.analysis [--traces N] [--append]``. PostgreSQL is
measured when ``TRACESTORE_TEST_POSTGRES_URL`` is set (a fresh schema, dropped afterwards).
Targets (issue 5 item 8): ≥ 2,000 traces/s per core for 20-node traces including graph
building from the store; a 1,000-node trace analysed in under a second.

What each line times (traces are ingested first, untimed):

Rates are given per CPU second of the benchmark process (``time.process_time``: the per-core
figure, robust to other load on the machine) and per wall second.

* ``load+graph`` — batched reads (4 queries per 500 traces) and graph building alone;
* ``whole pass`` — ``analyze_traces`` in one process: read, build graphs, run every analyzer,
  replace findings and stamp ``analyzed_at`` (with the commit), write the per-trace
  summaries (attribution, path signatures, task columns) — baselines precomputed, as in a
  run. It is split by stage (CPU µs per trace; :func:`stage_clock` wraps the steps
  ``analyze_traces`` calls, so the production code carries no timers): ``read`` (the
  driver's rows), ``graph`` (node rows to attribute dicts and the graph, one trace at a
  time), ``analyzers``, ``summaries`` (the row per trace and the batch's write), and
  ``findings`` (delete + insert + ``analyzed_at``, the commit and freeing the batch: the
  rest of the pass). Each of the 3 timed passes re-analyses the same traces from the store
  (a re-run replaces their findings and summaries); nothing is kept between passes. Each
  round also runs the pass once with the cyclic collector off (``gc.disable()`` in the
  bench process only): the on/off ratio is what the collector costs the pass;
* ``issue-5 scope`` — the same passes without their ``summaries`` stage (``read`` + ``graph``
  + ``analyzers`` + ``findings``): what the 2,000 traces/s per core target names
  (graph building from the store, the analyzers, their findings stored). The summaries are
  issue 6's per-trace attribution and path signatures, precomputed in the same pass; the
  whole-pass line above carries them;
* ``baselines`` — the once-per-run corpus pass (load, build, collect samples, numpy fold);
* ``run, 2 workers`` — ``tracestore analyze --workers 2`` end to end (process start-up,
  baselines, partitions), wall clock.

For PostgreSQL the CPU figures are the benchmark process's only (the server's work is not
in them); the wall figures include it.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

import tracestore.analysis.run as run_mod
from bench.common import scratch_database
from tracestore.analysis.parallel import run_parallel
from tracestore.analysis.run import analyze_traces, compute_corpus_baselines
from tracestore.analysis.suite import default_suite
from tracestore.config import Settings
from tracestore.ingest.pipeline import Writer, project_id_for
from tracestore.store.engine import create_schema, make_engine
from tracestore.store.load import Window, iter_trace_graphs, select_trace_ids

STAGES = ("read", "graph", "analyzers", "findings", "summaries")
T0 = 1794182400.0  # 2026-11-09T00:00:00Z, Monday of ISO week 2026-W46
TOOLS = ("lookup_order", "search_kb")


def agent_trace(i: int, turns: int) -> dict[str, Any]:
    """A support-agent trace of 2·turns + 4 nodes: a root, a 10-document retrieval, ``turns``
    LLM+tool pairs (turns 3–5 repeat one read, a tight loop), a final answer, an outcome."""
    t = T0 + (i % 20_000) * 60.0
    nodes: list[dict[str, Any]] = [
        {"node_id": "root", "kind": "agent", "name": "support_agent", "start": t, "end": t + 99},
        {"node_id": "ret", "parent_id": "root", "kind": "retrieval", "name": "kb_search",
         "start": t + 0.5, "end": t + 0.7,
         "documents": [{"id": f"d{k}", "tokens": 300} for k in range(10)]},
    ]
    for k in range(turns):
        s = t + 1 + 2 * k
        loop = k in (3, 4, 5)
        name = "read_file" if loop else TOOLS[k % 2]
        arg = "same" if loop else f"topic {i} {k}"
        nodes.append({"node_id": f"l{k}", "parent_id": "root", "kind": "llm",
                      "name": "chat gpt-4o-mini", "provider": "openai",
                      "model": "gpt-4o-mini", "input_tokens": 1500 + 40 * k,
                      "output_tokens": 60, "prompt": f"turn {k}: choose the next action",
                      "start": s, "end": s + 0.8})
        nodes.append({"node_id": f"k{k}", "parent_id": "root", "kind": "tool", "name": name,
                      "tool_name": name, "args": {"q": arg}, "result": f"result {arg}",
                      "start": s + 0.9, "end": s + 1.0})
    end = t + 2 + 2 * turns
    nodes.append({"node_id": "final", "parent_id": "root", "kind": "llm", "name": "final_answer",
                  "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 2500,
                  "output_tokens": 200, "uses": ["d1", "d2"], "start": end, "end": end + 1})
    nodes.append({"node_id": "out", "parent_id": "root", "kind": "outcome", "name": "outcome",
                  "outcome_status": "success", "start": end + 1.5})
    return {"trace_id": f"b{turns:04d}-{i:07d}", "workflow": "support_agent",
            "task_id": f"T-{i}", "nodes": nodes}


@contextmanager
def stage_clock(into: dict[str, float], suite: Any) -> Iterator[Any]:
    """Inside the block, ``analyze_traces`` adds the CPU seconds of its steps to ``into``:
    ``read`` (read_batch), ``graph`` (each graph build_batch yields), ``analyzers`` (the
    suite's analyze_trace, on the suite this yields) and ``summaries`` (summary_row per
    trace, write_summaries per batch); the caller counts the rest as ``findings``. The
    wrappers replace names in ``tracestore.analysis.run`` for the block only."""

    def add(stage: str, c0: float) -> None:
        into[stage] = into.get(stage, 0.0) + time.process_time() - c0

    def timed(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kw: Any) -> Any:
            c0 = time.process_time()
            out = fn(*args, **kw)
            add(stage, c0)
            return out
        return wrapper

    def timed_items(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kw: Any) -> Iterator[Any]:
            it = iter(fn(*args, **kw))
            while True:
                c0 = time.process_time()
                item = next(it, None)
                add(stage, c0)
                if item is None:
                    return
                yield item
        return wrapper

    names = {"read_batch": timed("read", run_mod.read_batch),
             "build_batch": timed_items("graph", run_mod.build_batch),
             "summary_row": timed("summaries", run_mod.summary_row),
             "write_summaries": timed("summaries", run_mod.write_summaries)}
    saved = {name: getattr(run_mod, name) for name in names}
    for name, fn in names.items():
        setattr(run_mod, name, fn)
    try:
        yield dataclasses.replace(suite, analyze_trace=timed("analyzers", suite.analyze_trace))
    finally:
        for name, fn in saved.items():
            setattr(run_mod, name, fn)


def bench_backend(backend: str, n: int) -> list[str]:
    out = []
    suite = default_suite()
    pg = os.environ["TRACESTORE_TEST_POSTGRES_URL"] if backend == "postgres" else None
    with scratch_database(pg) as (url, _):
        engine = make_engine(url)
        create_schema(engine)
        writer = Writer(engine, Settings(database_url=url))
        pid = project_id_for(engine, "default")
        traces = [agent_trace(i, 8) for i in range(n)]
        assert all(len(t["nodes"]) == 20 for t in traces)
        for i in range(0, n, 1000):
            writer.ingest_native(pid, traces[i : i + 1000]).raise_if_rejected()
        with Session(engine) as s:
            ids = select_trace_ids(s, project_id=pid, window=Window())

        def load_all() -> None:
            with Session(engine) as s:
                for _ in iter_trace_graphs(s, project_id=pid, trace_ids=ids):
                    pass

        load = _rate(load_all, n)
        t0, c0 = time.perf_counter(), time.process_time()
        baselines, suite = compute_corpus_baselines(engine, project_id=pid, window=Window(),
                                                    suite=suite)
        base_s, base_cpu = time.perf_counter() - t0, time.process_time() - c0
        rates, cpu_rates, gc_off, found = [], [], [], 0
        stages: list[dict[str, float]] = []
        for _ in range(3):
            timings: dict[str, float] = {}
            with stage_clock(timings, suite) as timed_suite:
                c0 = time.process_time()
                analyze_traces(engine, project_id=pid, trace_ids=ids, baselines=baselines,
                               suite=timed_suite, now=time.time())
                timings["findings"] = time.process_time() - c0 - sum(timings.values())
            t0, c0 = time.perf_counter(), time.process_time()
            counts = analyze_traces(engine, project_id=pid, trace_ids=ids, baselines=baselines,
                                    suite=suite, now=time.time())
            rates.append(n / (time.perf_counter() - t0))
            cpu_rates.append(n / (time.process_time() - c0))
            stages.append(timings)
            found = counts.findings
            # the same pass with the cyclic collector off (in this bench process only):
            # what the collector costs the pass, alternating with the runs above
            gc.collect()
            gc.disable()
            try:
                c0 = time.process_time()
                analyze_traces(engine, project_id=pid, trace_ids=ids, baselines=baselines,
                               suite=suite, now=time.time())
                gc_off.append(n / (time.process_time() - c0))
            finally:
                gc.enable()
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        par = run_parallel(url, project_id=pid, window=Window(), suite=suite, baseline_days=28,
                           now=time.time(), workers=2)
        par_s = time.perf_counter() - t0
        assert par.findings == found, (par.findings, found)
        big = agent_trace(0, 498)
        big["trace_id"] = "big"
        writer.ingest_native(pid, [big]).raise_if_rejected()
        times, cpu_times = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            bc = analyze_traces(engine, project_id=pid, trace_ids=["big"], baselines=baselines,
                                suite=suite, now=time.time())
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        engine.dispose()
    med = statistics.median
    split = ", ".join(f"{k} {med(st.get(k, 0.0) for st in stages) / n * 1e6:,.0f}"
                      for k in STAGES)
    total_us = sum(med(st.get(k, 0.0) for st in stages) for k in STAGES) / n * 1e6
    out.append(f"- {backend}, {n:,} stored 20-node traces, one process: **whole pass "
               f"{med(cpu_rates):,.0f} traces/s CPU** ({med(rates):,.0f} wall; read + graph + "
               f"analyzers + replace {found:,} findings + summaries); CPU µs per trace by "
               f"stage: {split} (sum {total_us:,.0f})")
    out.append(f"- {backend}, the same pass with the cyclic collector off (alternating): "
               f"{med(gc_off):,.0f} traces/s CPU; collector on / off CPU "
               f"{med(gc_off) / med(cpu_rates):.3f}")
    scope = ("read", "graph", "analyzers", "findings")
    scope_us = med(sum(st.get(k, 0.0) for k in scope) for st in stages) / n * 1e6
    out.append(f"- {backend}, issue-5 scope (the same passes without their summaries "
               f"stage): **{1e6 / scope_us:,.0f} traces/s CPU** "
               f"({scope_us:,.0f} µs a trace; target 2,000 = 500 µs)")
    out.append(f"- {backend}: load+graph alone {load[0]:,.0f} traces/s CPU ({load[1]:,.0f} "
               f"wall); baselines once per run {base_cpu:.2f} s CPU ({base_s:.2f} s wall); "
               f"`--workers 2` run {par_s:.2f} s wall (load average {load_before:.1f} "
               f"before it)")
    out.append(f"- {backend}, one 1,000-node trace from the store (load + graph + analyzers + "
               f"write): {med(cpu_times) * 1000:.0f} ms CPU ({med(times) * 1000:.0f} ms wall; "
               f"{bc.findings} findings)")
    return out


def _rate(fn: Any, n: int) -> tuple[float, float]:
    """Median (CPU, wall) rates of 3 runs after a warm-up. CPU time is this process's: on a
    shared machine it is the per-core figure; for PostgreSQL it leaves out the server."""
    fn()
    cpu, wall = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(n / (time.perf_counter() - t0))
        cpu.append(n / (time.process_time() - c0))
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=5000)
    ap.add_argument("--append", action="store_true", help="append to bench/RESULTS.md")
    args = ap.parse_args()
    backends = ["sqlite"] + (["postgres"] if os.environ.get("TRACESTORE_TEST_POSTGRES_URL")
                             else [])
    lines = [f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"]
    lines += [line for b in backends for line in bench_backend(b, args.traces)]
    lines.append(f"load average after: {os.getloadavg()[0]:.1f}")
    print("\n".join(lines))
    if args.append:
        with open("bench/RESULTS.md", "a") as fh:
            fh.write(f"\n## analysis runtime (`python -m bench.analysis`, {os.cpu_count()} "
                     "cores)\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
