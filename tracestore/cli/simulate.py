"""``tracestore simulate``: the savings simulator of ``POST /api/v1/simulate``."""

from __future__ import annotations

from pathlib import Path

import click
import orjson
from pydantic import ValidationError
from sqlalchemy.orm import Session

from tracestore.cli.options import _settings, database_option, project_option
from tracestore.ingest.pipeline import project_id_for
from tracestore.pricing.pricer import Pricer
from tracestore.reports.simulate import SimulateIn, simulate
from tracestore.store.engine import create_schema, make_engine


@click.command("simulate")
@database_option
@project_option
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def simulate_command(scenario: Path, database_url: str | None, project: str | None) -> None:
    """Re-price a window under SCENARIO (a JSON file shaped like the POST /api/v1/simulate body:
    since, until, workflow, scenario.route/fix_codes/prices) and print before/after as JSON.
    Nothing stored changes."""
    try:
        q = SimulateIn.model_validate(orjson.loads(scenario.read_bytes()))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise click.BadParameter(str(exc), param_hint="SCENARIO") from None
    settings = _settings(database_url, project)
    engine = make_engine(settings.database_url)
    try:
        create_schema(engine)
        pid = project_id_for(engine, settings.project)
        with Session(engine) as session:
            result = simulate(session, project_id=pid, q=q,
                              pricer=Pricer(cost_tolerance=settings.reported_cost_tolerance))
    finally:
        engine.dispose()
    click.echo(orjson.dumps(result.model_dump(), option=orjson.OPT_INDENT_2).decode())
