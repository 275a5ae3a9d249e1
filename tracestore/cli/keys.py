"""``tracestore keys create|list|revoke``: manage API keys (see :mod:`tracestore.auth`).

The key is printed once, by ``create``; the store keeps only its salted hash.
"""

from __future__ import annotations

import time

import click

from tracestore.auth import SCOPES, create_key, list_keys, revoke_key
from tracestore.cli.options import _settings, database_option
from tracestore.ingest.pipeline import project_id_for
from tracestore.store.engine import create_schema, make_engine, session_scope

__all__ = ["keys"]


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--project", required=True, help="Project the key may act on (created if new).")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES),
              help="ingest, read or admin (admin implies all); repeat for several.")
@click.option("--name", default=None, help="A label to recognise the key by in `keys list`.")
@database_option
def create(project: str, scopes: tuple[str, ...], name: str | None,
           database_url: str | None) -> None:
    """Create a key and print it once (only its salted hash is stored)."""
    engine = make_engine(_settings(database_url).database_url)
    create_schema(engine)
    pid = project_id_for(engine, project)
    with session_scope(engine) as session:
        key, info = create_key(session, project_id=pid, scopes=scopes, name=name, now=time.time())
    engine.dispose()
    click.echo(key)
    click.echo(f"key {info.id} ({info.prefix}…) for project {project!r}, scopes "
               f"{','.join(sorted(info.scopes))}; store it now, it is not shown again", err=True)


@keys.command("list")
@click.option("--project", default=None, help="Only this project's keys.")
@database_option
def list_(project: str | None, database_url: str | None) -> None:
    """List keys: id, prefix, project, scopes, name, created and revoked times."""
    engine = make_engine(_settings(database_url).database_url)
    create_schema(engine)
    pid = project_id_for(engine, project) if project else None
    with session_scope(engine) as session:
        infos = list_keys(session, project_id=pid)
    engine.dispose()
    for k in infos:
        state = "revoked" if k.revoked_at else "active"
        click.echo(f"{k.id}\t{k.prefix}…\t{k.project}\t{','.join(sorted(k.scopes))}\t"
                   f"{k.name or ''}\t{state}")


@keys.command("revoke")
@click.argument("key_id_or_prefix")
@database_option
def revoke(key_id_or_prefix: str, database_url: str | None) -> None:
    """Revoke a key by its id or prefix (as `keys list` shows); it stops working at once."""
    engine = make_engine(_settings(database_url).database_url)
    create_schema(engine)
    with session_scope(engine) as session:
        info = revoke_key(session, key_id_or_prefix=key_id_or_prefix, now=time.time())
    engine.dispose()
    click.echo(f"revoked key {info.id} ({info.prefix}…) of project {info.project!r}")
