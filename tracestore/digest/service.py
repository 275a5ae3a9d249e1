"""The digest use cases shared by the CLI, the REST route and the scheduler: pick the week,
load and render a project's digest, send it, and the scheduler's tick.

Only this I/O layer reads the clock (for the default week and the schedule); the pure digest
in :mod:`analyzers.digest` always gets the week as an argument.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from analyzers.digest import previous_week, week_of
from analyzers.digest_types import Digest
from tracestore.config import Settings
from tracestore.digest.cache import cached_digest
from tracestore.digest.schedule import DigestScheduler, due_week, parse_schedule
from tracestore.digest.webhook import DeliveryResult, deliver_digest, last_failure, sent_weeks
from tracestore.ingest.pipeline import project_id_for
from tracestore.store.locks import exclusive

__all__ = [
    "base_url_of",
    "last_complete_week",
    "project_digest",
    "scheduled_tick",
    "send_digest",
    "start_scheduler",
]

log = logging.getLogger("tracestore.digest")

# After a delivery failed all its retries, the scheduler tries that week again an hour later
# (not every poll): a receiver that is down for a day gets 24 attempts, not 1,440.
RETRY_FAILED_AFTER = 3600.0


def last_complete_week(now: float) -> str:
    """The ISO week before the one containing ``now``.

    >>> last_complete_week(1795424400.0)  # Monday 2026-11-23
    '2026-W47'
    """
    return previous_week(week_of(now))


def base_url_of(settings: Settings) -> str:
    """Where trace links point: ``digest_base_url``, else this server's address."""
    return settings.digest_base_url or f"http://{settings.host}:{settings.port}"


def project_digest(engine: Engine, *, project: str, week: str,
                   project_id: int | None = None) -> tuple[int, Digest]:
    """(project id, digest of ``week``) for the project named ``project``: the stored digest
    of a complete week while its inputs are unchanged (:func:`cached_digest`, as the page
    and the API serve it), else built and, for a complete week, stored."""
    pid = project_id if project_id is not None else project_id_for(engine, project)
    return pid, cached_digest(engine, project_id=pid, project=project, week=week,
                              now=time.time())


def send_digest(engine: Engine, settings: Settings, *, project: str, week: str, url: str,
                trigger: str = "manual", **retry: Any) -> DeliveryResult:
    pid, digest = project_digest(engine, project=project, week=week)
    return deliver_digest(engine, project_id=pid, digest=digest, url=url,
                          base_url=base_url_of(settings), trigger=trigger, **retry)


def scheduled_tick(engine: Engine, settings: Settings, *, now: float,
                   **retry: Any) -> DeliveryResult | None:
    """Send the due digest of the ``project`` setting's project, if any is due."""
    url = settings.digest_webhook_url
    if not (settings.digest_schedule and url):
        return None
    pid = project_id_for(engine, settings.project)
    # One sender at a time across server processes (store/locks.py): a server that finds the
    # lock taken skips this tick; the holder is sending, and records it before letting go.
    with exclusive(engine, f"digest:{pid}:{url}", wait=False) as held:
        return _send_due(engine, settings, pid, url, now=now, **retry) if held else None


def _send_due(engine: Engine, settings: Settings, pid: int, url: str, *, now: float,
              **retry: Any) -> DeliveryResult | None:
    with Session(engine) as session:
        done = sent_weeks(session, project_id=pid, url=url)
        week = due_week(settings.digest_schedule, now=now, sent_weeks=done)
        failed = (last_failure(session, project_id=pid, url=url, week=week)
                  if week is not None else None)
    if week is None or (failed is not None and now - failed < RETRY_FAILED_AFTER):
        return None
    # Stamp the delivery with the tick's time, the clock the schedule decisions use.
    result = send_digest(engine, settings, project=settings.project, week=week, url=url,
                         trigger="schedule", now=lambda: now, **retry)
    log.info("scheduled digest %s to %s: %s after %d attempt(s)", week, url,
             "ok" if result.ok else f"failed ({result.error})", result.attempts)
    return result


def start_scheduler(engine: Engine, settings: Settings,
                    clock: Callable[[], float] = time.time) -> DigestScheduler | None:
    """Start the lifespan thread when ``digest_schedule`` and ``digest_webhook_url`` are set.
    A malformed schedule stops the server at start (``ValueError``), not at 09:00 Monday."""
    if parse_schedule(settings.digest_schedule) is None:
        return None
    if not settings.digest_webhook_url:
        log.warning("digest_schedule is set but digest_webhook_url is empty: not sending")
        return None
    thread = DigestScheduler(lambda: scheduled_tick(engine, settings, now=clock()))
    thread.start()
    return thread
