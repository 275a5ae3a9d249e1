"""ASGI middleware: admission of ingest requests through
:class:`~tracestore.ingest.admission.Admission`."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tracestore.api.deps import api_routes, required_scope
from tracestore.api.problems import problem_response
from tracestore.errors import Overloaded
from tracestore.ingest.admission import Admission

__all__ = ["AdmissionMiddleware"]


class AdmissionMiddleware:
    """ASGI middleware admitting ``POST`` requests to ingest routes through
    ``app.state.admission`` (found by each route's required scope, so routes added later are
    covered as soon as they depend on the ``ingest`` scope)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._paths: frozenset[str] | None = None

    def _ingest_paths(self, fastapi_app: Any) -> frozenset[str]:
        if self._paths is None:
            self._paths = frozenset(r.path for r in api_routes(fastapi_app)
                                    if required_scope(r) == "ingest")
        return self._paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST"
                or scope["path"] not in self._ingest_paths(scope["app"])):
            await self.app(scope, receive, send)
            return
        admission: Admission | None = getattr(scope["app"].state, "admission", None)
        if admission is None:
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        nbytes = int(length) if length.isdigit() else 0
        try:
            ticket = admission.enter(nbytes)
        except Overloaded as exc:
            resp = problem_response(exc.status, exc.title, exc.detail, instance=scope["path"],
                                    **exc.extra)
            await resp(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            admission.leave(ticket)
