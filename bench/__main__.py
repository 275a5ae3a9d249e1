"""One entry point for every benchmark: ``python -m bench all`` from the repo root.

Each bench script runs as its own subprocess with its default sizes (so one script's imports,
caches and memory never colour another's numbers); its output goes to
``bench/out/<stamp>/<name>.log`` and its headline figures, picked from that output, into
``bench/out/<stamp>/results.json`` (also copied to ``bench/out/latest.json``), with the date,
commit, command line and the machine's core count and load average before and after each step.

    python -m bench all                        # every bench on SQLite; growth at 10k/100k nodes
    python -m bench all --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
    python -m bench all --sizes 10000,100000,1000000 --phoenix-runs 5
    python -m bench growth phoenix             # only these steps
    python -m bench list                       # the steps and what each runs

PostgreSQL is measured too when ``--postgres`` or ``TRACESTORE_BENCH_POSTGRES_URL`` is given.
``bench/out/`` is gitignored; ``bench/RESULTS.md`` holds the numbers worth keeping.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import machine

OUT = Path(__file__).resolve().parent / "out"
NUM = r"([\d,]+(?:\.\d+)?)"


@dataclass
class Step:
    """One bench script: its module, arguments, and regexes naming the headline figures."""

    name: str
    args: list[str]
    picks: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    json_out: bool = False  # the script takes --json PATH and writes its own rows there


def steps(pg: str | None, sizes: str, phoenix_runs: int) -> list[Step]:
    """The plan: every bench at its default sizes; PostgreSQL variants when ``pg`` is set."""
    native = {"nodes_per_s_median": rf"median: {NUM} nodes/s",
              "get_trace_p50_ms": rf"p50 {NUM} ms, p95 [\d.]+ ms\s*$"}
    analysis = {"sqlite_analyse_traces_per_cpu_s": rf"sqlite,.*?analyse .*? {NUM} traces/s CPU",
                "postgres_analyse_traces_per_cpu_s":
                rf"postgres,.*?analyse .*? {NUM} traces/s CPU"}
    otlp = {"spans_per_s": rf"-> {NUM} spans/s", "ceiling_spans_per_s": rf"ceiling {NUM}"}
    growth = ["bench.growth", "--sizes", sizes]
    return [
        Step("ingest_native", ["bench.ingest_native"], native),
        *([Step("ingest_native_postgres", ["bench.ingest_native", "--database-url", pg], native)]
          if pg else []),
        Step("ingest_otlp", ["bench.ingest_otlp", "--stages"], otlp),
        *([Step("ingest_otlp_postgres", ["bench.ingest_otlp", "--database-url", pg], otlp)]
          if pg else []),
        Step("pricing", ["bench.pricing"], {"pricer_alone_nodes_per_s":
                                           rf"pricer alone, warm caches \|[^|]*\| \| {NUM}"}),
        Step("analyzers", ["bench.analyzers"],
             {"traces_per_s_best": rf"1 core: {NUM} traces/s best",
              "traces_per_s_median": rf"best, {NUM} median",
              "big_trace_ms_median": rf"best, {NUM} ms median"}),
        # bench/analysis.py measures PostgreSQL too when this variable holds a URL.
        Step("analysis", ["bench.analysis"], analysis,
             env={"TRACESTORE_TEST_POSTGRES_URL": pg or ""}),
        Step("growth_sqlite", growth, json_out=True),
        *([Step("growth_postgres", [*growth, "--database-url", pg], json_out=True)]
          if pg else []),
        Step("phoenix", ["bench.phoenix", "--runs", str(phoenix_runs)], json_out=True),
    ]


def pick(text: str, patterns: dict[str, str]) -> dict[str, float | None]:
    """The last match of each pattern in ``text`` as a number (None when absent).

    >>> pick("median: 12,345 nodes/s", {"rate": rf"median: {NUM} nodes/s", "x": "nope (1)"})
    {'rate': 12345.0, 'x': None}
    """
    found: dict[str, float | None] = {}
    for key, pattern in patterns.items():
        hits = re.findall(pattern, text, flags=re.MULTILINE)
        found[key] = float(hits[-1].replace(",", "")) if hits else None
    return found


def run_step(step: Step, folder: Path) -> dict[str, Any]:
    log = folder / f"{step.name}.log"
    cmd = [sys.executable, "-m", *step.args]
    if step.json_out:
        cmd += ["--json", str(folder / f"{step.name}.json")]
    print(f"== {step.name}: {' '.join(['python', '-m', *step.args])}", flush=True)
    before = machine()
    t0 = time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.run(cmd, check=False, stdout=fh, stderr=subprocess.STDOUT,
                            env={**os.environ, **step.env}).returncode
    text = log.read_text()
    row: dict[str, Any] = {"command": " ".join(["python", "-m", *step.args]),
                           "returncode": rc, "seconds": round(time.perf_counter() - t0, 1),
                           "machine_before": before, "machine_after": machine(),
                           "figures": pick(text, step.picks), "log": log.name,
                           "tail": text.splitlines()[-12:]}
    if step.json_out and (folder / f"{step.name}.json").exists():
        row["rows"] = json.loads((folder / f"{step.name}.json").read_text())
    print("   " + ("ok" if rc == 0 else f"FAILED rc={rc}") + f" in {row['seconds']} s; "
          + ", ".join(f"{k} {v:,.1f}" for k, v in row["figures"].items() if v is not None),
          flush=True)
    for line in row["tail"][-4:]:
        print("   | " + line, flush=True)
    return row


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False,
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="*", default=["all"], help="'all', 'list' or step names")
    ap.add_argument("--postgres", default=os.environ.get("TRACESTORE_BENCH_POSTGRES_URL"),
                    help="PostgreSQL base URL (default: $TRACESTORE_BENCH_POSTGRES_URL)")
    ap.add_argument("--sizes", default="10000,100000", help="growth-curve stored-node counts")
    ap.add_argument("--phoenix-runs", type=int, default=3)
    args = ap.parse_args(argv)
    plan = steps(args.postgres, args.sizes, args.phoenix_runs)
    if args.what == ["list"]:
        for s in plan:
            print(f"{s.name:24} python -m {' '.join(s.args)}")
        return 0
    if args.what != ["all"]:
        unknown = set(args.what) - {s.name for s in plan}
        if unknown:
            ap.error(f"unknown steps {sorted(unknown)}; see 'python -m bench list'")
        plan = [s for s in plan if s.name in args.what]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = OUT / stamp
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"date": stamp, "commit": commit(), "argv": sys.argv,
                               "machine": machine(), "steps": {}}
    for step in plan:
        results["steps"][step.name] = run_step(step, folder)
        (folder / "results.json").write_text(json.dumps(results, indent=1))
    shutil.copyfile(folder / "results.json", OUT / "latest.json")
    failed = [k for k, v in results["steps"].items() if v["returncode"] != 0]
    print(f"results: {folder / 'results.json'}" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
