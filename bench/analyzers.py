"""Analyzer throughput: traces/s for 20-node traces and the time of one 1,000-node trace
(analysis only: graphs are built before the clock starts; no database).

Run: ``python -m bench.analyzers`` from the repo root. Targets (issue 5 item 8): ≥ 2,000
traces/s per core for 20-node traces, a 1,000-node trace in under a second; the analyzers'
share of the whole pass is 200 µs CPU per 20-node trace (5,000 traces/s). The last line
splits a 20-node trace's CPU time by stage (best of 5 passes over 500 traces, each stage on
fresh views so that it pays for the lazy lookups it uses first).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import networkx as nx

from analyzers import bloat, churn, routing
from analyzers.common import book_once
from analyzers.findings import Finding
from analyzers.run import (
    AnalyzerConfig,
    WorkflowBaseline,
    analyze_trace,
    collect_samples,
    compute_baselines,
)
from analyzers.view import TraceView
from fixtures.labelled import _T, PRICES, TOPICS, generate


def agent_trace(i: int, turns: int, rng: random.Random) -> nx.DiGraph:
    """A support-agent trace: ``turns`` LLM+tool pairs with one injected tight loop, one
    retrieval of 10 documents and a final answer (2·turns + 4 nodes)."""
    t = _T(f"bench-{turns}-{i}", "support_agent", rng)
    t.add("retrieval", name="kb_search",
          documents=[{"id": f"d{k}", "tokens": 300} for k in range(10)])
    for k in range(turns):
        name = "read_file" if k in (3, 4, 5) else ("lookup_order", "search_kb")[k % 2]
        arg = "same" if name == "read_file" else f"{TOPICS[k % len(TOPICS)]} {i} {k}"
        t.tool_turn(name, {"q": arg}, f"result {arg}")
    t.llm(name="final_answer", prompt="answer", output="done", uses=["d1", "d2"])
    return t.done().graph


def stages(graphs: list[nx.DiGraph], baseline: WorkflowBaseline | None,
           cfg: AnalyzerConfig) -> list[str]:
    """CPU µs per trace of each stage of ``analyze_trace``, in the order it runs them."""
    found: list[list[Finding]] = []

    def view(G: nx.DiGraph) -> TraceView:
        v = TraceView(G)
        v.keys  # noqa: B018 - call identities, as churn computes them first
        return v

    def analyzers(v: TraceView) -> None:
        found.append([*churn.find(v, baseline=baseline, config=cfg),
                      *bloat.find(v, baseline=baseline, config=cfg),
                      *routing.find(v, baseline=baseline, config=cfg)])

    steps: list[tuple[str, Callable[[Any], Any], Callable[[nx.DiGraph], Any]]] = [
        ("view + call identities", view, lambda G: G),
        ("churn", lambda v: churn.find(v, baseline=baseline, config=cfg), view),
        ("bloat", lambda v: bloat.find(v, baseline=baseline, config=cfg), view),
        ("routing", lambda v: routing.find(v, baseline=baseline, config=cfg), view),
    ]
    out = []
    for name, fn, prep in steps:
        best = float("inf")
        for _ in range(5):
            xs = [prep(G) for G in graphs]
            t0 = time.process_time()
            for x in xs:
                fn(x)
            best = min(best, time.process_time() - t0)
        out.append(f"{name} {best / len(graphs) * 1e6:.0f}")
    views = [view(G) for G in graphs]
    for v in views:
        analyzers(v)
    best = float("inf")
    for _ in range(5):
        t0 = time.process_time()
        for v, f in zip(views, found, strict=True):
            book_once(v.G, f, attrs=v.A)
        best = min(best, time.process_time() - t0)
    out.append(f"booking {best / len(graphs) * 1e6:.0f}")
    return ["- 20-node agent trace by stage, CPU µs: " + ", ".join(out)]


def run() -> list[str]:
    rng = random.Random(11)
    cfg = AnalyzerConfig(price_table=PRICES)
    corpus = generate(seed=7, scale=0.3)
    base = compute_baselines(s for x in corpus for s in collect_samples(x.graph))
    small = [agent_trace(i, 8, rng) for i in range(2000)]
    assert all(G.number_of_nodes() == 20 for G in small)
    for G in small[:200]:  # warm-up
        analyze_trace(G, baseline=base.get("support_agent"), config=cfg)
    rates = []
    for _ in range(5):
        t0 = time.process_time()
        for G in small:
            analyze_trace(G, baseline=base.get("support_agent"), config=cfg)
        rates.append(len(small) / (time.process_time() - t0))
    big = agent_trace(0, 498, rng)
    assert big.number_of_nodes() == 1000
    times = []
    for _ in range(5):
        t0 = time.process_time()
        found = analyze_trace(big, baseline=base.get("support_agent"), config=cfg)
        times.append(time.process_time() - t0)
    t0 = time.process_time()
    mixed = [x.graph for x in corpus]
    for G in mixed:
        analyze_trace(G, baseline=base.get(G.graph["workflow"]), config=cfg)
    mixed_rate = len(mixed) / (time.process_time() - t0)
    return [
        *stages(small[:500], base.get("support_agent"), cfg),
        (f"- 20-node agent traces (one tight loop each), 1 core: {max(rates):,.0f} traces/s "
         f"best, {statistics.median(rates):,.0f} median of 5 runs of {len(small):,}"),
        (f"- 1,000-node agent trace: {min(times) * 1000:.0f} ms best, "
         f"{statistics.median(times) * 1000:.0f} ms median of 5 ({len(found)} findings)"),
        f"- labelled-set mix ({len(mixed)} traces, 3–30 nodes): {mixed_rate:,.0f} traces/s",
    ]

if __name__ == "__main__":
    lines = run()
    print("\n".join(lines))
    if "--append" in sys.argv:
        with open("bench/RESULTS.md", "a") as fh:
            fh.write("\n## analyzers (`python -m bench.analyzers`)\n\n" + "\n".join(lines) + "\n")
