"""Issue 8's concurrency run: 8 writers and 4 readers for 30 s against `tracestore serve` on
SQLite, then the checks — no "database is locked", no 5xx, roll-ups exact.

The test suite runs the same workload (``tests/tracestore/test_durability.py``) for a few
seconds; this script is the full-length run. Usage::

    .venv/bin/python bench/concurrency.py [--seconds 30] [--database-url sqlite:///x.db]

Prints one Markdown table row for ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.tracestore.server_process import server_process
from tests.tracestore.test_durability import check_rollups_exact, run_mixed_load


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tracestore-concurrency-"))
    db_url = args.database_url or f"sqlite:///{tmp / 'concurrency.db'}"
    t0 = time.monotonic()
    with server_process(db_url, tmp / "server.log") as server:
        result = run_mixed_load(server.url, args.seconds, args.writers, args.readers)
        log = server.log()
    elapsed = time.monotonic() - t0
    locked = log.count("database is locked")
    five_xx = sum(1 for p in result["problems"] if p.split()[1].startswith("5"))
    traces = check_rollups_exact(db_url)  # raises when a roll-up is off
    ok = not result["problems"] and not locked and "Traceback" not in log
    print("| date | seconds | writers/readers | writes | reads | 5xx | other non-2xx "
          "| 'database is locked' | traces, roll-ups exact | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {time.strftime('%Y-%m-%d')} | {args.seconds:.0f} (wall {elapsed:.0f}) "
          f"| {args.writers}/{args.readers} | {result['writes']} "
          f"({result['writes'] / args.seconds:.1f}/s) | {result['reads']} "
          f"({result['reads'] / args.seconds:.1f}/s) | {five_xx} "
          f"| {len(result['problems']) - five_xx} | {locked} | {traces}, yes "
          f"| {'pass' if ok else 'FAIL'} |")
    for p in result["problems"][:10]:
        print("  ", p, file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
