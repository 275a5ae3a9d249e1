"""Is pricing the ingest bottleneck? Write the same nodes through ``write_traces`` with a no-op
pricer and with the real one (bulk rates + calc_price fallback), on a fresh SQLite file each
run, alternating, and report the best of ``--repeat`` runs of each.

    python bench/pricing.py --nodes 100000 --repeat 3

Also times the pricer alone and, for scale, ``calc_price`` once per node (what pricing would
cost without derived rates).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, bench/ is sys.path[0] and bench/analyzers.py would shadow the analyzers
# package that tracestore imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from genai_prices import Usage, calc_price  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from tracestore.ingest.write import node_row, write_traces  # noqa: E402
from tracestore.pricing.pricer import GENAI_PRICES_SOURCE, Pricer, genai_provider  # noqa: E402
from tracestore.schemas import TraceIn  # noqa: E402
from tracestore.store.engine import create_schema, make_engine  # noqa: E402

# A realistic mix: mostly linear models, one tiered (gemini-2.5-pro), one unknown.
MODELS = [
    ("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-20250514"), ("anthropic", "claude-3-5-haiku-latest"),
    ("gcp.gemini", "gemini-2.5-flash"), ("gcp.gemini", "gemini-2.5-pro"),
    ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"), ("x_ai", "grok-3"),
    ("openai", "in-house-model"),
]
T0 = datetime(2026, 11, 16, tzinfo=UTC).timestamp()


class NoopPricer(Pricer):
    """Leaves every node unpriced: the write path minus pricing."""

    def price_rows(self, rows: list[dict[str, Any]], **_: Any) -> None:
        for row in rows:
            row["cost_mismatch"] = None


class TimedPricer(Pricer):
    """The real pricer, timing itself: the in-path cost of pricing, free of run-to-run noise."""

    spent = 0.0

    def price_rows(self, rows: list[dict[str, Any]], **kw: Any) -> None:
        t = time.perf_counter()
        super().price_rows(rows, **kw)
        self.spent += time.perf_counter() - t


def make_traces(n_nodes: int, per_trace: int = 100, seed: int = 7) -> list[TraceIn]:
    rng = random.Random(seed)
    traces = []
    for t in range(n_nodes // per_trace):
        nodes: list[dict[str, Any]] = []
        for k in range(per_trace):
            provider, model = rng.choice(MODELS)
            inp = rng.randint(200, 20_000)
            out = rng.randint(10, 2_000)
            nodes.append({
                "node_id": f"n{k}", "kind": "llm", "name": f"step{k % 7}",
                "provider": provider, "model": model, "input_tokens": inp,
                "output_tokens": out, "cache_read_tokens": rng.randint(0, inp // 2),
                "reasoning_tokens": rng.randint(0, out // 3),
                "start": T0 + t * 60 + k, "end": T0 + t * 60 + k + 0.5,
                "reported_cost_usd": round(rng.random() / 100, 6) if k % 5 == 0 else None,
            })
        traces.append(TraceIn.model_validate({"trace_id": f"t{t:06d}", "workflow": "bench",
                                              "nodes": nodes}))
    return traces


def timed_write(traces: list[TraceIn], pricer: Pricer, tmp: Path, tag: str) -> float:
    engine = make_engine(f"sqlite:///{tmp / f'{tag}.db'}")
    create_schema(engine)
    t = time.perf_counter()
    for i in range(0, len(traces), 10):  # 10 traces (1,000 nodes) per request, like ingest
        with Session(engine) as s, s.begin():
            write_traces(s, project_id=1, traces=traces[i : i + 10], pricer=pricer,
                         max_content_chars=16_384, now=T0)
    elapsed = time.perf_counter() - t
    engine.dispose()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    traces = make_traces(args.nodes)
    rows = [node_row(1, t.trace_id, n, 16_384) for t in traces for n in t.nodes]
    Pricer().price_rows(rows[:2000])  # warm genai-prices' snapshot and the rate cache
    times: dict[str, list[float]] = {"noop": [], "real": []}
    inside: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.repeat):
            order = ("noop", "real") if r % 2 == 0 else ("real", "noop")  # cancel drift
            for tag in order:
                pricer = NoopPricer() if tag == "noop" else TimedPricer()
                s = timed_write(traces, pricer, Path(d), f"{tag}{r}")
                times[tag].append(s)
                if isinstance(pricer, TimedPricer):
                    inside.append(pricer.spent)
                print(f"run {r} {tag}: {s:.2f} s")
    best = {k: min(v) for k, v in times.items()}
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    t = time.perf_counter()
    Pricer().price_rows(rows)
    alone = time.perf_counter() - t
    sample = rows[:5000]
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in sample:
            try:  # noqa: SIM105 - a timed loop: suppress() would add a context manager per call
                calc_price(Usage(input_tokens=row["input_tokens"],
                                 output_tokens=row["output_tokens"],
                                 cache_read_tokens=row["cache_read_tokens"] or None,
                                 output_reasoning_tokens=row["reasoning_tokens"] or None),
                           row["model"], provider_id=genai_provider(row["provider"]),
                           genai_request_timestamp=datetime.fromtimestamp(row["start"], UTC))
            except LookupError:
                pass
    per_call = (time.perf_counter() - t) / len(sample)
    n = len(rows)
    in_path = min(inside)
    print(f"\n{GENAI_PRICES_SOURCE}; {n} LLM nodes in {len(traces)} traces, "
          f"{len(MODELS)} models (1 tiered, 1 unknown), {args.repeat} runs each")
    print("| path | best s | median s | nodes/s (best) |\n|---|---|---|---|")
    for tag, label in (("noop", "no-op pricer"), ("real", "real pricer")):
        print(f"| write_traces, {label} | {best[tag]:.2f} | {median[tag]:.2f} | "
              f"{n / best[tag]:,.0f} |")
    print(f"| time inside price_rows during the real runs | {in_path:.2f} | "
          f"{sorted(inside)[len(inside) // 2]:.2f} | {n / in_path:,.0f} |")
    print(f"| pricer alone, warm caches | {alone:.2f} | | {n / alone:,.0f} |")
    print(f"| calc_price per node (extrapolated) | {per_call * n:.2f} | | {1 / per_call:,.0f} |")
    print(f"\nend to end, best vs best: {best['real'] / best['noop'] - 1:+.1%}; "
          f"median vs median: {median['real'] / median['noop'] - 1:+.1%}; "
          f"pricing's own time / no-op write time: {in_path / best['noop']:.1%}")


if __name__ == "__main__":
    main()
