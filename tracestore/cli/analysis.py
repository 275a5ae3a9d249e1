"""``tracestore analyze``: analyse stored traces now, over trace partitions in N processes.

Registered on the ``tracestore`` group by :mod:`tracestore.cli.main`. Shows a progress bar on a
terminal (stderr) and stays quiet when piped; prints the counts at the end either way.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from tracestore.cli.options import _settings, database_option, project_option
from tracestore.config import Settings
from tracestore.schemas import iso, to_epoch

__all__ = ["analyze", "analyze_demo", "worker"]


def _timestamp(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return to_epoch(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


@click.command()
@click.option("--since", callback=_timestamp,
              help="Analyse traces that started at or after this time (ISO 8601 or epoch s).")
@click.option("--until", callback=_timestamp,
              help="Analyse traces that started before this time (ISO 8601 or epoch s).")
@click.option("--workflow", default=None, help="Only traces of this workflow.")
@click.option("--workers", default=max(1, os.cpu_count() or 1), show_default="CPU count",
              type=click.IntRange(1, 256), help="Worker processes, each on a partition.")
@database_option
@project_option
def analyze(since: float | None, until: float | None, workflow: str | None, workers: int,
            database_url: str | None, project: str | None) -> None:
    """Analyse stored traces now (replacing their findings) and print the counts."""
    from rich.progress import Progress

    from tracestore.analysis.parallel import run_parallel
    from tracestore.analysis.suite import default_suite
    from tracestore.ingest.pipeline import project_id_for
    from tracestore.store.engine import create_schema, make_engine
    from tracestore.store.load import Window

    if since is not None and until is not None and since >= until:
        raise click.BadParameter(f"--since ({iso(since)}) must be before --until ({iso(until)})")
    settings = _settings(database_url, project)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    pid = project_id_for(engine, settings.project)
    engine.dispose()
    t0 = time.perf_counter()
    with Progress(disable=not sys.stderr.isatty(), transient=True) as progress:
        task = progress.add_task("analysing", total=None)
        counts = run_parallel(
            settings.database_url, project_id=pid,
            window=Window(since=since, until=until, workflow=workflow),
            suite=default_suite(), baseline_days=settings.baseline_days, now=time.time(),
            workers=workers,
            on_total=lambda n: progress.update(task, total=n),
            on_progress=lambda n: progress.advance(task, n),
        )
    elapsed = time.perf_counter() - t0
    click.echo(f"analysed {counts.traces} traces in {elapsed:.2f}s: {counts.findings} findings, "
               f"${counts.wasted_cost_usd:.4f} wasted")


def analyze_demo(settings: Settings, *, echo: Callable[[str], Any] = click.echo,
                 top: int = 5) -> None:
    """Analyse everything in the store (as ``tracestore demo`` does after loading) and print
    the ``top`` findings by wasted dollars."""
    from sqlalchemy.orm import Session

    from tracestore.analysis.queries import FindingFilters, list_findings
    from tracestore.analysis.run import analyze_window
    from tracestore.analysis.suite import default_suite
    from tracestore.ingest.pipeline import project_id_for
    from tracestore.store.engine import make_engine
    from tracestore.store.load import Window

    engine = make_engine(settings.database_url)
    try:
        pid = project_id_for(engine, settings.project)
        counts = analyze_window(engine, project_id=pid, window=Window(), suite=default_suite(),
                                baseline_days=settings.baseline_days, now=time.time())
        echo(f"analysed {counts.traces} traces: {counts.findings} findings, "
             f"${counts.wasted_cost_usd:.4f} wasted")
        with Session(engine) as session:
            items, _ = list_findings(session, project_id=pid, filters=FindingFilters(),
                                     limit=top)
        for f in items:
            echo(f"  ${f.wasted_cost_usd:.4f}  {f.code:<34} {f.trace_id}  {f.message}")
    finally:
        engine.dispose()


@click.command()
@click.option("--settle", "settle_seconds", type=click.FloatRange(0), default=None,
              help="Analyse a trace once it has been quiet this many seconds "
                   "[default: TRACESTORE_SETTLE_SECONDS].")
@click.option("--batch", "batch_size", type=click.IntRange(1, 10_000), default=500,
              show_default=True, help="Traces claimed at a time.")
@click.option("--poll", "poll_seconds", type=click.FloatRange(0.05), default=1.0,
              show_default=True, help="Seconds between looks at an empty queue.")
@click.option("--exit-when-idle", is_flag=True,
              help="Stop once the queue holds nothing claimable (batch jobs, tests).")
@click.option("--verbose", is_flag=True, help="Log every claimed and analysed trace id.")
@database_option
def worker(settle_seconds: float | None, batch_size: int, poll_seconds: float,
           exit_when_idle: bool, verbose: bool, database_url: str | None) -> None:
    """Analyse queued traces as they settle, sharing the queue with other workers and servers
    (any number, on any host, on PostgreSQL); stops cleanly on SIGTERM or Ctrl-C."""
    import logging
    import signal

    from tracestore.analysis.background import AnalysisWorker
    from tracestore.store.engine import create_schema, make_engine

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    settings = _settings(database_url)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    w = AnalysisWorker(engine, settle_seconds=(settings.settle_seconds if settle_seconds is None
                                               else settle_seconds),
                       baseline_days=settings.baseline_days,
                       lease_seconds=settings.analysis_lease_seconds, batch_size=batch_size,
                       poll_seconds=poll_seconds, retention_days=settings.retention_days)
    signal.signal(signal.SIGTERM, lambda *_: w.stop())
    click.echo(f"worker {w.worker} analysing queued traces", err=True)
    try:
        while not w.stopping:
            counts = w.run_once(time.time())
            w.maybe_prune(time.time())
            if exit_when_idle and counts.traces == 0:
                break
            if counts.traces == 0:
                time.sleep(poll_seconds)
    except KeyboardInterrupt:
        w.stop()
    finally:
        engine.dispose()
    click.echo(f"worker {w.worker}: analysed {w.totals.traces} traces, "
               f"{w.totals.findings} findings", err=True)
