"""Hostile requests against a real ``tracestore serve`` process (issue 20, items 1 and 2):
tiny bodies that decode into millions of values, a 300 MB chunked body, a declared 1e11-byte
body, and 40 clients sending 1 byte a second. Each is refused with a 4xx naming the limit,
the server's memory (with its ingest worker processes) grows by at most 200 MB, and
legitimate ingest carries on (docs/limits.md)."""

from __future__ import annotations

import gzip
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from tests.tracestore.server_process import ServerProcess, server_process

MB = 2**20
GROWTH_LIMIT = 200 * MB  # issue 20: RSS growth <= 200 MB for every attack


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (the forkserver and the ingest workers)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d.name))
    out, todo = [pid], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peaks(pids: list[int]) -> None:
    """Reset each process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    for pid in pids:
        with suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")


@dataclass
class Measured:
    status: int
    body: bytes
    seconds: float
    growth: int  # bytes: sum over the process tree of peak RSS minus RSS before


def _measure(server: ServerProcess, attack: Callable[[], tuple[int, bytes]]) -> Measured:
    pids = _tree(server.pid)
    _reset_peaks(pids)
    before = sum(_status(p, "VmRSS") for p in pids)
    t0 = time.monotonic()
    status, body = attack()
    seconds = time.monotonic() - t0
    time.sleep(0.2)  # let a worker that is still decoding show its peak
    peak = sum(_status(p, "VmHWM") for p in _tree(server.pid))
    return Measured(status, body, seconds, peak - before)


def _post(url: str, path: str, body: bytes, ctype: str = "application/json",
          gz: bool = True) -> Callable[[], tuple[int, bytes]]:
    headers = {"content-type": ctype}
    if gz:
        body = gzip.compress(body, 9)
        headers["content-encoding"] = "gzip"

    def attack() -> tuple[int, bytes]:
        r = httpx.post(url + path, content=body, headers=headers, timeout=120)
        return r.status_code, r.content

    return attack


def _pb_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    key, n, out = (number << 3) | 2, len(payload), bytearray()
    out.append(key)
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out) + payload


def _otlp(spans: bytes) -> bytes:
    """An ExportTraceServiceRequest of one ResourceSpans, one ScopeSpans and ``spans``."""
    return _pb_field(1, _pb_field(2, spans))


def _chunked_300mb(url: str, request: bytes = b"POST /api/v1/traces") -> tuple[int, bytes]:
    """A chunked JSON body of 300 MB, sent until the server answers or hangs up."""
    host, port = url.removeprefix("http://").split(":")
    chunk = b"100000\r\n" + b" " * MB + b"\r\n"
    sent = 0
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(request + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                  b"\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n")
        try:
            while sent < 300 * MB and not select.select([s], [], [], 0)[0]:
                s.sendall(chunk)
                sent += MB
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < 300 * MB, "the server read the whole 300 MB body"
        try:
            answer = s.recv(65536)
        except ConnectionResetError:
            answer = b""
    # The 413 may be lost to the connection reset; when it arrived, it is a 413.
    return (int(answer.split()[1]) if answer else 413), answer


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    with server_process(db_url, tmp_path / "server.log") as s:
        yield s


def test_tiny_hostile_bodies_are_refused_fast_with_bounded_memory(
    server: ServerProcess,
) -> None:
    url = server.url
    empties = b"[" + b",".join([b"{}"] * 1_000_000) + b"]"
    many = b"[" + b",".join([b"{}"] * 5_000_000) + b"]"
    nodes = b'{"trace_id": "t", "nodes": [' + b",".join([b"{}"] * 600_000) + b"]}"
    deep = orjson.dumps({"trace_id": "deep", "nodes": [{"node_id": "n", "kind": "tool"}]})
    deep = deep.replace(b'"tool"', b'"tool", "args": {"a": ' + b"[" * 600 + b"]" * 600 + b"}")
    attacks: dict[str, tuple[Callable[[], tuple[int, bytes]], int, str]] = {
        # name: (attack, expected status, text the answer must hold)
        "gzip of 1M {} items (2 KB)": (_post(url, "/api/v1/traces", empties), 413,
                                       "max_values_per_request"),
        "gzip of 5M {} items (15 KB)": (_post(url, "/api/v1/traces", many), 413,
                                        "max_values_per_request"),
        "NDJSON of 5M {} lines": (_post(url, "/api/v1/traces", many[1:-1].replace(b",", b"\n"),
                                        "application/x-ndjson"), 413, "max_values_per_request"),
        "1M outcomes": (_post(url, "/api/v1/outcomes", empties), 413, "max_values_per_request"),
        "600k nodes in one item": (_post(url, "/api/v1/traces", nodes), 413,
                                   "max_nodes_per_request"),
        "20k items": (_post(url, "/api/v1/traces", orjson.dumps([{"trace_id": "x"}] * 20_000)),
                      413, "max_items_per_request"),
        "OTLP protobuf, 8M empty spans (15 KB)": (
            _post(url, "/v1/traces", _otlp(b"\x12\x00" * 8_000_000), "application/x-protobuf"),
            413, "max_nodes_per_request"),
        "OTLP protobuf, a span of 8M empty attributes": (
            _post(url, "/v1/traces", _otlp(_pb_field(2, b"\x4a\x00" * 8_000_000)),
                  "application/x-protobuf"), 413, "max_values_per_request"),
        "OTLP/JSON, 5M empty spans": (
            _post(url, "/v1/traces", b'{"resourceSpans":[{"scopeSpans":[{"spans":'
                  + many + b"}]}]}"), 413, "max_values_per_request"),
        "OTLP/JSON, 600k empty spans": (
            _post(url, "/v1/traces", b'{"resourceSpans":[{"scopeSpans":[{"spans":'
                  + nodes[nodes.index(b"["):-1] + b"}]}]}"), 413, "max_nodes_per_request"),
        "JSON nested 600 deep in args": (_post(url, "/api/v1/traces", deep, gz=False), 422,
                                         "nested"),
        "chunked 300 MB body": (lambda: _chunked_300mb(url), 413, ""),
        "chunked 300 MB price book": (lambda: _chunked_300mb(url, b"PUT /api/v1/prices"), 413,
                                      ""),
    }
    results: dict[str, Measured] = {}
    start = sum(_status(p, "VmRSS") for p in _tree(server.pid))
    highest = start
    for name, (attack, status, text) in attacks.items():
        m = results[name] = _measure(server, attack)
        highest = max(highest, sum(_status(p, "VmHWM") for p in _tree(server.pid)))
        assert m.status == status, (name, m.status, m.body[:300])
        assert text.encode() in m.body, (name, m.body[:300])
        assert m.growth <= GROWTH_LIMIT, (name, m.growth / MB)
        assert len(m.body) < 64 * 1024, (name, len(m.body))  # bounded answers
    # And over the whole run: the highest the server (with its workers) ever stood.
    assert highest - start <= GROWTH_LIMIT, (start / MB, highest / MB)
    report = "; ".join(f"{k}: {v.status} in {v.seconds:.2f} s, +{v.growth / MB:.0f} MB"
                       for k, v in results.items())
    print(f"{report}; whole run {start / MB:.0f} -> {highest / MB:.0f} MB")  # pytest -s
    # Still serving, and the store holds none of it.
    ok = {"trace_id": "after", "nodes": [{"node_id": "n", "kind": "tool", "name": "t",
                                           "start": 1_763_283_600}]}
    assert httpx.post(url + "/api/v1/traces", json=ok, timeout=30).status_code == 200
    assert httpx.get(url + "/api/v1/traces/after", timeout=30).status_code == 200


def test_many_bad_items_get_a_bounded_422(server: ServerProcess) -> None:
    bad = orjson.dumps([{"trace_id": 7, "nodes": "x"}] * 9_000 + [
        {"trace_id": "good", "nodes": [{"node_id": "n", "kind": "tool"}]}])
    r = httpx.post(server.url + "/api/v1/traces", content=bad,
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 422, r.text[:300]
    body = r.json()
    assert body["rejected_traces"] == 9_000 and body["accepted_traces"] == 1
    assert len(body["errors"]) == 100 and body["errors_omitted"] == 18_000 - 100
    assert len(r.content) < 64 * 1024


def _read_all(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (its refusals close it)."""
    out = b""
    with suppress(OSError):
        while chunk := s.recv(65536):
            out += chunk
    return out


