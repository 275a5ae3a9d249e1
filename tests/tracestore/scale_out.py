"""Helpers for the many-process tests (tests/tracestore/test_scale_out.py): a fresh PostgreSQL
schema, a store filled through the ordinary write path, and ``tracestore`` processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.tracestore.server_process import free_port
from tracestore.config import Settings
from tracestore.ingest.pipeline import Writer, project_id_for
from tracestore.schemas import TraceIn
from tracestore.store.engine import create_schema, make_engine

PG_URL = os.environ.get("TRACESTORE_TEST_POSTGRES_URL")
BASE = 1_796_000_000.0


def _base_url() -> str:
    assert PG_URL
    url = PG_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@contextmanager
def pg_schema() -> Iterator[str]:
    """A URL of a fresh PostgreSQL schema, dropped afterwards; skips (with the reason printed)
    when no PostgreSQL is configured."""
    if not PG_URL:
        pytest.skip("TRACESTORE_TEST_POSTGRES_URL is not set: the many-process tests need "
                    "PostgreSQL (SQLite is single-process)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    base = _base_url()
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def trace(trace_id: str, nodes: int = 5, start: float = BASE) -> dict[str, Any]:
    """A small agent trace: a root and ``nodes - 1`` model calls, two of them identical."""
    return {"trace_id": trace_id, "workflow": "scale", "nodes": [
        {"node_id": f"n{i}", "parent_id": "n0" if i else None, "kind": "llm" if i else "agent",
         "name": "agent" if not i else "call", "provider": "openai", "model": "gpt-4o-mini",
         "input_tokens": 100 + i, "output_tokens": 10,
         "prompt": "same question" if i in (1, 2) else f"question {i}",
         "start": start + i, "end": start + i + 0.5}
        for i in range(nodes)]}


def fill(url: str, n: int, *, prefix: str = "t", start: float = BASE) -> list[str]:
    """Store ``n`` traces through the ordinary write path. Returns their ids."""
    engine = make_engine(url)
    create_schema(engine)
    writer = Writer(engine, Settings(database_url=url, settle_seconds=0))
    pid = project_id_for(engine, "default")
    ids = [f"{prefix}{i:05d}" for i in range(n)]
    for i in range(0, n, 200):
        writer.write(pid, [TraceIn.model_validate(trace(t, start=start + j * 60))
                           for j, t in enumerate(ids[i : i + 200], start=i)])
    writer.close()
    engine.dispose()
    return ids


def tracestore_process(args: list[str], log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """``tracestore ARGS`` in a new process, output to ``log_path``."""
    cmd = [sys.executable, "-c", "from tracestore.cli.main import main; main()", *args]
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log,
                                stderr=subprocess.STDOUT)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path,
                 timeout: float = 60) -> None:
    """Wait until ``url``/healthz answers 200 (fail with the log if the process exits)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"did not start:\n{log_path.read_text()}")
        time.sleep(0.1)


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill does."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_servers(url: str, tmp: Path, n: int, *extra: str) -> list[Server]:
    """``n`` ``tracestore serve`` processes on ``url``, started at the same time (so they
    create the schema together), each on a free loopback port; waits until all answer."""
    servers = []
    for i in range(n):
        port = free_port()
        log = tmp / f"server{i}.log"
        proc = tracestore_process(["serve", "--port", str(port), "--database-url", url,
                                   *extra], log, TRACESTORE_SETTLE_SECONDS="0")
        servers.append(Server(f"http://127.0.0.1:{port}", proc, log))
    try:
        for s in servers:
            wait_healthy(s.url, s.proc, s.log_path, timeout=180)
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return servers
