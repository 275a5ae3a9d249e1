"""Open mode (no keys, no auth) only on a loopback socket, decided from the address actually
bound, however the app is started: here ``uvicorn --factory tracestore.api:create_app`` in a
real subprocess, which never reads the ``host`` setting (docs/api.md, "Auth")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.tracestore.server_process import free_port


@contextmanager
def uvicorn_factory(host: str, db: Path, log: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "TRACESTORE_DATABASE_URL": f"sqlite:///{db}",
           "TRACESTORE_SETTLE_SECONDS": "0", "TRACESTORE_INGEST_WORKERS": "0"}
    env.pop("TRACESTORE_HOST", None)  # the setting keeps its loopback default
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "tracestore.api:create_app",
           "--host", host, "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    loop = "[::1]" if ":" in host else "127.0.0.1"
    url = f"http://{loop}:{port}"  # tests only ever connect over loopback
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_public_bind_without_keys_refuses_every_keyed_request(tmp_path: Path,
                                                                host: str) -> None:
    if host == "::" and not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("this machine has no IPv6 stack, so it cannot bind ::")
    with uvicorn_factory(host, tmp_path / "open.db", tmp_path / "log") as url:
        for method, path in [("GET", "/api/v1/traces"), ("GET", "/api/v1/keys"),
                             ("POST", "/api/v1/traces"), ("POST", "/v1/traces")]:
            r = httpx.request(method, url + path, json={"trace_id": "t"}, timeout=10)
            assert r.status_code == 401, (path, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            detail = r.json()["detail"]
            assert "not a loopback address" in detail and host in detail, detail
        # nothing was stored: the ingest was refused before it ran
        r = httpx.post(url + "/api/v1/traces", timeout=10, json={
            "trace_id": "t", "nodes": [{"node_id": "n", "kind": "tool"}]})
        assert r.status_code == 401


def test_a_loopback_bind_without_keys_runs_open(tmp_path: Path) -> None:
    with uvicorn_factory("127.0.0.1", tmp_path / "open.db", tmp_path / "log") as url:
        r = httpx.post(url + "/api/v1/traces", timeout=10, json={
            "trace_id": "t", "nodes": [{"node_id": "n", "kind": "tool"}]})
        assert r.status_code == 200, r.text
        assert httpx.get(url + "/api/v1/traces/t", timeout=10).status_code == 200
