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

__all__ = ["analyze", "analyze_demo"]


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
