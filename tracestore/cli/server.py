"""Running ``tracestore serve``: one process, or N uvicorn worker processes on PostgreSQL.

SQLite takes one writer process: a second ``tracestore serve`` on the same file, or
``--workers`` above 1, is refused with a message saying so. On PostgreSQL any number of server
processes (``--workers N``, or separate ``tracestore serve`` processes behind a load balancer)
write to one database; see docs/operations.md, "Servers and workers".
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

import click
from sqlalchemy.engine import make_url

from tracestore.config import Settings

__all__ = ["run_server", "sqlite_path", "sqlite_server_lock"]


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for PostgreSQL or an in-memory database)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def sqlite_server_lock(database_url: str) -> IO[str] | None:
    """Hold ``<db>.serve.lock`` for this process (an exclusive ``flock``; the OS drops it when
    the process ends, however it ends). Raises a :class:`click.ClickException` naming the
    database when another server holds it. ``None`` for PostgreSQL."""
    path = sqlite_path(database_url)
    if path is None:
        return None
    lock = open(f"{path}.serve.lock", "a")  # noqa: SIM115  (held open for the process' life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise click.ClickException(
            f"another tracestore server is already serving the SQLite database {path}; SQLite "
            "takes one server process. Stop it, or use PostgreSQL for more than one "
            "(docs/operations.md, 'Servers and workers').") from None
    return lock


def run_server(settings: Settings, *, workers: int, log_level: str = "info") -> None:
    """Serve ``settings`` in this process, or in ``workers`` uvicorn worker processes (each
    builds its app from the environment, so the settings given here are exported to it)."""
    import uvicorn

    from tracestore.api import create_app

    if workers > 1 and settings.database_url.startswith("sqlite"):
        raise click.UsageError(
            f"--workers {workers} needs PostgreSQL: SQLite takes one server process "
            "(docs/operations.md, 'Servers and workers').")
    lock = sqlite_server_lock(settings.database_url)
    try:
        if workers == 1:
            uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                        log_level=log_level)
            return
        for name in ("database_url", "host", "port"):
            os.environ[f"TRACESTORE_{name.upper()}"] = str(getattr(settings, name))
        uvicorn.run("tracestore.api:create_app", factory=True, workers=workers,
                    host=settings.host, port=settings.port, log_level=log_level)
    finally:
        if lock is not None:
            lock.close()
