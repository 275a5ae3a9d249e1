"""The ``tracestore`` command: a thin layer over library functions.

Errors from :mod:`tracestore.errors` become a one-line message and exit status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tracestore.cli.alerts import alerts
from tracestore.cli.analysis import analyze, worker
from tracestore.cli.demo import demo
from tracestore.cli.digest import digest
from tracestore.cli.export import export
from tracestore.cli.ingest import ingest
from tracestore.cli.keys import keys
from tracestore.cli.options import _settings, database_option
from tracestore.cli.prices import prices, reprice_command
from tracestore.cli.prune import prune_command
from tracestore.cli.reports import outcomes, report
from tracestore.cli.simulate import simulate_command
from tracestore.config import Settings
from tracestore.errors import TracestoreError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tracestore")
def cli() -> None:
    """tracestore: agent trace store and decision-trace analyzer."""


@cli.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to listen on (default 8000).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Server processes sharing the port (PostgreSQL only; SQLite takes one).")
@database_option
def serve(host: str | None, port: int | None, workers: int, database_url: str | None) -> None:
    """Run the HTTP server (REST API and OTLP/HTTP ingest)."""
    from tracestore.cli.server import run_server

    settings = _settings(database_url)
    if host:
        settings.host = host
    if port:
        settings.port = port
    _refuse_open_non_loopback(settings)
    run_server(settings, workers=workers)


def _refuse_open_non_loopback(settings: Settings) -> None:
    """Fail with a clear message, before binding, when no keys exist and the bind is not
    loopback (the app checks again at start)."""
    from tracestore.auth import check_open_mode
    from tracestore.store.engine import create_schema, make_engine

    engine = make_engine(settings.database_url)
    try:
        create_schema(engine)
        check_open_mode(engine, settings)
    finally:
        engine.dispose()


@cli.command("export-schema")
@click.option("--out", "out_dir", default="api_schema", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write openapi.json and the JSON Schemas into.")
def export_schema(out_dir: Path) -> None:
    """Write api_schema/openapi.json and the JSON Schemas of the ingest bodies."""
    from tracestore.api.apischema import write_schemas

    for path in write_schemas(out_dir):
        click.echo(f"wrote {path}")


# Commands and groups defined in their own modules (they import only cli.options, so no cycle).
for _command in (ingest, keys, digest, analyze, worker, prune_command, prices, reprice_command,
                 outcomes, report, export, simulate_command, alerts, demo):
    cli.add_command(_command)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except TracestoreError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(1)
