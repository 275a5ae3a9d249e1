"""Where the time goes: run a command under ``py-spy record`` (sampling, all subprocesses) and
print the functions with the most samples, inclusive and self, as a Markdown table.

Run from the repo root (py-spy comes with the optional ``bench`` extra; it needs ptrace, so
run as the owner of the processes)::

    python -m bench.profile -- .venv/bin/python -m bench.ingest_otlp --spans 20000
    python -m bench.profile --only tracestore -- .venv/bin/tracestore analyze --workers 1

The raw collapsed stacks are kept in ``bench/out/profile-<stamp>.txt`` for flame graphs.

>>> rows = summarize(["p;a (x.py:1);b (y.py:2) 3", "p;a (x.py:5) 1"], only="")
>>> rows[0]
('a (x.py)', 4, 1)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
LINE = re.compile(r":\d+\)$")
RATE = 50  # samples/s: enough for a top-20 over a run of ~30 s, light on a shared 2-core box


def summarize(lines: list[str], only: str) -> list[tuple[str, int, int]]:
    """(frame, inclusive samples, self samples), most inclusive first, over collapsed stacks
    ``frame;frame;… count``; frames whose text lacks ``only`` are left out of the ranking."""
    incl: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack:
            continue
        # The first frame names the process; line numbers are dropped so that a function's
        # samples add up over its lines.
        frames = [LINE.sub(")", f) for f in stack.split(";")[1:]]
        n = int(count)
        for f in set(frames):
            incl[f] += n
        if frames:
            own[frames[-1]] += n
    return [(f, n, own[f]) for f, n in incl.most_common() if only in f]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="rank only frames containing this text")
    ap.add_argument("--under", default="",
                    help="keep only stacks with a frame containing this text (e.g. a route)")
    ap.add_argument("--raw", type=Path, default=None, help="summarize an earlier raw file")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    raw = args.raw or OUT / f"profile-{time.strftime('%Y%m%dT%H%M%S')}.txt"
    if not args.raw:
        OUT.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).with_name("py-spy")
        cmd = [c for c in args.command if c != "--"]
        subprocess.run([str(spy), "record", "--subprocesses", "--rate", str(RATE), "--format",
                        "raw", "--output", str(raw), "--", *cmd], check=True)
    lines = [x for x in raw.read_text().splitlines() if x.strip() and args.under in x]
    total = sum(int(x.rpartition(" ")[2]) for x in lines)
    print(f"{total:,} samples at {RATE}/s" + (f" under `{args.under}`" if args.under else "")
          + f"; raw stacks: {raw.name}\n")
    print("| function (file:line) | inclusive | self |\n|---|---|---|")
    for frame, n, own in summarize(lines, args.only)[: args.top]:
        print(f"| `{frame}` | {n / total:.0%} | {own / total:.0%} |")


if __name__ == "__main__":
    main()
