"""Post the digest to a webhook, retrying with exponential backoff, and record the delivery.

The body is JSON: ``text`` holds the Markdown digest (what a Slack incoming webhook, and the
many chat tools that copy its format, display), ``digest`` the JSON digest for machines.

Retries: a network error, 408, 429 or any 5xx is retried after ``base_delay × 2^(n-1)``
seconds (exponential backoff, AWS Architecture Blog "Exponential Backoff and Jitter", 2015 —
without jitter: one sender per server), honouring a longer ``Retry-After``; any other 4xx is
permanent (the receiver refused this body, sending it again will not help). Every delivery,
successful or not, is one ``digest_deliveries`` row.

>>> backoff_delays(4, 1.0)
[1.0, 2.0, 4.0]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from analyzers.digest_types import Digest
from tracestore.digest.jsonout import digest_to_dict
from tracestore.digest.markdown import render_markdown
from tracestore.store.tables import DELIVERY_T

__all__ = [
    "ATTEMPTS",
    "DeliveryResult",
    "backoff_delays",
    "deliver_digest",
    "last_failure",
    "post_with_retry",
    "sent_weeks",
    "webhook_body",
]


# Five tries over 1 + 2 + 4 + 8 = 15 s of waiting rides out a receiver restart.
ATTEMPTS = 5
BASE_DELAY = 1.0
# Longest Retry-After we honour, so one stuck receiver cannot stall the scheduler for hours.
MAX_RETRY_AFTER = 60.0
TIMEOUT = 10.0
_RETRYABLE = {408, 429}


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    attempts: int
    http_status: int | None
    error: str | None


def backoff_delays(attempts: int, base_delay: float) -> list[float]:
    """Waits between ``attempts`` tries."""
    return [base_delay * 2 ** i for i in range(attempts - 1)]


def webhook_body(digest: Digest, *, base_url: str) -> bytes:
    return orjson.dumps({"text": render_markdown(digest, base_url=base_url, flavor="slack"),
                         "digest": digest_to_dict(digest)})


def _retry_after(resp: httpx.Response) -> float:
    try:
        return min(float(resp.headers.get("retry-after", 0)), MAX_RETRY_AFTER)
    except ValueError:  # an HTTP date: fall back to our own backoff
        return 0.0


def post_with_retry(url: str, body: bytes, *, attempts: int = ATTEMPTS,
                    base_delay: float = BASE_DELAY, timeout: float = TIMEOUT,
                    sleep: Callable[[float], object] = time.sleep) -> DeliveryResult:
    """POST ``body`` as JSON until a 2xx, a permanent failure or ``attempts`` tries."""
    delays = backoff_delays(attempts, base_delay)
    status: int | None = None
    error: str | None = None
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for n in range(1, attempts + 1):
            wait = delays[n - 1] if n <= len(delays) else 0.0
            try:
                resp = client.post(url, content=body,
                                   headers={"content-type": "application/json"})
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            else:
                status = resp.status_code
                if 200 <= status < 300:
                    return DeliveryResult(True, n, status, None)
                error = f"HTTP {status}: {resp.text[:200]}"
                if status < 500 and status not in _RETRYABLE:
                    return DeliveryResult(False, n, status, error)
                wait = max(wait, _retry_after(resp))
            if n < attempts:
                sleep(wait)
    return DeliveryResult(False, attempts, status, error)


def deliver_digest(engine: Engine, *, project_id: int, digest: Digest, url: str, base_url: str,
                   trigger: str = "manual", now: Callable[[], float] = time.time,
                   **retry: Any) -> DeliveryResult:
    """Post ``digest`` to ``url`` and record the outcome in ``digest_deliveries``."""
    started = now()
    result = post_with_retry(url, webhook_body(digest, base_url=base_url), **retry)
    with Session(engine) as session, session.begin():
        session.execute(insert(DELIVERY_T).values(
            project_id=project_id, week=digest.week, url=url, trigger=trigger,
            status="ok" if result.ok else "failed", attempts=result.attempts,
            http_status=result.http_status, error=result.error, created_at=started,
            delivered_at=now() if result.ok else None))
    return result


def sent_weeks(session: Session, *, project_id: int, url: str) -> set[str]:
    """Weeks already delivered successfully to ``url``."""
    d = DELIVERY_T.c
    return set(session.execute(select(d.week).where(
        d.project_id == project_id, d.url == url, d.status == "ok")).scalars())


def last_failure(session: Session, *, project_id: int, url: str, week: str) -> float | None:
    """When the latest failed delivery of ``week`` to ``url`` started, if any."""
    d = DELIVERY_T.c
    return session.execute(select(func.max(d.created_at)).where(
        d.project_id == project_id, d.url == url, d.week == week, d.status == "failed")
    ).scalar_one_or_none()
