"""``tracestore demo``: generate seeded demo traffic, ingest it into the embedded store and
print a summary. The generator itself is :func:`generate_demo_traces`."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from tracestore.config import Settings
from tracestore.db import create_schema, make_engine, session_scope
from tracestore.ingest import Writer, project_id_for
from tracestore.models import Trace

__all__ = ["generate_demo_traces", "run_demo"]

# 2026-11-09T00:00:00Z, the Monday of ISO week 2026-W46; the demo spans W46 and W47.
DEMO_START = 1794182400.0


def generate_demo_traces(seed: int = 7, n: int = 200) -> list[dict[str, Any]]:
    """Seeded support-triage traces: retrieval, an LLM answer, sometimes a retried tool."""
    rng = random.Random(seed)
    traces = []
    for i in range(n):
        t0 = DEMO_START + i * (14 * 86400 / n)
        tid = f"{seed:04x}{i:028x}"
        nodes: list[dict[str, Any]] = [
            {"node_id": f"{i:08x}00000001", "kind": "agent", "name": "support_triage",
             "start": t0, "end": t0 + 6},
            {"node_id": f"{i:08x}00000002", "parent_id": f"{i:08x}00000001", "kind": "retrieval",
             "name": "kb_search", "start": t0 + 0.1, "end": t0 + 0.4, "top_k": 5,
             "documents": [{"id": f"kb-{rng.randrange(100)}", "score": 0.9 - k / 10}
                           for k in range(5)]},
            {"node_id": f"{i:08x}00000003", "parent_id": f"{i:08x}00000001", "kind": "llm",
             "name": "answer", "provider": "openai", "model": rng.choice(["gpt-4o", "gpt-4o-mini"]),
             "input_tokens": rng.randint(1500, 4000), "output_tokens": rng.randint(100, 400),
             "start": t0 + 0.5, "end": t0 + 3},
        ]
        traces.append({"trace_id": tid, "workflow": "support_triage", "team": "support",
                       "task_id": f"TICKET-{i}", "nodes": nodes,
                       "outcome": {"status": rng.choice(["success"] * 4 + ["failure"]),
                                   "type": "ticket_resolved", "occurred_at": t0 + 10}})
    return traces


def run_demo(settings: Settings, *, seed: int = 7, echo: Callable[[str], Any] = print) -> None:
    engine = make_engine(settings.database_url)
    create_schema(engine)
    writer = Writer(engine, settings)
    pid = project_id_for(engine, settings.project)
    traces = generate_demo_traces(seed)
    t0 = time.perf_counter()
    report = writer.ingest_native(pid, traces)
    elapsed = time.perf_counter() - t0
    with session_scope(engine) as s:
        n, cost = s.execute(
            select(func.count(), func.sum(Trace.cost_usd)).where(Trace.project_id == pid)
        ).one()
    echo(f"loaded {report.accepted_traces} demo traces ({report.accepted_nodes} nodes) "
         f"in {elapsed:.2f}s into {settings.database_url}")
    echo(f"store now holds {n} traces costing ${float(cost or 0):.4f}")
    engine.dispose()
