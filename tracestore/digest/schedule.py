"""When the server sends the weekly digest: the ``digest_schedule`` setting.

The schedule is a weekday and a UTC time, ``"MON 09:00"``; empty turns sending off. At or
after that moment in ISO week *W*, the digest of week *W-1* (the last complete week) is due
unless a successful delivery of it to the same URL is already recorded, so a server that was
down at 09:00 catches up when it starts, and a restart never sends twice.

:func:`due_week` is the pure decision (the clock is an argument); :class:`DigestScheduler` is
the lifespan thread that asks it once a ``POLL_SECONDS`` and delivers.

>>> parse_schedule("mon 09:00"), parse_schedule("")
((0, 540), None)
>>> # Monday 2026-11-23 09:00 UTC is 1795424400: W47 becomes due, once.
>>> due_week("MON 09:00", now=1795424400.0, sent_weeks=set())
'2026-W47'
>>> due_week("MON 09:00", now=1795424400.0, sent_weeks={"2026-W47"}) is None
True
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import timedelta

from analyzers.digest import previous_week, week_bounds, week_of

__all__ = ["DAYS", "POLL_SECONDS", "DigestScheduler", "due_week", "parse_schedule"]

log = logging.getLogger("tracestore.digest")

DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
# Once a minute: the schedule has minute resolution.
POLL_SECONDS = 60.0
_RE = re.compile(r"^\s*([A-Za-z]{3})\s+(\d{1,2}):(\d{2})\s*$")


def parse_schedule(schedule: str) -> tuple[int, int] | None:
    """``"MON 09:00"`` → (weekday 0=Monday, minute of day); ``""`` → ``None``; bad → ValueError."""
    if not schedule.strip():
        return None
    m = _RE.match(schedule)
    if not m or m.group(1).upper() not in DAYS or int(m.group(2)) > 23 or int(m.group(3)) > 59:
        raise ValueError(f"digest_schedule must look like 'MON 09:00' (UTC) or be empty, "
                         f"got {schedule!r}")
    return DAYS.index(m.group(1).upper()), int(m.group(2)) * 60 + int(m.group(3))


def due_week(schedule: str, *, now: float, sent_weeks: set[str]) -> str | None:
    """The week whose digest should be sent at ``now`` (epoch seconds), or ``None``."""
    slot = parse_schedule(schedule)
    if slot is None:
        return None
    day, minute = slot
    this_week = week_of(now)
    start = week_bounds(this_week)[2]
    if now < start + timedelta(days=day, minutes=minute).total_seconds():
        return None
    week = previous_week(this_week)
    return None if week in sent_weeks else week


class DigestScheduler(threading.Thread):
    """Daemon thread: every ``poll`` seconds, ``tick()`` decides and sends (errors are logged,
    never raised: a failing webhook must not take the server down)."""

    def __init__(self, tick: Callable[[], object], poll: float = POLL_SECONDS) -> None:
        super().__init__(name="tracestore-digest", daemon=True)
        self._tick = tick
        self._poll = poll
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self._tick()
            except Exception:
                log.exception("scheduled digest failed")
            self._halt.wait(self._poll)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
