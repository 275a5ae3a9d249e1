"""The ``tracestore`` command: a thin layer over library functions.

Errors from :mod:`tracestore.errors` become a one-line message and exit status 1.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from tracestore.cli.alerts import alerts
from tracestore.cli.analysis import analyze, worker
from tracestore.cli.demo import demo
from tracestore.cli.digest import digest
from tracestore.cli.export import export
from tracestore.cli.keys import keys
from tracestore.cli.options import _settings, database_option, project_option
from tracestore.cli.prices import prices, reprice_command
from tracestore.cli.prune import prune_command
from tracestore.cli.reports import outcomes, report
from tracestore.cli.simulate import simulate_command
from tracestore.config import Settings
from tracestore.errors import TracestoreError

__all__ = ["cli", "main"]


def _read_items(path: Path) -> Iterator[Any]:
    """Items of a .json / .jsonl file, gzip-compressed or not."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    name = path.name.removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson")):
        for line in raw.splitlines():
            if line.strip():
                yield orjson.loads(line)
        return
    data = orjson.loads(raw)
    if isinstance(data, list):
        yield from data
    else:
        yield data


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


@cli.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@database_option
@project_option
@click.option("--outcomes", "as_outcomes", is_flag=True,
              help="FILES hold late outcome records (the POST /api/v1/outcomes shape).")
def ingest(files: tuple[Path, ...], database_url: str | None, project: str | None,
           as_outcomes: bool = False) -> None:
    """Ingest native traces from FILES (.json, .jsonl, optionally .gz) through the same code
    path as POST /api/v1/traces (or outcome records with --outcomes)."""
    from rich.progress import Progress

    from tracestore.ingest.pipeline import Writer, project_id_for
    from tracestore.store.engine import create_schema, make_engine

    settings = _settings(database_url, project)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    writer = Writer(engine, settings)
    pid = project_id_for(engine, settings.project)
    totals = {"traces": 0, "nodes": 0, "outcomes": 0, "rejected": 0}
    with Progress(disable=not sys.stderr.isatty(), transient=True) as progress:
        task = progress.add_task("ingesting", total=len(files))
        for path in files:
            batch: list[Any] = []
            for item in _read_items(path):
                batch.append(item)
                if len(batch) >= 500:
                    _ingest_batch(writer, pid, batch, totals, path, as_outcomes)
                    batch = []
            _ingest_batch(writer, pid, batch, totals, path, as_outcomes)
            progress.advance(task)
    engine.dispose()
    click.echo(
        f"ingested {totals['outcomes']} outcomes; rejected {totals['rejected']}" if as_outcomes
        else f"ingested {totals['traces']} traces, {totals['nodes']} nodes; "
        f"rejected {totals['rejected']}"
    )
    if totals["rejected"]:
        sys.exit(1)


def _ingest_batch(writer: Any, pid: int, batch: list[Any], totals: dict[str, int],
                  path: Path, as_outcomes: bool = False) -> None:
    if not batch:
        return
    if as_outcomes:
        from tracestore.ingest.pipeline import validate_items
        from tracestore.schemas import OutcomeIn

        outcomes, errors = validate_items(batch, OutcomeIn)
        totals["outcomes"] += writer.write_outcomes(pid, outcomes)
        totals["rejected"] += len({e.item for e in errors})
        for e in errors[:20]:
            loc = ".".join(str(p) for p in e.loc)
            click.echo(f"{path}: item {e.item}: {loc}: {e.msg}", err=True)
        return
    report = writer.ingest_native(pid, batch)
    totals["traces"] += report.accepted_traces
    totals["nodes"] += report.accepted_nodes
    totals["rejected"] += report.rejected_traces
    for e in report.errors[:20]:
        loc = ".".join(str(p) for p in e.loc)
        click.echo(f"{path}: item {e.item} ({e.trace_id}): {loc}: {e.msg}", err=True)


@cli.command("export-schema")
@click.option("--out", "out_dir", default="api_schema", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write openapi.json and the JSON Schemas into.")
def export_schema(out_dir: Path) -> None:
    """Write api_schema/openapi.json and the JSON Schemas of the ingest bodies."""
    from tracestore.api.apischema import write_schemas

    for path in write_schemas(out_dir):
        click.echo(f"wrote {path}")


# Command groups defined in their own modules (they import only cli_options, so no cycle).
for _command in (keys, digest, analyze, worker, prune_command, prices, reprice_command, outcomes, report, export,
                 simulate_command, alerts, demo):
    cli.add_command(_command)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except TracestoreError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(1)
