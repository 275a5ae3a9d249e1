"""What the cyclic garbage collector costs the analysis pass: ``analyze_traces`` over the
same stored traces with the collector on and off (``gc.disable()`` around the pass, in this
bench process only), alternating, CPU time per trace; the collections each pass triggers are
counted and timed through ``gc.callbacks``.

    python -m bench.analysis_gc --traces 2000 --rounds 5 [--db FILE]

With ``--db`` an existing bench store (made by an earlier run with the same ``--traces``) is
reused, so two trees can be compared in alternating runs on the same rows (run each tree
with its own ``PYTHONPATH``). Without it a scratch SQLite file is made.

>>> s = GcStats(); s.on("start", {"generation": 2}); s.on("stop", {"generation": 2})
>>> s.count[2]
1
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from bench.analysis import agent_trace
from tracestore.analysis.run import analyze_traces, compute_corpus_baselines
from tracestore.analysis.suite import default_suite
from tracestore.config import Settings
from tracestore.ingest.pipeline import Writer, project_id_for
from tracestore.store.engine import create_schema, make_engine
from tracestore.store.load import Window, select_trace_ids


class GcStats:
    """Collections per generation and their CPU seconds, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.cpu = [0.0, 0.0, 0.0]
        self._t0 = 0.0

    def on(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.process_time()
        else:
            gen = info["generation"]
            self.count[gen] += 1
            self.cpu[gen] += time.process_time() - self._t0


def _store(path: Path, n: int) -> str:
    url = f"sqlite:///{path}"
    fresh = not path.exists()
    engine = make_engine(url)
    if fresh:
        create_schema(engine)
        writer = Writer(engine, Settings(database_url=url))
        pid = project_id_for(engine, "default")
        traces = [agent_trace(i, 8) for i in range(n)]
        for i in range(0, n, 1000):
            writer.ingest_native(pid, traces[i : i + 1000]).raise_if_rejected()
    engine.dispose()
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--db", type=Path, default=None)
    args = ap.parse_args()
    db = args.db or Path(tempfile.mkdtemp()) / "analysis_gc.db"
    engine = make_engine(_store(db, args.traces))
    pid = project_id_for(engine, "default")
    with Session(engine) as s:
        ids = select_trace_ids(s, project_id=pid, window=Window())
    baselines, suite = compute_corpus_baselines(engine, project_id=pid, window=Window(),
                                                suite=default_suite())
    n = len(ids)
    stats = GcStats()
    gc.callbacks.append(stats.on)
    us: dict[str, list[float]] = {"on": [], "off": []}
    colls: list[tuple[list[int], list[float]]] = []
    analyze_traces(engine, project_id=pid, trace_ids=ids, baselines=baselines, suite=suite,
                   now=time.time())  # warm-up
    for _ in range(args.rounds):
        for mode in ("on", "off"):
            gc.collect()
            stats.count, stats.cpu = [0, 0, 0], [0.0, 0.0, 0.0]
            if mode == "off":
                gc.disable()
            c0 = time.process_time()
            analyze_traces(engine, project_id=pid, trace_ids=ids, baselines=baselines,
                           suite=suite, now=time.time())
            us[mode].append((time.process_time() - c0) / n * 1e6)
            gc.enable()
            if mode == "on":
                colls.append((stats.count, stats.cpu))
    gc.callbacks.remove(stats.on)
    on, off = statistics.median(us["on"]), statistics.median(us["off"])
    print(f"load {os.getloadavg()[0]:.1f}; {n:,} traces, {args.rounds} rounds; CPU µs a trace:"
          f" collector on {on:,.0f} ({1e6 / on:,.0f} traces/s), off {off:,.0f} "
          f"({1e6 / off:,.0f} traces/s), on/off {on / off:.3f}")
    print("  on:  " + " ".join(f"{x:,.0f}" for x in us["on"]))
    print("  off: " + " ".join(f"{x:,.0f}" for x in us["off"]))
    cnt, cpu = colls[len(colls) // 2]
    print("  collections per pass (gen 0/1/2): " + "/".join(map(str, cnt))
          + "; their CPU ms: " + "/".join(f"{c * 1e3:.0f}" for c in cpu))


if __name__ == "__main__":
    main()
