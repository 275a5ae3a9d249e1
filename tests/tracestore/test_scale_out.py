"""Past one process, on PostgreSQL: analysis as a shared queue (``tracestore worker`` processes,
one killed with SIGKILL mid-batch) and the queue's semantics on both backends."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from tests.tracestore.scale_out import fill, pg_schema, trace, tracestore_process
from tracestore.config import Settings
from tracestore.ingest.pipeline import Writer, project_id_for
from tracestore.schemas import TraceIn
from tracestore.store.engine import create_schema, make_engine, session_scope
from tracestore.store.queue import claim, done, enqueue, pending
from tracestore.store.tables import CLAIM_T, SUMMARY_T, TRACE_T


def _ids(log: str, verb: str) -> dict[str, list[list[str]]]:
    """worker -> its batches of trace ids logged as ``claimed`` / ``analysed``."""
    out: dict[str, list[list[str]]] = {}
    for m in re.finditer(rf"(\S+:\d+:[0-9a-f]{{8}}) {verb} ([^\n]*)", log):
        out.setdefault(m.group(1), []).append(m.group(2).split())
    return out


def test_queue_once_per_change_and_lease_retake(db_url: str) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    with session_scope(engine) as s:
        enqueue(s, project_id=1, trace_ids=["a", "b"], updated_at=10.0)
    with session_scope(engine) as s:  # a leases both; b changes while a holds it
        got = claim(s, worker="a", now=100.0, settled_before=50.0, lease_seconds=30, limit=10)
    assert [(c.trace_id, c.updated_at) for c in got] == [("a", 10.0), ("b", 10.0)]
    with session_scope(engine) as s:
        enqueue(s, project_id=1, trace_ids=["b"], updated_at=20.0)
        assert claim(s, worker="b", now=110.0, settled_before=50.0, lease_seconds=30,
                     limit=10) == []  # leased
    with session_scope(engine) as s:
        done(s, project_id=1, analysed=[("a", 10.0), ("b", 10.0)])
    with session_scope(engine) as s:  # a is gone; b changed, so it is due again, lease free
        again = claim(s, worker="b", now=120.0, settled_before=50.0, lease_seconds=30, limit=9)
        assert [(c.trace_id, c.updated_at) for c in again] == [("b", 20.0)]
    with session_scope(engine) as s:  # worker b dies; its lease runs out at 150
        assert claim(s, worker="c", now=149.0, settled_before=50.0, lease_seconds=30,
                     limit=9) == []
        assert [c.trace_id for c in claim(s, worker="c", now=151.0, settled_before=50.0,
                                          lease_seconds=30, limit=9)] == ["b"]
        assert pending(s) == 1
    engine.dispose()


def test_ingest_queues_and_analysis_dequeues(db_url: str) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    writer = Writer(engine, Settings(database_url=db_url, settle_seconds=0))
    pid = project_id_for(engine, "default")
    writer.write(pid, [TraceIn.model_validate(trace(f"q{i}")) for i in range(3)])
    from tracestore.analysis.background import AnalysisWorker

    w = AnalysisWorker(engine, settle_seconds=0, baseline_days=28)
    with session_scope(engine) as s:
        assert pending(s) == 3
    assert w.run_once(time.time()).traces == 3
    assert w.run_once(time.time()).traces == 0  # each change analysed once
    writer.write(pid, [TraceIn.model_validate(trace("q1", nodes=6))])
    assert w.run_once(time.time()).traces == 1
    with session_scope(engine) as s:
        assert pending(s) == 0
    writer.close()
    engine.dispose()


def test_three_workers_share_the_queue_and_retake_a_killed_claim(tmp_path: Path) -> None:
    with pg_schema() as url:
        ids = fill(url, 900)
        env = {"TRACESTORE_ANALYSIS_LEASE_SECONDS": "3", "TRACESTORE_DATABASE_URL": url}
        args = ["worker", "--settle", "0", "--batch", "60", "--poll", "0.1", "--verbose"]
        logs = [tmp_path / f"w{i}.log" for i in range(4)]
        victim = tracestore_process(args, logs[0], **env)
        deadline = time.monotonic() + 60
        while "claimed" not in logs[0].read_text() and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(victim.pid, signal.SIGKILL)  # mid-batch: claimed, not yet stored
        victim.wait(10)
        workers = [tracestore_process(args, logs[i], **env) for i in (1, 2, 3)]
        engine = make_engine(url)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    left = conn.execute(select(func.count()).select_from(CLAIM_T)).scalar()
                if left == 0:
                    break
                time.sleep(0.2)
            assert left == 0, "the queue was not drained"
            with engine.connect() as conn:
                stale = conn.execute(select(func.count()).select_from(TRACE_T).where(
                    (TRACE_T.c.analyzed_at.is_(None))
                    | (TRACE_T.c.analyzed_at < TRACE_T.c.updated_at))).scalar()
                summaries = conn.execute(select(func.count()).select_from(SUMMARY_T)).scalar()
            assert stale == 0 and summaries == len(ids)
        finally:
            for p in workers:
                p.terminate()
            for p in workers:
                p.wait(30)
            engine.dispose()
        texts = [p.read_text() for p in logs]
        killed_claims = [t for batch in _ids(texts[0], "claimed").values() for b in batch
                         for t in b]
        assert killed_claims and not _ids(texts[0], "analysed")
        analysed = Counter(t for log in texts[1:] for batches in _ids(log, "analysed").values()
                           for b in batches for t in b)
        assert set(analysed) == set(ids)
        assert max(analysed.values()) == 1, "a trace was analysed twice"
        busy = [log for log in texts[1:] if "analysed" in log]
        assert len(busy) >= 2, "the survivors did not share the work"
        assert all(p.returncode == 0 for p in workers), texts[1:]
