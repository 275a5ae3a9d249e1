"""``tracestore ingest FILES``: native traces (or late outcomes) from files, through the same
writer as the REST API. :func:`ingest_files` is shared with ``tracestore outcomes import``."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import orjson

from tracestore.cli.options import _settings, database_option, project_option

__all__ = ["ingest", "ingest_files"]


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


@click.command()
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
    ingest_files(files, database_url=database_url, project=project, as_outcomes=as_outcomes)


def ingest_files(files: Sequence[Path], *, database_url: str | None, project: str | None,
                 as_outcomes: bool = False) -> None:
    """Ingest FILES in batches of 500 items through the writer; report the totals and exit
    with status 1 when any item was rejected (``tracestore ingest``, ``outcomes import``)."""
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
