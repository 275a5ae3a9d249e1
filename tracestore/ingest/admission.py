"""Admission control for the write path: backpressure instead of unbounded memory.

Every ingest request (any route whose scope is ``ingest``) must take a ticket before its body
is read. At most ``max_pending_writes`` requests and ``max_pending_write_bytes`` declared body
bytes are in flight; beyond that the request is answered at once with 503 and ``Retry-After``
(OTLP exporters retry 503 with back-off), so a write path that falls behind costs bounded
memory. A single request is always admitted when nothing else is in flight, so any body
under ``max_body_bytes`` can get through.

The durability rule is unchanged: a 2xx still means "committed"; a 503 means "not stored".

>>> a = Admission(max_requests=1, max_bytes=100)
>>> t = a.enter(60)
>>> a.enter(10)  # doctest: +ELLIPSIS
Traceback (most recent call last):
tracestore.errors.Overloaded: write queue full: 1 request(s), 60 bytes in flight (limits: 1 ...)
>>> a.leave(t); a.in_flight
(0, 0)
"""

from __future__ import annotations

import threading

from tracestore.errors import Overloaded

__all__ = ["RETRY_AFTER_S", "Admission"]

RETRY_AFTER_S = 1  # a write takes milliseconds; one second lets the queue drain


class Admission:
    """Counts in-flight ingest requests and bytes; thread-safe."""

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._requests = 0
        self._bytes = 0
        self.rejected = 0

    @property
    def in_flight(self) -> tuple[int, int]:
        return self._requests, self._bytes

    def enter(self, nbytes: int) -> int:
        """Admit a request declaring ``nbytes``; returns the ticket to :meth:`leave` with."""
        with self._lock:
            if self._requests and (self._requests >= self.max_requests
                                   or self._bytes + nbytes > self.max_bytes):
                self.rejected += 1
                raise Overloaded(
                    f"write queue full: {self._requests} request(s), {self._bytes} bytes in "
                    f"flight (limits: {self.max_requests} requests, {self.max_bytes} bytes)",
                    retry_after=RETRY_AFTER_S,
                )
            self._requests += 1
            self._bytes += nbytes
            return nbytes

    def leave(self, ticket: int) -> None:
        with self._lock:
            self._requests -= 1
            self._bytes -= ticket