class _Slow:
    """``n`` connections that each declare a ``declared``-byte ingest body and then send one
    byte a second until the server answers."""

    def __init__(self, url: str, n: int, declared: int, first: bytes = b"[") -> None:
        host, port = url.removeprefix("http://").split(":")
        self.socks = [socket.create_connection((host, int(port)), timeout=30) for _ in range(n)]
        for s in self.socks:
            s.sendall(b"POST /api/v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: %d\r\n\r\n" % declared + first)
        self.answers: dict[int, bytes] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drip)
        self.thread.start()

    def _drip(self) -> None:
        while not self.stop.wait(1.0):
            for i, s in enumerate(self.socks):
                if i in self.answers:
                    continue
                if select.select([s], [], [], 0)[0]:
                    self.answers[i] = _read_all(s)
                    continue
                with suppress(OSError):
                    s.sendall(b" ")
            if len(self.answers) == len(self.socks):
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def test_slow_clients_do_not_starve_ingest(db_url: str, tmp_path: Path) -> None:
    timeout = 8.0
    with server_process(db_url, tmp_path / "server.log",
                        body_timeout_seconds=str(timeout)) as server:
        # A declared 1e11-byte body is refused before a byte of it is read.
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                      b"\r\nContent-Length: 100000000000\r\n\r\n{")
            answer = _read_all(s)
            assert answer.startswith(b"HTTP/1.1 413"), answer
            assert b"max_body_bytes" in answer and b"connection: close" in answer.lower()
        # A declared 60 MB body left open, one that sends 8 MB at once and then 1 byte a
        # second, and 40 clients at 1 byte a second, all at once.
        open_body = _Slow(server.url, 1, 60 * MB)
        stall = _Slow(server.url, 1, 60 * MB, b"[" + b" " * (8 * MB))
        slow = _Slow(server.url, 40, 1_000_000)
        started = time.monotonic()
        statuses: list[int] = []
        lock = threading.Lock()

        def ingest(cid: int) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                i = 0
                while time.monotonic() - started < timeout / 2:
                    t = {"trace_id": f"ok-{cid}-{i}", "nodes": [
                        {"node_id": "n", "kind": "tool", "name": "t", "start": 1_763_283_600}]}
                    code = http.post("/api/v1/traces", json=t).status_code
                    with lock:
                        statuses.append(code)
                    i += 1

        threads = [threading.Thread(target=ingest, args=(c,)) for c in range(4)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(statuses) >= 20 and set(statuses) == {200}, statuses
            # The slow bodies are cut off: 408 within the timeout (+ a second per 64 KiB).
            deadline = started + timeout + 10
            while time.monotonic() < deadline and not (
                    len(slow.answers) == 40 and open_body.answers and stall.answers):
                time.sleep(0.2)
        finally:
            for c in (slow, open_body, stall):
                c.close()
        assert len(slow.answers) == 40
        assert all(a.startswith(b"HTTP/1.1 408") for a in slow.answers.values()), slow.answers
        assert b"body_timeout_seconds" in slow.answers[0]
        assert open_body.answers[0].startswith(b"HTTP/1.1 408")
        assert stall.answers[0].startswith(b"HTTP/1.1 408")  # 8 MB sent fast buys one window
        elapsed = time.monotonic() - started
    print(f"{len(statuses)} ingests, all 200, beside 42 slow connections; 408s after "
          f"{elapsed:.1f} s")


def test_a_body_without_a_key_is_refused_before_it_is_read(db_url: str, tmp_path: Path) -> None:
    from sqlalchemy.orm import Session

    from tracestore.auth import create_key
    from tracestore.ingest.pipeline import project_id_for
    from tracestore.store.engine import create_schema, make_engine

    engine = make_engine(db_url)
    try:
        create_schema(engine)
        pid = project_id_for(engine, "p")
        with Session(engine) as session, session.begin():
            read_key, _ = create_key(session, project_id=pid, scopes=["read"], name=None,
                                     now=time.time())
    finally:
        engine.dispose()
    with server_process(db_url, tmp_path / "server.log") as server:
        host, port = server.url.removeprefix("http://").split(":")
        for auth, status in ((b"", b"401"), (b"Authorization: Bearer %s\r\n" % read_key.encode(),
                                              b"403")):
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(b"POST /api/v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          b"application/json\r\n%sContent-Length: 60000000\r\n\r\n[" % auth)
                answer = _read_all(s)  # no more of the body is sent: it is not waited for
            assert answer.startswith(b"HTTP/1.1 " + status), answer
            assert b"application/problem+json" in answer


def test_refusals_reach_protobuf_clients_as_a_status(db_url: str) -> None:
    from fastapi.testclient import TestClient
    from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

    from tracestore.api import create_app
    from tracestore.config import Settings

    s = Settings(database_url=db_url, settle_seconds=0, ingest_workers=0,
                 max_body_bytes=10_000, max_nodes_per_request=3)
    with TestClient(create_app(s)) as client:
        r = client.post("/v1/traces", content=b"\x0a" * 10_001,
                        headers={"content-type": "application/x-protobuf"})
        assert r.status_code == 413 and r.headers["content-type"] == "application/x-protobuf"
        assert r.headers["connection"] == "close"
        status = Status.FromString(r.content)
        assert status.code == 3 and "max_body_bytes" in status.message
        spans = b"".join(_pb_field(2, _pb_field(1, bytes(range(1, 17))) + _pb_field(
            2, bytes([1, 2, 3, 4, 5, 6, 7, i]))) for i in range(1, 5))
        r = client.post("/v1/traces", content=_otlp(spans),
                        headers={"content-type": "application/x-protobuf"})
        assert r.status_code == 413
        assert "max_nodes_per_request" in Status.FromString(r.content).message
        r = client.post("/v1/traces", content=_otlp(spans[:len(spans) // 4 * 3]),
                        headers={"content-type": "application/x-protobuf"})
        assert r.status_code == 200, r.content
