"""``tracestore prune``: delete traces that started before a date (or past the retention)."""

from __future__ import annotations

import time

import click

from tracestore.cli.options import _settings, database_option
from tracestore.schemas import iso, to_epoch

__all__ = ["prune_command"]

DAY = 86_400.0


@click.command("prune")
@click.option("--before", default=None,
              help="Delete traces that started before this time (ISO 8601 date or time, or "
                   "epoch seconds) [default: now minus TRACESTORE_RETENTION_DAYS].")
@click.option("--project", default=None,
              help="Only this project's traces [default: every project].")
@database_option
def prune_command(before: str | None, project: str | None, database_url: str | None) -> None:
    """Delete traces that started before a time, with their nodes, edges, findings and
    summaries (on PostgreSQL, without --project, whole months at once where every trace of
    the month is older), and print what was removed."""
    from tracestore.ingest.delete import prune
    from tracestore.ingest.pipeline import project_id_for
    from tracestore.store.engine import create_schema, make_engine

    settings = _settings(database_url)
    if before is not None:
        try:
            cutoff = to_epoch(before)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--before") from None
    elif settings.retention_days > 0:
        cutoff = time.time() - settings.retention_days * DAY
    else:
        raise click.UsageError("give --before DATE, or set TRACESTORE_RETENTION_DAYS")
    engine = make_engine(settings.database_url)
    try:
        create_schema(engine)
        pid = project_id_for(engine, project) if project is not None else None
        t0 = time.perf_counter()
        d = prune(engine, before=cutoff, project_id=pid)
    finally:
        engine.dispose()
    months = f", {d.months} month partitions dropped" if d.months else ""
    click.echo(f"deleted {d.traces} traces started before {iso(cutoff)} ({d.nodes} nodes, "
               f"{d.edges} edges, {d.findings} findings, {d.summaries} summaries{months}) in "
               f"{time.perf_counter() - t0:.2f}s")
