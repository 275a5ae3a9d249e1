"""``tracestore demo``: generate the seeded demo traffic (:mod:`tracestore.demo`), ingest it
into the store through the ordinary write path and print a summary; or dump it to files
for ``tracestore ingest``.

Dump layout (``tracestore demo --dump DIR``):

* ``traces.jsonl.gz`` — one native trace per line (``POST /api/v1/traces`` shape);
* ``outcomes.jsonl`` — the late outcome records (``POST /api/v1/outcomes`` shape);
* ``labels.json`` — ground truth: injected patterns, hard negatives, the W47 change, rates.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import false, func, select

from tracestore.config import Settings
from tracestore.demo import DEMO_START, DemoData, generate
from tracestore.ingest.pipeline import Writer, project_id_for, validate_items
from tracestore.schemas import OutcomeIn
from tracestore.store.engine import create_schema, make_engine, session_scope
from tracestore.store.tables import NODE_T, OUTCOME_T, TRACE_T

__all__ = ["DEFAULT_TRACES", "demo_shift", "demo_summary", "dump_demo", "generate_demo_traces",
           "run_demo", "shift_demo"]

DEFAULT_TRACES = 2000
_BATCH = 250  # traces per write transaction, like a busy exporter's batches


def generate_demo_traces(seed: int = 7, n: int = DEFAULT_TRACES) -> DemoData:
    """The demo data set: traces, late outcomes and ground truth (:mod:`tracestore.demo`)."""
    return generate(seed=seed, n_traces=n)


def _dumps_line(item: Any) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS) + b"\n"


def dump_demo(out_dir: Path, *, seed: int = 7, n: int = DEFAULT_TRACES) -> list[Path]:
    """Write the dump files into ``out_dir``; the bytes depend only on ``seed`` and ``n``."""
    data = generate_demo_traces(seed, n)
    out_dir.mkdir(parents=True, exist_ok=True)
    traces = out_dir / "traces.jsonl.gz"
    # mtime=0 keeps the gzip header, and so the file, byte-identical across runs.
    with traces.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                  filename="") as gz:
        for t in data.traces:
            gz.write(_dumps_line(t))
    outcomes = out_dir / "outcomes.jsonl"
    outcomes.write_bytes(b"".join(_dumps_line(o) for o in data.outcomes))
    labels = out_dir / "labels.json"
    labels.write_bytes(orjson.dumps(data.ground_truth(),
                                    option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return [traces, outcomes, labels]


def demo_summary(session: Any, project_id: int) -> dict[str, Any]:
    """What the store holds for ``project_id``: totals and spend per workflow."""
    t = TRACE_T.c
    rows = session.execute(
        select(t.workflow, func.count(), func.sum(t.node_count), func.sum(t.cost_usd),
               func.sum(t.unpriced_count), func.sum(t.error_count))
        .where(t.project_id == project_id).group_by(t.workflow).order_by(t.workflow)
    ).all()
    outcomes = session.execute(
        select(func.count()).select_from(OUTCOME_T).where(OUTCOME_T.c.project_id == project_id)
    ).scalar_one()
    unpriced_steps = session.execute(
        select(func.count()).select_from(NODE_T)
        .where(NODE_T.c.project_id == project_id, NODE_T.c.priced == false())
    ).scalar_one()
    per = [{"workflow": r[0], "traces": int(r[1]), "nodes": int(r[2] or 0),
            "cost_usd": float(r[3] or 0.0), "unpriced_model_calls": int(r[4] or 0),
            "errors": int(r[5] or 0)} for r in rows]
    return {
        "traces": sum(p["traces"] for p in per),
        "nodes": sum(p["nodes"] for p in per),
        "cost_usd": sum(p["cost_usd"] for p in per),
        "unpriced_model_calls": sum(p["unpriced_model_calls"] for p in per),
        "unpriced_nodes": int(unpriced_steps),
        "outcomes": int(outcomes),
        "workflows": per,
    }


def format_summary(s: dict[str, Any]) -> list[str]:
    lines = [
        f"store holds {s['traces']} traces, {s['nodes']} nodes, {s['outcomes']} outcomes; "
        f"spend ${s['cost_usd']:.4f}",
        f"unpriced: {s['unpriced_model_calls']} model calls "
        f"({s['unpriced_nodes']} nodes without a price, incl. tools/retrieval)",
        f"{'workflow':<20} {'traces':>7} {'nodes':>7} {'errors':>7} {'spend_usd':>11}",
    ]
    for p in s["workflows"]:
        lines.append(f"{p['workflow'] or '-':<20} {p['traces']:>7} {p['nodes']:>7} "
                     f"{p['errors']:>7} {p['cost_usd']:>11.4f}")
    return lines


def demo_shift(now: float) -> float:
    """Seconds to add to the generated dates so that the demo's two weeks are the last two
    complete ISO weeks before ``now`` (a whole number of weeks: weekdays and hours keep their
    pattern).

    >>> demo_shift(DEMO_START + 14 * 86400 + 3600)  # Monday 2026-11-23 01:00 UTC
    0.0
    >>> demo_shift(DEMO_START + 30 * 86400) / 86400  # Thursday 2026-12-10
    14.0
    """
    monday = DEMO_START + 7 * 86400 * ((now - DEMO_START) // (7 * 86400))
    return float(monday - 14 * 86400 - DEMO_START)


def shift_demo(data: DemoData, seconds: float) -> DemoData:
    """The same data with every timestamp moved by ``seconds`` (nodes, outcomes)."""
    if not seconds:
        return data

    def moved(d: dict[str, Any], *keys: str) -> dict[str, Any]:
        return {**d, **{k: d[k] + seconds for k in keys if isinstance(d.get(k), int | float)}}

    traces = []
    for t in data.traces:
        t = {**t, "nodes": [moved(nd, "start", "end") for nd in t.get("nodes", ())]}
        if isinstance(t.get("outcome"), dict):
            t["outcome"] = moved(t["outcome"], "occurred_at")
        traces.append(t)
    return DemoData(traces=traces, outcomes=[moved(o, "occurred_at") for o in data.outcomes],
                    labels=data.labels)


def run_demo(settings: Settings, *, seed: int = 7, echo: Callable[[str], Any] = print,
             n: int = DEFAULT_TRACES, shift: float = 0.0) -> dict[str, Any]:
    """Generate, ingest (traces, then the late outcomes) and print a summary; returns it.
    ``shift`` moves every date (see :func:`demo_shift`)."""
    t0 = time.perf_counter()
    data = shift_demo(generate_demo_traces(seed, n), shift)
    gen_s = time.perf_counter() - t0
    engine = make_engine(settings.database_url)
    try:
        create_schema(engine)
        writer = Writer(engine, settings)
        pid = project_id_for(engine, settings.project)
        t1 = time.perf_counter()
        accepted = nodes = 0
        for i in range(0, len(data.traces), _BATCH):
            report = writer.ingest_native(pid, data.traces[i : i + _BATCH])
            report.raise_if_rejected()
            accepted += report.accepted_traces
            nodes += report.accepted_nodes
        outcomes, errors = validate_items(data.outcomes, OutcomeIn)
        assert not errors, errors  # generated data is valid by construction; tests check it
        writer.write_outcomes(pid, outcomes)
        load_s = time.perf_counter() - t1
        with session_scope(engine) as s:
            summary = demo_summary(s, pid)
    finally:
        engine.dispose()
    echo(f"generated {len(data.traces)} demo traces (seed {seed}) in {gen_s:.2f}s; loaded "
         f"{accepted} traces, {nodes} nodes and {len(outcomes)} late outcomes in {load_s:.2f}s "
         f"into {settings.database_url}")
    for line in format_summary(summary):
        echo(line)
    return summary
