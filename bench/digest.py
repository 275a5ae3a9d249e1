"""What the weekly digest costs to build and to serve once stored, part by part.

    python -m bench.digest --db FILE [--week 2026-W47] [--repeat 5]

On a store built by :mod:`bench.pages` (same SQLite file), times in-process, CPU and wall:
the stored digest's fingerprint, each part of a cold build (the week's finding groups, its
aggregates, the savings simulation), the whole cold build, and the stored path the digest page
takes (:func:`tracestore.digest.cache.cached_digest` with nothing changed). Prints the figures;
``bench.pages`` measures the page itself.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from analyzers.digest import top_fix_codes, week_bounds
from tracestore.digest import cache, gather
from tracestore.store.engine import create_schema, make_engine


def _time(label: str, f: Callable[[], Any], repeat: int = 1) -> Any:
    cpu, wall, out = [], [], None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        out = f()
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    print(f"{label}: p50 {statistics.median(cpu):.1f} ms CPU, "
          f"{statistics.median(wall):.1f} ms wall (n={repeat})", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", type=Path, required=True, help="SQLite file built by bench.pages")
    ap.add_argument("--week", default="2026-W47")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--project-id", type=int, default=1)
    args = ap.parse_args()
    engine = make_engine(f"sqlite:///{args.db}")
    create_schema(engine)
    pid, week, n = args.project_id, args.week, args.repeat
    start = week_bounds(week)[2]
    with Session(engine) as s:
        _time("fingerprint", lambda: cache.fingerprint(s, project_id=pid, week=week), n)
        _time("finding groups", lambda: gather.week_finding_groups(s, project_id=pid,
                                                                    start=start))
        cur = _time("week aggregates", lambda: gather.week_aggregates(s, project_id=pid,
                                                                       start=start))
        _time("savings simulation", lambda: gather.week_simulation(
            s, project_id=pid, start=start, codes=top_fix_codes(cur.waste_by_code)))
        _time("cold build (load_digest)", lambda: gather.load_digest(
            s, project_id=pid, project="default", week=week))
    now = time.time()
    _time("cached_digest, first call", lambda: cache.cached_digest(
        engine, project_id=pid, project="default", week=week, now=now))
    _time("cached_digest, stored", lambda: cache.cached_digest(
        engine, project_id=pid, project="default", week=week, now=now), n)
    engine.dispose()


if __name__ == "__main__":
    main()
