"""Background analysis computes a project's corpus baselines once per TTL for every worker
process, and shares them through the store (table ``analysis_baselines``; issue 18, "measured
with 1 and 2 workers": each worker computing them itself made two workers slower than one).

Two :class:`AnalysisWorker` objects on two engines stand for two processes: on PostgreSQL the
project's lock is an advisory lock per connection, on SQLite a lock of the process keyed by
the database URL, so both see each other's lock as they would across processes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from analyzers.baseline import (
    Rates,
    ReasoningStats,
    TierStats,
    WorkflowBaseline,
    baselines_from_dict,
    baselines_to_dict,
)
from tracestore.analysis import run
from tracestore.analysis.background import (
    BASELINE_RECHECK_SECONDS,
    BASELINE_TTL_SECONDS,
    AnalysisWorker,
)
from tracestore.analysis.run import analyze_traces, baseline_window
from tracestore.analysis.suite import default_suite
from tracestore.config import Settings
from tracestore.demo.run import generate_demo_traces
from tracestore.ingest.pipeline import Writer, project_id_for
from tracestore.schemas import TraceIn
from tracestore.store.engine import create_schema, make_engine
from tracestore.store.jsontext import json_text
from tracestore.store.load import Window
from tracestore.store.locks import exclusive
from tracestore.store.tables import BASELINE_T, FINDING_T

N = 60


def _store(db_url: str, n: int = N) -> tuple[Engine, int]:
    """A store holding ``n`` demo traces, queued for analysis; (engine, project id)."""
    engine = make_engine(db_url)
    create_schema(engine)
    writer = Writer(engine, Settings(database_url=db_url, settle_seconds=0))
    pid = project_id_for(engine, "default")
    writer.write(pid, [TraceIn.model_validate(t)
                       for t in generate_demo_traces(seed=5, n=n).traces])
    writer.close()
    return engine, pid


def _count_computations(monkeypatch: pytest.MonkeyPatch, delay: float = 0.0,
                        started: threading.Event | None = None) -> list[int]:
    """Count the corpus passes (``run.compute_corpus_baselines``, as the worker calls it);
    each waits ``delay`` s after setting ``started``, so another worker can meet it."""
    calls: list[int] = []
    real = run.compute_corpus_baselines

    def counted(engine: Engine, *, project_id: int, window: Window, suite: Any) -> Any:
        calls.append(project_id)
        if started is not None:
            started.set()
        time.sleep(delay)
        return real(engine, project_id=project_id, window=window, suite=suite)

    monkeypatch.setattr(run, "compute_corpus_baselines", counted)
    return calls


class OneBatch(AnalysisWorker):
    """A worker that claims one batch and then finds the queue empty, so two workers analyse
    half the traces each, one after the other."""

    claimed = False

    def claim(self, now: float) -> list[Any]:
        if self.claimed:
            return []
        self.claimed = True
        return super().claim(now)


def _worker(db_url: str, cls: type[AnalysisWorker] = AnalysisWorker, **kw: Any
            ) -> AnalysisWorker:
    return cls(make_engine(db_url), **{"settle_seconds": 0, "baseline_days": 28, **kw})


def _findings(engine: Engine) -> list[tuple[Any, ...]]:
    cols = [c for c in FINDING_T.c if c.name != "created_at"]
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(*cols)))


def test_two_workers_compute_the_baselines_once(db_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    engine, pid = _store(db_url)
    calls = _count_computations(monkeypatch)
    a, b = (_worker(db_url, OneBatch, batch_size=N // 2) for _ in range(2))
    now = time.time()
    assert a.run_once(now).traces == N // 2
    assert b.run_once(now + 1).traces == N // 2
    assert calls == [pid]  # one corpus pass for both workers
    (_, base_a, suite_a), (_, base_b, suite_b) = a._baselines[pid], b._baselines[pid]
    assert len(base_a) >= 3 and repr(base_b) == repr(base_a)  # exact: order and floats
    assert suite_b.config == suite_a.config and suite_a.config.price_table
    with engine.connect() as conn:
        row = conn.execute(select(BASELINE_T)).one()
    assert (row.project_id, row.computed_at, row.computed_by) == (pid, now, a.worker)
    shared = _findings(engine)
    assert len(shared) > 10

    # the same traces analysed with baselines computed in this process: the same findings
    with Session(engine) as s:
        bwin = baseline_window(s, project_id=pid, window=Window(), baseline_days=28)
        ids = list(s.execute(text("SELECT trace_id FROM traces ORDER BY trace_id")).scalars())
    assert (row.since, row.until) == (bwin.since, bwin.until)
    own, priced = run.compute_corpus_baselines(engine, project_id=pid, window=bwin,
                                               suite=default_suite())
    assert own == base_a and priced.config == suite_a.config
    analyze_traces(engine, project_id=pid, trace_ids=ids, baselines=own, suite=priced, now=now)
    assert _findings(engine) == shared
    for e in (engine, a.engine, b.engine):
        e.dispose()


def test_a_worker_without_stored_baselines_waits_for_the_one_computing(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, pid = _store(db_url, n=20)
    started = threading.Event()
    calls = _count_computations(monkeypatch, delay=0.5, started=started)
    a, b = _worker(db_url), _worker(db_url)
    now = time.time()
    first = threading.Thread(target=a._baselines_for, args=(pid, now))
    first.start()
    assert started.wait(30)
    t0 = time.perf_counter()
    base_b, suite_b = b._baselines_for(pid, now)  # no row yet: waits for a's lock
    waited = time.perf_counter() - t0
    first.join(30)
    assert calls == [pid] and waited > 0.2
    assert base_b == a._baselines[pid][1] and suite_b.config == a._baselines[pid][2].config
    for e in (engine, a.engine, b.engine):
        e.dispose()


def test_stale_baselines_serve_while_another_worker_recomputes(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, pid = _store(db_url, n=20)
    calls = _count_computations(monkeypatch)
    a, b = _worker(db_url), _worker(db_url)
    now = time.time()
    old, _ = a._baselines_for(pid, now)
    later = now + BASELINE_TTL_SECONDS + 1  # the stored row is out of date
    # "another worker" is recomputing (waits, should another test's worker hold the key: on
    # PostgreSQL the advisory lock is per database, not per schema)
    with exclusive(engine, f"analysis-baselines:{pid}"):
        stale, _ = b._baselines_for(pid, later)
    assert calls == [pid] and stale == old
    assert b._baselines[pid][0] == later - BASELINE_TTL_SECONDS + BASELINE_RECHECK_SECONDS
    b._baselines_for(pid, later + 1)  # within the recheck: no read, no pass
    assert calls == [pid]
    b._baselines_for(pid, later + BASELINE_RECHECK_SECONDS)  # lock free: b recomputes
    assert calls == [pid, pid]
    with engine.connect() as conn:
        row = conn.execute(select(BASELINE_T)).one()
    assert (row.computed_at, row.computed_by) == (later + BASELINE_RECHECK_SECONDS, b.worker)
    a._baselines_for(pid, later + BASELINE_RECHECK_SECONDS + 2)  # a reads b's row
    assert calls == [pid, pid]
    assert a._baselines[pid][0] == later + BASELINE_RECHECK_SECONDS
    c = _worker(db_url, baseline_days=7)  # another window: its own baselines
    c._baselines_for(pid, later + BASELINE_RECHECK_SECONDS + 3)
    assert calls == [pid, pid, pid]
    for e in (engine, a.engine, b.engine, c.engine):
        e.dispose()


def test_baselines_round_trip_through_json_exactly(tmp_path: Path) -> None:
    engine, pid = _store(f"sqlite:///{tmp_path / 'demo.db'}", n=300)
    with Session(engine) as s:
        bwin = baseline_window(s, project_id=pid, window=Window(), baseline_days=28)
    baselines, _ = run.compute_corpus_baselines(engine, project_id=pid, window=bwin,
                                                suite=default_suite())
    engine.dispose()
    assert len(baselines) >= 3 and all(isinstance(b, WorkflowBaseline)
                                       for b in baselines.values())
    assert any(r.input % 1 for b in baselines.values() for r in b.model_rates.values())
    assert any(n.mad_input % 1 for b in baselines.values() for n in b.steps.values())
    # the demo has no tie for a tier's most used model: one more workflow with the tuple field
    baselines["tied"] = WorkflowBaseline("tied", tier_success={
        "s": {"small": TierStats(4, 3, "a", ("a", "b"))}}, reasoning={
        "s": {"o3": ReasoningStats(2, 1)}}, model_rates={"a": Rates(0.1 / 3, 0.4, None, 1e-7)})
    for text_ in (json_text(baselines_to_dict(baselines)),
                  json.dumps(baselines_to_dict(baselines))):
        back = baselines_from_dict(orjson.loads(text_))
        assert back == baselines and repr(back) == repr(baselines)
    with pytest.raises(TypeError):
        baselines_to_dict({"w": {"steps": {}}})  # type: ignore[dict-item]
