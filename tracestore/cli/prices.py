"""``tracestore prices import FILE`` and ``tracestore reprice``: the price book from the shell.

Both are thin layers over :func:`tracestore.pricing.book.replace_book` and
:func:`tracestore.pricing.reprice.reprice`, the functions behind ``PUT /api/v1/prices`` and
``POST /api/v1/reprice``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
from pydantic import ValidationError

from tracestore.cli.options import _settings, database_option, project_option
from tracestore.ingest.pipeline import project_id_for
from tracestore.pricing.book import PriceBookIn, replace_book
from tracestore.pricing.pricer import Pricer, genai_provider
from tracestore.pricing.reprice import report_table, reprice
from tracestore.schemas import to_epoch
from tracestore.store.engine import create_schema, make_engine, session_scope
from tracestore.store.stored import forget_stored

__all__ = ["prices", "reprice_command"]


@click.group()
def prices() -> None:
    """Manage the price book (overrides over genai-prices)."""


@prices.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@database_option
@project_option
def import_(file: Path, database_url: str | None, project: str | None) -> None:
    """Replace the project's price book with FILE: a JSON list of overrides or
    {"overrides": [...]} (format in README, "Pricing"). Stored costs change only with
    `tracestore reprice`."""
    try:
        data: Any = orjson.loads(file.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise click.ClickException(f"{file}: not valid JSON: {exc}") from None
    try:
        book = PriceBookIn.model_validate({"overrides": data} if isinstance(data, list) else data)
    except ValidationError as exc:
        for e in exc.errors(include_url=False):
            click.echo(f"{file}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}", err=True)
        sys.exit(1)
    settings = _settings(database_url, project)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    pid = project_id_for(engine, settings.project)
    with session_scope(engine) as session:
        ids = replace_book(session, project_id=pid, items=book.overrides,
                           normalise=genai_provider)
    engine.dispose()
    click.echo(f"price book of project {settings.project!r}: {len(ids)} overrides")


def _epoch(_ctx: Any, _param: Any, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return to_epoch(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("reprice")
@click.option("--since", callback=_epoch, default=None,
              help="Traces started at or after this instant (ISO 8601 or epoch seconds).")
@click.option("--until", callback=_epoch, default=None,
              help="Traces started before this instant (ISO 8601 or epoch seconds).")
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@database_option
@project_option
def reprice_command(since: float | None, until: float | None, dry_run: bool,
                    database_url: str | None, project: str | None) -> None:
    """Recompute stored costs under the current price book, update trace roll-ups, and
    report old total, new total and per-model deltas."""
    from rich.console import Console

    settings = _settings(database_url, project)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    pid = project_id_for(engine, settings.project)
    pricer = Pricer(cost_tolerance=settings.reported_cost_tolerance)
    with session_scope(engine) as session:
        report = reprice(session, project_id=pid, pricer=pricer, since=since, until=until,
                         dry_run=dry_run)
        if report.changed_nodes and not dry_run:
            forget_stored(session, project_id=pid)
    engine.dispose()
    Console(width=None if sys.stdout.isatty() else 120).print(report_table(report))
    click.echo(
        f"{'would change' if dry_run else 'changed'} {report.changed_nodes} nodes: "
        f"old total ${report.old_total_usd:.6f}, new total ${report.new_total_usd:.6f} "
        f"({report.delta_usd:+.6f}); unpriced {report.old_unpriced} -> {report.new_unpriced}"
    )
