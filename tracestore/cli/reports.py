"""``tracestore outcomes import FILE`` and ``tracestore report attribution|paths``.

Thin layers over the functions behind ``POST /api/v1/outcomes``, ``GET /api/v1/attribution``
and ``GET /api/v1/paths``; ``--json`` prints exactly what the API returns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from tracestore.cli.ingest import ingest_files
from tracestore.cli.options import _settings, database_option, project_option
from tracestore.errors import BadRequest
from tracestore.ingest.pipeline import project_id_for
from tracestore.reports.paths import (
    AttributionReport,
    PathsReport,
    attribution_report,
    paths_report,
    week_window,
)
from tracestore.schemas import to_epoch
from tracestore.store.engine import create_schema, make_engine, session_scope

__all__ = ["outcomes", "report"]


@click.group()
def outcomes() -> None:
    """Record business outcomes (late outcomes, keyed by task_id)."""


@outcomes.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@database_option
@project_option
def import_outcomes(file: Path, database_url: str | None, project: str | None) -> None:
    """Import outcomes from FILE (.json list or .jsonl, optionally .gz; the POST
    /api/v1/outcomes shape). Re-importing updates them; summaries of their tasks refresh."""
    ingest_files((file,), database_url=database_url, project=project, as_outcomes=True)


def _run(database_url: str | None, project: str | None,
         report_fn: Callable[[Session, int], BaseModel]) -> BaseModel:
    settings = _settings(database_url, project)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    try:
        with session_scope(engine) as s:
            return report_fn(s, project_id_for(engine, settings.project))
    finally:
        engine.dispose()


def _window(since: str | None, until: str | None, week: str | None
            ) -> tuple[float | None, float | None]:
    if week:
        return week_window(week)
    try:
        return (to_epoch(since) if since else None, to_epoch(until) if until else None)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _money(v: float | None, dp: int = 4) -> str:
    return "-" if v is None else f"${v:,.{dp}f}"


def _num(v: float | None, dp: int = 2) -> str:
    return "-" if v is None else f"{v:,.{dp}f}"


window_options = [
    click.option("--since", default=None, help="Start (ISO 8601 or epoch seconds), inclusive."),
    click.option("--until", default=None, help="End (ISO 8601 or epoch seconds), exclusive."),
    click.option("--week", default=None, help="An ISO week like 2026-W47 (overrides since/until)."),
]


def _with_window(f: Any) -> Any:
    for opt in reversed(window_options):
        f = opt(f)
    return f


@click.group()
def report() -> None:
    """Print analyst reports: cost per outcome (attribution) and wasteful paths."""


def attribution_table(rep: AttributionReport) -> Table:
    table = Table(title="Cost per successful outcome")
    for col in (*rep.group_by, "spend", "attempts", "success", "cost/outcome", "cost/token",
                "tok/attempt", "att/outcome", "p", "T/p", "waste", "vs baseline", "change"):
        table.add_column(col, justify="left" if col in rep.group_by else "right")
    for g in rep.groups:
        ch = g.change
        table.add_row(
            *(Text(str(g.key[k])) for k in rep.group_by), _money(g.spend_usd), str(g.attempts),
            str(g.successes), _money(g.cost_per_outcome_usd), _money(g.cost_per_token_usd, 8),
            _num(g.tokens_per_attempt, 0), _num(g.attempts_per_outcome),
            _num(g.first_attempt_success_rate), _money(g.retry_tail_usd),
            _money(sum(g.waste_usd.values())), _money(g.vs_baseline_usd),
            "-" if ch is None else f"{ch.change_usd:+.4f} ({ch.dominant})")
    return table


@report.command("attribution")
@_with_window
@click.option("--group-by", default="workflow", show_default=True,
              help="Comma-separated: workflow, team, feature, user, model, week.")
@click.option("--period", type=click.Choice(["week"]), default=None,
              help="Add the ISO week to the grouping.")
@click.option("--compare", default=None,
              help="'previous' or an ISO week: split the change among the three levers.")
@click.option("--workflow", default=None, help="Only this workflow.")
@click.option("--team", default=None, help="Only this team's traces.")
@click.option("--feature", default=None, help="Only this feature's traces.")
@click.option("--model", default=None, help="Only traces whose primary model this is.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead.")
@database_option
@project_option
def report_attribution(since: str | None, until: str | None, week: str | None, group_by: str,
                       period: str | None, compare: str | None, workflow: str | None,
                       team: str | None, feature: str | None, model: str | None,
                       as_json: bool, database_url: str | None, project: str | None) -> None:
    """Cost per successful outcome per group, its three levers, p, T/p and waste."""
    start, end = _window(since, until, week)
    rep = _run(database_url, project, lambda s, pid: attribution_report(
        s, project_id=pid, group_by=group_by, since=start, until=end, period=period,
        compare=compare, workflow=workflow, team=team, feature=feature, model=model))
    assert isinstance(rep, AttributionReport)
    if as_json:
        click.echo(rep.model_dump_json(indent=2))
    else:
        Console().print(attribution_table(rep))


def paths_table(rep: PathsReport) -> Table:
    table = Table(title="Wasteful paths")
    for col in ("workflow", "signature", "traces", "success", "mean cost", "cost/outcome",
                "waste", "top codes", "examples"):
        # fold: a narrow terminal wraps a long signature instead of cutting it to "…"
        table.add_column(col, overflow="fold", justify="right" if col in (
            "traces", "success", "mean cost", "cost/outcome", "waste") else "left")
    for p in rep.paths:
        # Text, not a str: signatures hold "[tier]", which rich would read as markup.
        table.add_row(Text(str(p.workflow)), Text(p.signature), str(p.traces), _num(p.success_rate),
                      _money(p.mean_cost_usd), _money(p.cost_per_outcome_usd),
                      _money(p.waste_usd), ", ".join(p.top_codes), " ".join(p.example_trace_ids))
    return table


@report.command("paths")
@_with_window
@click.option("--workflow", default=None, help="Only this workflow.")
@click.option("--team", default=None, help="Only this team's traces.")
@click.option("--feature", default=None, help="Only this feature's traces.")
@click.option("--model", default=None, help="Only traces whose primary model this is.")
@click.option("--order", type=click.Choice(["waste", "cost_per_outcome"]), default="waste",
              show_default=True, help="Most wasteful first, or most expensive per outcome.")
@click.option("--limit", default=20, show_default=True, help="Paths to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead.")
@database_option
@project_option
def report_paths(since: str | None, until: str | None, week: str | None, workflow: str | None,
                 team: str | None, feature: str | None, model: str | None, order: str,
                 limit: int, as_json: bool, database_url: str | None,
                 project: str | None) -> None:
    """Path signatures with traces, success rate, cost per outcome, waste and example ids."""
    start, end = _window(since, until, week)
    rep = _run(database_url, project, lambda s, pid: paths_report(
        s, project_id=pid, workflow=workflow, since=start, until=end, order=order, limit=limit,
        team=team, feature=feature, model=model))
    assert isinstance(rep, PathsReport)
    if as_json:
        click.echo(rep.model_dump_json(indent=2))
    else:
        Console().print(paths_table(rep))
