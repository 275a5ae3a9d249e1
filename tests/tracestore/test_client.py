"""tracestore.client against the real server (uvicorn on loopback), and its retry rules
against a loopback server that answers 503/429 first."""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.tracestore.otlp_server import by_id, get_trace, serve
from tracestore.client import AsyncClient, Client, IngestError, TraceBuilder
from tracestore.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


def _example() -> str:
    m = re.search(r"<!-- client-example -->\n```python\n(.+?)\n```", DOC.read_text(), re.S)
    assert m, "docs/client.md lost its example block"
    return m.group(1)


def test_builder_nodes_edges_and_errors() -> None:
    ticks = iter(range(1000))
    tb = TraceBuilder("t1", workflow="w", clock=lambda: float(next(ticks)))
    with tb.node("agent", "root") as root:
        with tb.node("tool", "search", tool_name="search", args={"q": 1}) as first:
            pass
        with pytest.raises(ValueError), tb.node("tool", "search", retry_of=first):
            raise ValueError("boom")
        with tb.node("llm", "answer", uses=[first, "doc-9"], model="m") as llm:
            llm.set(output_tokens=5)
    tb.edge(llm, root, "link")
    tb.outcome("success", type="done", value_usd=None)
    d = tb.to_dict()
    nodes = {n["node_id"]: n for n in d["nodes"]}
    assert nodes["n1"]["start"] == 0.0 and nodes["n1"]["end"] == 7.0
    assert nodes["n2"]["parent_id"] == "n1" and nodes["n2"]["args"] == {"q": 1}
    assert nodes["n3"]["retry_of"] == "n2" and nodes["n3"]["status"] == "error"
    assert nodes["n3"]["error_type"] == "ValueError"
    assert nodes["n4"]["uses"] == ["n2", "doc-9"] and nodes["n4"]["output_tokens"] == 5
    assert d["edges"] == [{"src": "n4", "dst": "n1", "kind": "link"}]
    assert d["outcome"] == {"status": "success", "type": "done"}


def test_documented_example_runs_against_the_real_server(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}", settle_seconds=3600)
    with serve(settings) as url:
        script = tmp_path / "example.py"
        script.write_text(_example())
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             timeout=60, env={"TRACESTORE_URL": url, "PATH": "/usr/bin"},
                             cwd=Path(__file__).resolve().parents[2])
        assert out.returncode == 0, out.stderr
        first, second = out.stdout.splitlines()
        assert json.loads(first.replace("'", '"'))["accepted_nodes"] == 5
        assert json.loads(second.replace("'", '"')) == {"accepted": 1}
        listing = httpx.get(f"{url}/api/v1/traces", timeout=10).json()
        (tid,) = [t["trace_id"] for t in listing["items"]]
        trace = get_trace(url, tid)
        nodes = by_id(trace)
        assert {n["kind"] for n in nodes.values()} == {"agent", "retrieval", "llm", "human"}
        assert nodes["n4"]["retry_of"] == "n3" and nodes["n5"]["review_target"] == "n4"
        graph = httpx.get(f"{url}/api/v1/traces/{tid}/graph", timeout=10).json()
        derived = {(e["source"], e["target"], k) for e in graph["links"] for k in e["kinds"]}
        # the graph contract: original attempt → retry, reviewed node → human node
        assert {("n3", "n4", "retry_of"), ("n4", "n5", "reviews")} <= derived, derived
        assert nodes["n3"]["status"] == "error" and nodes["n4"]["output_tokens"] == 140
        assert trace["workflow"] == "support_triage" and trace["task_id"] == "TICKET-42"


def test_rejected_items_raise_with_the_problem(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}", settle_seconds=3600)
    with serve(settings) as url, Client(url) as client:
        bad = {"trace_id": "bad", "nodes": [{"node_id": "a", "kind": "nonsense"}]}
        good = TraceBuilder("good", workflow="w")
        with good.node("llm", "x", model="gpt-4o", provider="openai"):
            pass
        with pytest.raises(IngestError) as err:
            client.post_traces([good, bad])
        assert err.value.status == 422
        assert err.value.problem["errors"][0]["item"] == 1
        assert get_trace(url, "good")["nodes"][0]["model"] == "gpt-4o"


@contextmanager
def _flaky_server(answers: list[tuple[int, dict[str, str]]]) -> Iterator[tuple[str, list[float]]]:
    """A loopback HTTP server answering the given (status, headers) in turn, then 200."""
    seen: list[float] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            seen.append(time.monotonic())
            status, headers = answers.pop(0) if answers else (200, {})
            body = b'{"accepted_traces": 1, "accepted_nodes": 0}' if status == 200 else (
                b'{"title": "busy"}')
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


def test_retries_honour_retry_after() -> None:
    answers: list[tuple[int, dict[str, str]]] = [(503, {"retry-after": "0.3"}),
                                                 (429, {"retry-after": "0"})]
    with _flaky_server(answers) as (url, seen), Client(url, backoff=0.01) as client:
        assert client.post_traces({"trace_id": "x"})["accepted_traces"] == 1
    assert len(seen) == 3
    assert seen[1] - seen[0] >= 0.28  # waited the server's Retry-After


def test_retries_give_up_and_other_4xx_are_not_retried() -> None:
    with (_flaky_server([(503, {})] * 5) as (url, seen),
          Client(url, max_retries=2, backoff=0.01) as client, pytest.raises(IngestError) as e):
        client.post_traces({"trace_id": "x"})
    assert e.value.status == 503 and len(seen) == 3
    with (_flaky_server([(400, {})]) as (url, seen),
          Client(url, backoff=0.01) as client, pytest.raises(IngestError) as e):
        client.post_traces({"trace_id": "x"})
    assert e.value.status == 400 and len(seen) == 1


def test_async_client_retries_and_posts() -> None:
    async def go(url: str) -> dict[str, Any]:
        async with AsyncClient(url, backoff=0.01) as client:
            return await client.post_outcomes([{"task_id": "t", "status": "success"}])

    with _flaky_server([(503, {"retry-after": "0"})]) as (url, seen):
        assert asyncio.run(go(url))["accepted_traces"] == 1
    assert len(seen) == 2
