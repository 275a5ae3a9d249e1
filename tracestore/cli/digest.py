"""``tracestore digest``: render a week's digest to stdout or a file, or post it to a webhook."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from tracestore.digest import FORMATS, render
from tracestore.digest.service import (
    base_url_of,
    last_complete_week,
    project_digest,
    send_digest,
)

__all__ = ["digest"]


@click.command()
@click.option("--week", default=None, metavar="YYYY-Www",
              help="ISO week, e.g. 2026-W47 (default: the last complete week, UTC).")
@click.option("--project", default=None, help="Project (default: the `project` setting).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True,
              help="md (chat/email), json, or html (a self-contained page with charts).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of stdout.")
@click.option("--webhook", default=None, metavar="URL",
              help="POST the digest (JSON with a Slack-compatible `text`) to URL, retrying "
              "with backoff; the delivery is recorded.")
@click.option("--database-url", envvar="TRACESTORE_DATABASE_URL", default=None,
              help="SQLAlchemy URL of the store (default: sqlite:///./tracestore.db).")
def digest(week: str | None, project: str | None, fmt: str, out: Path | None,
           webhook: str | None, database_url: str | None) -> None:
    """Render the weekly churn digest of a project (spend, cost per outcome and its levers,
    wasteful paths, findings, maturity) as Markdown, JSON or HTML, or post it to a webhook."""
    from tracestore.cli.options import _settings
    from tracestore.store.engine import create_schema, make_engine

    settings = _settings(database_url, project)
    week = week or last_complete_week(time.time())
    engine = make_engine(settings.database_url)
    create_schema(engine)
    try:
        if webhook:
            result = send_digest(engine, settings, project=settings.project, week=week,
                                 url=webhook)
            if not result.ok:
                click.echo(f"error: webhook delivery failed after {result.attempts} "
                           f"attempt(s): {result.error}", err=True)
                sys.exit(1)
            click.echo(f"posted the {week} digest to {webhook} "
                       f"(HTTP {result.http_status}, {result.attempts} attempt(s))", err=True)
            return
        _, d = project_digest(engine, project=settings.project, week=week)
        body, _ = render(d, fmt, base_url=base_url_of(settings))
    finally:
        engine.dispose()
    if out:
        out.write_bytes(body)
        click.echo(f"wrote {out}", err=True)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
