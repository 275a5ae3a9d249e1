"""Admission control for the write path: backpressure instead of unbounded memory.

An ingest request (any route whose scope is ``ingest``) is admitted in two steps by
:class:`~tracestore.api.middleware.AdmissionMiddleware`:

1. **While its body arrives**, every chunk is counted with :meth:`Admission.take` against
   ``max_pending_write_bytes``: the bytes actually *received* by all ingest requests, never the
   ``Content-Length`` they declare. A client that declares a huge body and sends nothing (or 1
   byte a second) holds only what it sent, so it cannot shut out the others.
2. **Once the body is complete**, the request takes one of ``max_pending_writes`` slots with
   :meth:`Admission.enter` for its decoding and write.

Beyond either limit the request is answered at once with 503 and ``Retry-After`` (OTLP
exporters retry 503 with back-off). A request is always admitted when nothing else is in
flight, so any body under ``max_body_bytes`` can get through.

The durability rule is unchanged: a 2xx still means "committed"; a 503 means "not stored".

>>> a = Admission(max_requests=1, max_bytes=100)
>>> t = a.enter(60)
>>> a.enter(10)  # doctest: +ELLIPSIS
Traceback (most recent call last):
tracestore.errors.Overloaded: write queue full: 1 request(s), 60 bytes in flight (limits: ...)
>>> a.take(30, held=0); a.in_flight
(1, 90)
>>> a.take(20, held=30)  # doctest: +ELLIPSIS
Traceback (most recent call last):
tracestore.errors.Overloaded: write queue full: 1 request(s), 90 bytes in flight (limits: ...)
>>> a.release(30); a.leave(t); a.in_flight
(0, 0)
"""

from __future__ import annotations

import threading

from tracestore.errors import Overloaded

__all__ = ["RETRY_AFTER_S", "Admission"]

RETRY_AFTER_S = 1  # a write takes milliseconds; one second lets the queue drain


class Admission:
    """Counts in-flight ingest requests and received body bytes; thread-safe."""

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

    def _full(self) -> Overloaded:
        self.rejected += 1
        return Overloaded(
            f"write queue full: {self._requests} request(s), {self._bytes} bytes in "
            f"flight (limits: {self.max_requests} requests, {self.max_bytes} bytes)",
            retry_after=RETRY_AFTER_S,
        )

    def take(self, nbytes: int, *, held: int) -> None:
        """Count ``nbytes`` more received bytes of a request that already holds ``held``;
        refused when that passes ``max_bytes`` and other requests hold bytes too. The caller
        :meth:`release`\\ s everything it took (``held + nbytes`` once this returned)."""
        with self._lock:
            if self._bytes > held and self._bytes + nbytes > self.max_bytes:
                raise self._full()
            self._bytes += nbytes

    def release(self, nbytes: int) -> None:
        with self._lock:
            self._bytes -= nbytes

    def enter(self, nbytes: int = 0) -> int:
        """Take a request slot (and ``nbytes`` not yet counted by :meth:`take`); returns the
        ticket to :meth:`leave` with."""
        with self._lock:
            if self._requests and (self._requests >= self.max_requests
                                   or self._bytes + nbytes > self.max_bytes):
                raise self._full()
            self._requests += 1
            self._bytes += nbytes
            return nbytes

    def leave(self, ticket: int) -> None:
        with self._lock:
            self._requests -= 1
            self._bytes -= ticket
