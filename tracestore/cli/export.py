"""``tracestore export focus``: the FOCUS cost export of ``GET /api/v1/export/focus``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tracestore.cli.options import _settings, database_option, project_option
from tracestore.ingest.pipeline import project_id_for
from tracestore.reports.focus import FocusQuery, focus_rows, write_csv, write_jsonl
from tracestore.schemas import to_epoch
from tracestore.store.engine import create_schema, make_engine


def _when(value: str | None, name: str) -> float | None:
    if not value:
        return None
    try:
        return to_epoch(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


@click.group("export")
def export() -> None:
    """Export cost data for other tools."""


@export.command("focus")
@database_option
@project_option
@click.option("--since", help="ISO 8601 or epoch seconds (traces by start time).")
@click.option("--until", help="ISO 8601 or epoch seconds (exclusive).")
@click.option("--workflow", help="Only this workflow.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv",
              show_default=True, help="CSV or JSON Lines.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
def export_focus(database_url: str | None, project: str | None, since: str | None,
                 until: str | None, workflow: str | None, fmt: str, out: Path | None) -> None:
    """Cost rows in FinOps FOCUS 1.3 column names (one per trace and model), with the waste
    allocation method named on every row (docs/export.md)."""
    settings = _settings(database_url, project)
    engine = make_engine(settings.database_url)
    try:
        create_schema(engine)
        q = FocusQuery(project_id_for(engine, settings.project), _when(since, "--since"),
                       _when(until, "--until"), workflow)
        rows = focus_rows(engine, q)
        chunks = write_csv(rows) if fmt == "csv" else write_jsonl(rows)
        with (out.open("wb") if out else sys.stdout.buffer) as fh:
            for chunk in chunks:
                fh.write(chunk)
    finally:
        engine.dispose()
