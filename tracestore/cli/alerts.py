"""``tracestore alerts list|set|evaluate``: alert rules from the command line."""

from __future__ import annotations

import time
from pathlib import Path

import click
import orjson
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tracestore.alerts.rules import AlertsIn
from tracestore.alerts.service import evaluate_project, load_rules, replace_rules
from tracestore.cli.options import _settings, database_option, project_option
from tracestore.ingest.pipeline import project_id_for
from tracestore.store.engine import create_schema, make_engine


@click.group("alerts")
def alerts() -> None:
    """Alert rules: cost per outcome, budgets, unpriced share (docs/alerts.md)."""


def _open(database_url: str | None, project: str | None) -> tuple[Engine, int, str]:
    settings = _settings(database_url, project)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    return engine, project_id_for(engine, settings.project), settings.alert_webhook_url


@alerts.command("set")
@database_option
@project_option
@click.argument("rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def set_rules(rules_file: Path, database_url: str | None, project: str | None) -> None:
    """Replace the project's rules with RULES_FILE (JSON: {"rules": [...]}, as PUT /alerts)."""
    try:
        body = AlertsIn.model_validate(orjson.loads(rules_file.read_bytes()))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise click.BadParameter(str(exc), param_hint="RULES_FILE") from None
    engine, pid, _ = _open(database_url, project)
    with Session(engine) as session:
        replace_rules(session, pid, body.rules)
        session.commit()
    click.echo(f"{len(body.rules)} rule(s) set")


@alerts.command("list")
@database_option
@project_option
def list_rules(database_url: str | None, project: str | None) -> None:
    """Print the rules with their state as JSON."""
    engine, pid, _ = _open(database_url, project)
    with Session(engine) as session:
        click.echo(orjson.dumps(load_rules(session, pid), option=orjson.OPT_INDENT_2).decode())


@alerts.command("evaluate")
@database_option
@project_option
def evaluate(database_url: str | None, project: str | None) -> None:
    """Evaluate the rules now (post what fires); print the events written."""
    engine, pid, url = _open(database_url, project)
    events = evaluate_project(engine, pid, now=time.time(), default_url=url)
    for e in events:
        click.echo(f"{e['event']}: {e['rule']}: {e['message']} ({e.get('status', '')})")
    click.echo(f"{len(events)} event(s)")
