"""Helpers shared by the bench scripts: loopback ports, a ``tracestore serve`` subprocess,
process RSS, PostgreSQL scratch schemas, and median/min/max summaries.

Not part of the installed packages and not collected by pytest (``testpaths`` are tests/,
analyzers/ and tracestore/); run the scripts from the repo root.

>>> spread([3.0, 1.0, 2.0])
{'median': 2.0, 'min': 1.0, 'max': 3.0, 'runs': [3.0, 1.0, 2.0]}
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) in MB of process ``pid`` plus its children, from ``/proc`` (Linux):
    the sums of ``VmRSS`` and of ``VmHWM``."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            todo.extend(int(c) for c in task.read_text().split())
    rss = peak = 0.0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "VmRSS":
                rss += int(value.split()[0]) / 1024  # the kernel reports kB
            elif key == "VmHWM":
                peak += int(value.split()[0]) / 1024
    return rss, peak


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Poll ``url`` until it answers 200; fail with the server log if the process exits."""
    deadline = time.time() + timeout
    with httpx.Client(timeout=1) as client:  # one client: no TLS context built per poll
        while time.time() < deadline:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{url} did not answer 200 in {timeout:.0f} s")


def start_tracestore(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``tracestore serve`` on loopback over ``url``, background analysis and digest off so
    only the measured work runs; returns once ``/healthz`` answers."""
    exe = Path(sys.executable).with_name("tracestore")
    env = {**os.environ, "TRACESTORE_SETTLE_SECONDS": "0", "TRACESTORE_DIGEST_SCHEDULE": "",
           "TRACESTORE_DATABASE_URL": url}
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server we started and reap it."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def pg_schema(base: str) -> Iterator[str]:
    """A fresh PostgreSQL schema on ``base`` for one run, dropped afterwards; yields its URL."""
    from sqlalchemy import create_engine, text

    base = base.replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in base else "?"
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def scratch_database(pg_base: str | None, name: str = "bench.db"
                     ) -> Iterator[tuple[str, Path | None]]:
    """A fresh store for one run: a PostgreSQL schema on ``pg_base`` when given, else a SQLite
    file in a temp dir. Yields (URL, SQLite path or None); everything is removed afterwards."""
    if pg_base:
        with pg_schema(pg_base) as url:
            yield url, None
        return
    with tempfile.TemporaryDirectory(prefix="bench-") as d:
        yield f"sqlite:///{d}/{name}", Path(d) / name


def write_json(path: Path, data: object) -> None:
    """Write a results JSON, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def spread(values: list[float]) -> dict[str, object]:
    """Median, min, max and the raw runs, as every results JSON records them."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": list(values)}


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.95)
    4.0
    """
    return sorted_ms[min(len(sorted_ms) - 1, round(q * (len(sorted_ms) - 1)))]


def machine() -> dict[str, object]:
    """nproc and the 1/5/15-minute load average now (the machine is shared)."""
    return {"nproc": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0]}
