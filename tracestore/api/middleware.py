"""ASGI middleware: the body of every request is received here, bounded in size and time, and
ingest requests are admitted through :class:`~tracestore.ingest.admission.Admission`
(docs/limits.md).

For ``POST`` to an ingest route (found by the route's required scope), and, but for the
authentication and the write slot, for every ``POST``/``PUT``/``PATCH``/``DELETE``:

* a declared ``Content-Length`` over ``max_body_bytes`` is answered 413 before a byte is read;
* the body is read chunk by chunk, each chunk counted against ``max_pending_write_bytes`` as it
  arrives (:meth:`Admission.take`), so bytes *received*, not declared, are what is admitted;
  a chunked body is cut with 413 as soon as it passes ``max_body_bytes``;
* the caller is authenticated first (``ingest`` scope, :func:`~tracestore.api.deps.require`;
  the route reuses the result), so a client without a key never holds admitted bytes;
* the body must keep arriving: every ``body_timeout_seconds`` must bring
  ``body_min_bytes_per_second`` times as many bytes (or the rest of the body), else 408 and the
  connection is closed. A client sending 1 byte a second is cut off after one window, and one
  that sends fast and then stalls holds its bytes for one window at most (Apache's
  ``mod_reqtimeout`` extends a total timeout by the bytes received, which lets it stall);
* once complete, the request takes a write slot (:meth:`Admission.enter`) and the route gets
  the buffered body.

These answers close the connection (``Connection: close``): the rest of the body is never
read. OTLP protobuf requests get them as a ``google.rpc.Status``, as the route's own errors.
uvicorn has no body timeout of its own (its ``timeout_keep_alive`` covers idle connections
between requests), so the bound lives here and holds however the app is served.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracestore.api.deps import api_routes, require, required_scope
from tracestore.api.problems import problem_response
from tracestore.config import Settings
from tracestore.errors import PayloadTooLarge, RequestTimeout, TracestoreError
from tracestore.ingest.admission import Admission

__all__ = ["AdmissionMiddleware"]

PROTOBUF = ("application/x-protobuf", "application/protobuf")
# google.rpc.Code (google/rpc/code.proto) of the statuses answered here
_GRPC_CODES = {401: 16, 403: 7, 408: 4, 413: 3, 503: 14}
# The ingest routes' own dependency: its answer is cached on the request's state.
_INGEST = require("ingest")


_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _Disconnected(Exception):
    """The client went away before its body was complete."""


class AdmissionMiddleware:
    """ASGI middleware receiving every request body under the limits and admitting ``POST``
    requests to ingest routes (found by each route's required scope, so routes added later
    are covered as soon as they depend on the ``ingest`` scope)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._paths: frozenset[str] | None = None

    def _ingest_paths(self, fastapi_app: Any) -> frozenset[str]:
        if self._paths is None:
            self._paths = frozenset(r.path for r in api_routes(fastapi_app)
                                    if required_scope(r) == "ingest")
        return self._paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        admission: Admission | None = getattr(state, "admission", None)
        settings: Settings | None = getattr(state, "settings", None)
        if admission is None or settings is None:
            await self.app(scope, receive, send)
            return
        # Other routes' bodies (prices, keys, alerts...) are bounded the same way, and held
        # bytes count against the same budget; only ingest takes a write slot.
        ingest = (scope["method"] == "POST"
                  and scope["path"] in self._ingest_paths(scope["app"]))
        held = 0
        ticket: int | None = None
        try:
            try:
                if ingest:
                    await run_in_threadpool(_INGEST, Request(scope))  # DB and PBKDF2: a thread
                body, held = await _receive_body(scope, receive, admission, settings)
                if ingest:
                    ticket = admission.enter()
            except TracestoreError as exc:
                await _refuse(exc, scope, receive, send)
                return
            except _Disconnected:
                return
            await self.app(scope, _replay(body, receive), send)
        finally:
            if ticket is not None:
                admission.leave(ticket)
            admission.release(held)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _receive_body(scope: Scope, receive: Receive, admission: Admission,
                        settings: Settings) -> tuple[bytes, int]:
    """The whole body, and the bytes it took in ``admission`` (the caller releases them).
    When this raises, it has released what it took itself."""
    limit = settings.max_body_bytes
    declared = _declared_length(scope)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit} bytes "
                              "(setting max_body_bytes)", extra={"limit_bytes": limit})
    chunks: list[bytes] = []
    received = 0
    # The body arrives in windows of body_timeout_seconds, each of which must bring
    # body_min_bytes_per_second x body_timeout_seconds bytes (or the rest of the body): a
    # client cannot send fast, hold its bytes, and then stall.
    window = settings.body_timeout_seconds
    need = settings.body_min_bytes_per_second * window
    start = window_start = time.monotonic()
    window_bytes = 0
    try:
        while True:
            with anyio.move_on_after(max(window_start + window - time.monotonic(), 0)) as w:
                message = await receive()
            if w.cancelled_caught:
                raise RequestTimeout(
                    f"request body not received in time: {received} bytes in "
                    f"{time.monotonic() - start:.1f} s, under {need:.0f} bytes in "
                    f"{window:g} s (settings body_timeout_seconds, body_min_bytes_per_second)")
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            if received + len(chunk) > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes "
                                      "(setting max_body_bytes)", extra={"limit_bytes": limit})
            if chunk:
                admission.take(len(chunk), held=received)
                received += len(chunk)
                chunks.append(chunk)
                window_bytes += len(chunk)
                if window_bytes >= need:
                    window_start, window_bytes = time.monotonic(), 0
            if not message.get("more_body", False):
                return b"".join(chunks), received
    except BaseException:
        admission.release(received)
        raise


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the buffered body once, then the client's own messages
    (``http.disconnect``)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(exc: TracestoreError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer ``exc`` (problem+json, or a google.rpc.Status to protobuf clients) and close
    the connection: the unread rest of the body is never read."""
    ctype = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
    resp: Response
    if ctype.decode("latin-1") in PROTOBUF:
        from tracestore.api.routes.otlp import status_pb  # routes import this module's package

        resp = Response(status_pb(_GRPC_CODES.get(exc.status, 13), exc.detail),
                        status_code=exc.status, media_type=PROTOBUF[0])
        if "retry_after" in exc.extra:
            resp.headers["Retry-After"] = str(exc.extra["retry_after"])
    else:
        resp = problem_response(exc.status, exc.title, exc.detail, instance=scope["path"],
                                **exc.extra)
    if exc.status == 401:  # as the app's own 401s (api/problems.py)
        resp.headers["WWW-Authenticate"] = 'Bearer realm="tracestore"'
    resp.headers["Connection"] = "close"
    await resp(scope, receive, send)
