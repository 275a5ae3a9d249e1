"""Options and helpers shared by every CLI command module (kept apart from
:mod:`tracestore.cli.main` so command modules can import them without an import cycle)."""

from __future__ import annotations

from typing import Any

import click

from tracestore.config import Settings

__all__ = ["_settings", "database_option", "project_option"]


def _settings(database_url: str | None, project: str | None = None) -> Settings:
    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    if project:
        overrides["project"] = project
    return Settings(**overrides)


database_option = click.option(
    "--database-url", envvar="TRACESTORE_DATABASE_URL", default=None,
    help="SQLAlchemy URL of the store (default: sqlite:///./tracestore.db).",
)
project_option = click.option(
    "--project", default=None, help="Project to act on (default: the `project` setting)."
)
