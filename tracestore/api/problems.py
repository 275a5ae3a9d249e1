"""One error shape everywhere: ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from tracestore.api.deps import api_routes
from tracestore.errors import TracestoreError

__all__ = [
    "PROBLEM_JSON",
    "PROBLEM_RESPONSES",
    "allowed_methods",
    "install_problem_handlers",
    "problem_response",
]

log = logging.getLogger("tracestore.api")

PROBLEM_JSON = "application/problem+json"

_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": desc, "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}}}
    for code, desc in (
        (400, "Bad request"),
        (401, "Missing or unknown credentials"),
        (403, "Key lacks the scope"),
        (404, "Not found"),
        (422, "Validation failed"),
    )
}


def problem_response(
    status: int, title: str, detail: str, *, instance: str | None = None, **extra: Any
) -> Response:
    body: dict[str, Any] = {
        "type": f"https://tracestore.dev/problems/{status}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON,
                    headers=headers)


def allowed_methods(app: FastAPI, path: str) -> str:
    """The ``Allow`` header of a 405 on ``path``: the methods of every route whose path
    matches, not only those of the first (GET and POST ``/api/v1/traces`` live in different
    routers, and Starlette's own header named only the first one's)."""
    methods: set[str] = set()
    for route in api_routes(app):
        if compile_path(route.path)[0].match(path):
            methods |= route.methods
    return ", ".join(sorted(methods - {"HEAD"}))


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(TracestoreError)
    async def _tracestore_error(request: Request, exc: TracestoreError) -> Response:
        if exc.status >= 500 and exc.status != 503:
            log.exception("internal error on %s", request.url.path, exc_info=exc)
        resp = problem_response(exc.status, exc.title, exc.detail,
                                instance=request.url.path, **exc.extra)
        if exc.status == 401:  # RFC 9110 §11.6.1: a 401 names the scheme to use
            resp.headers["WWW-Authenticate"] = 'Bearer realm="tracestore"'
        return resp

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return problem_response(
            422, "Validation failed", f"{where}: {first['msg']}",
            instance=request.url.path, errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized"}
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}"
        resp = problem_response(exc.status_code, titles.get(exc.status_code, "Error"), detail,
                                instance=request.url.path)
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        if exc.status_code == 405:
            resp.headers["Allow"] = allowed_methods(request.app, request.url.path)
        return resp

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(500, "Internal error",
                                "an unexpected error occurred; it has been logged",
                                instance=request.url.path)
