"""Webhook delivery against a real HTTP server on loopback (retry with backoff, permanent
failures, delivery records), the schedule decision, and the lifespan scheduler end to end."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.tracestore.digest_fixture import BASE_URL, fixture_digest
from tracestore.api import create_app
from tracestore.cli.main import cli
from tracestore.config import Settings
from tracestore.digest.schedule import due_week, parse_schedule
from tracestore.digest.service import scheduled_tick
from tracestore.digest.webhook import post_with_retry, webhook_body
from tracestore.store.engine import create_schema

MON_0900_W48 = 1795424400.0  # Monday 2026-11-23 09:00 UTC


class Receiver:
    """A loopback HTTP server answering each POST with the next scripted status."""

    def __init__(self, statuses: list[int], delay: float = 0.0) -> None:
        self.statuses = statuses
        self.delay = delay  # seconds before each answer
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.bodies.append(orjson.loads(body))
                outer.times.append(time.monotonic())
                time.sleep(outer.delay)
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    r = Receiver(list(getattr(request, "param", [])))
    yield r
    r.close()


@pytest.mark.parametrize("receiver", [[503, 500, 200]], indirect=True)
def test_retries_with_backoff_until_the_receiver_recovers(receiver: Receiver) -> None:
    body = webhook_body(fixture_digest(), base_url=BASE_URL)
    result = post_with_retry(receiver.url, body, attempts=5, base_delay=0.05)
    assert (result.ok, result.attempts, result.http_status) == (True, 3, 200)
    assert len(receiver.bodies) == 3
    gaps = [b - a for a, b in itertools.pairwise(receiver.times)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # 0.05 s, then doubled
    sent = receiver.bodies[-1]
    assert sent["text"].startswith("*tracestore weekly digest — `acme`, 2026-W47")
    assert sent["digest"]["headline"]["spend_usd"] == 412.5


@pytest.mark.parametrize("receiver", [[400]], indirect=True)
def test_a_4xx_is_not_retried(receiver: Receiver) -> None:
    result = post_with_retry(receiver.url, b"{}", attempts=5, base_delay=0.01)
    assert (result.ok, result.attempts, result.http_status) == (False, 1, 400)


def test_unreachable_receiver_fails_after_all_attempts() -> None:
    waits: list[float] = []
    result = post_with_retry("http://127.0.0.1:9/hook", b"{}", attempts=4, base_delay=1.0,
                             timeout=2.0, sleep=waits.append)
    assert not result.ok and result.attempts == 4 and result.http_status is None
    assert waits == [1.0, 2.0, 4.0] and "ConnectError" in (result.error or "")


@pytest.mark.parametrize("schedule,now,sent,expected", [
    ("MON 09:00", MON_0900_W48, set(), "2026-W47"),
    ("MON 09:00", MON_0900_W48 - 60, set(), None),  # 08:59: not yet
    ("MON 09:00", MON_0900_W48 + 3 * 86400, set(), "2026-W47"),  # catch up on Thursday
    ("MON 09:00", MON_0900_W48 + 3600, {"2026-W47"}, None),  # already sent
    ("sun 23:30", MON_0900_W48 + 6 * 86400 + 14.5 * 3600, set(), "2026-W47"),
    ("", MON_0900_W48, set(), None),
])
def test_schedule_decision(schedule: str, now: float, sent: set[str],
                           expected: str | None) -> None:
    assert due_week(schedule, now=now, sent_weeks=sent) == expected


@pytest.mark.parametrize("bad", ["MON", "XYZ 09:00", "MON 24:00", "MON 9:60", "every monday"])
def test_bad_schedules_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="digest_schedule"):
        parse_schedule(bad)


@pytest.mark.parametrize("receiver", [[502, 200]], indirect=True)
def test_server_sends_on_schedule_and_records_it(db_url: str, receiver: Receiver) -> None:
    settings = Settings(database_url=db_url, settle_seconds=0, digest_schedule="MON 00:00",
                        digest_webhook_url=receiver.url)
    app = create_app(settings)
    with TestClient(app):
        deadline = time.monotonic() + 20  # first attempt, 1 s backoff, second attempt
        while len(receiver.bodies) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the row is written after the 200
    assert len(receiver.bodies) == 2
    week = receiver.bodies[-1]["digest"]["week"]
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT week, status, attempts, http_status, trigger "
                                 "FROM digest_deliveries")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(week, "ok", 2, 200, "schedule")]
    # A restart the same week finds the delivery and sends nothing more.
    with TestClient(create_app(settings)):
        time.sleep(0.5)
    assert len(receiver.bodies) == 2


def test_a_malformed_schedule_stops_the_server(db_url: str) -> None:
    settings = Settings(database_url=db_url, settle_seconds=0, digest_schedule="MONDAY 9am",
                        digest_webhook_url="http://127.0.0.1:9/")
    with pytest.raises(ValueError, match="digest_schedule"), TestClient(create_app(settings)):
        pass


@pytest.mark.parametrize("receiver", [[200]], indirect=True)
def test_cli_webhook(db_url: str, receiver: Receiver) -> None:
    r = CliRunner().invoke(cli, ["digest", "--week", "2026-W47", "--webhook", receiver.url,
                                 "--database-url", db_url])
    assert r.exit_code == 0, r.output
    assert receiver.bodies[0]["digest"]["week"] == "2026-W47"
    assert "No traces were recorded in 2026-W47." in receiver.bodies[0]["text"]


@pytest.mark.parametrize("receiver", [[500] * 4 + [200]], indirect=True)
def test_a_failed_week_is_retried_an_hour_later(db_url: str, receiver: Receiver) -> None:
    settings = Settings(database_url=db_url, settle_seconds=0, digest_schedule="MON 09:00",
                        digest_webhook_url=receiver.url)
    engine = create_engine(db_url)
    create_schema(engine)
    retry = {"attempts": 2, "base_delay": 0.01}
    first = scheduled_tick(engine, settings, now=MON_0900_W48, **retry)
    assert first is not None and not first.ok and len(receiver.bodies) == 2
    now = MON_0900_W48
    assert scheduled_tick(engine, settings, now=now + 60, **retry) is None  # within the hour
    again = scheduled_tick(engine, settings, now=now + 3601, **retry)
    assert again is not None and not again.ok and len(receiver.bodies) == 4
    done = scheduled_tick(engine, settings, now=now + 7300, **retry)
    assert done is not None and done.ok and receiver.bodies[-1]["digest"]["week"] == "2026-W47"
    assert scheduled_tick(engine, settings, now=now + 20000, **retry) is None  # sent
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, attempts FROM digest_deliveries "
                                 "ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("failed", 2), ("failed", 2), ("ok", 1)]


def test_several_servers_send_a_due_digest_once(db_url: str, receiver: Receiver) -> None:
    """Every server process runs the schedule; three ticks at the same moment on three engines
    of one store (as three servers) post the due week once and record one delivery. The
    receiver answers after 0.5 s, so without the store-wide lock all three would have read
    "not sent" before the first delivery was recorded."""
    receiver.delay = 0.5
    settings = Settings(database_url=db_url, settle_seconds=0, digest_schedule="MON 09:00",
                        digest_webhook_url=receiver.url)
    engines = [create_engine(db_url) for _ in range(3)]
    create_schema(engines[0])
    start = threading.Barrier(len(engines))
    results: list[Any] = []

    def tick(engine: Any) -> None:
        start.wait()
        results.append(scheduled_tick(engine, settings, now=MON_0900_W48, attempts=1))

    threads = [threading.Thread(target=tick, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    with engines[0].connect() as conn:
        rows = conn.execute(text("SELECT week, status FROM digest_deliveries")).all()
    for e in engines:
        e.dispose()
    assert len(results) == 3 and sum(r is not None and r.ok for r in results) == 1
    assert [b["digest"]["week"] for b in receiver.bodies] == ["2026-W47"]
    assert [tuple(r) for r in rows] == [("2026-W47", "ok")]
