"""Dependencies shared by the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tracestore.auth import (
    SCOPES,
    credentials_from_header,
    has_active_keys,
    is_loopback,
    public_bind,
    verify_key,
)
from tracestore.config import Settings
from tracestore.errors import Forbidden, Unauthorized
from tracestore.ingest.pipeline import Writer, project_id_for

__all__ = [
    "PAGE_COOKIE",
    "AdminProjectDep",
    "EngineDep",
    "IngestProjectDep",
    "ProjectCtx",
    "ProjectDep",
    "ReadProjectDep",
    "RouteInfo",
    "SessionDep",
    "SettingsDep",
    "WriterDep",
    "api_routes",
    "current_project",
    "document_auth",
    "get_session",
    "require",
    "required_scope",
]

log = logging.getLogger("tracestore.auth")

# The cookie that carries a page visitor's API key (HttpOnly, SameSite=Strict).
PAGE_COOKIE = "tracestore_key"


@dataclass(frozen=True)
class ProjectCtx:
    """The project a request acts on, and what the caller may do there."""

    id: int
    name: str
    scopes: frozenset[str]


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_writer(request: Request) -> Writer:
    writer: Writer = request.app.state.writer
    return writer


def _authenticate(request: Request) -> ProjectCtx:
    """Who is calling: the project and scopes of the request's API key. With no active keys
    and a loopback bind the server runs open on the ``default`` project (README, "Auth")."""
    cached: ProjectCtx | None = getattr(request.state, "project_ctx", None)
    if cached is not None:
        return cached
    engine = get_engine(request)
    settings = get_settings(request)
    key = credentials_from_header(request.headers.get("authorization"))
    if key is None and getattr(request.state, "page", False):
        # Pages also take the key entered once on /login (api/pages/routes.py).
        key = getattr(request.state, "page_key", None) or request.cookies.get(PAGE_COOKIE)
    # The session is closed before project_id_for takes a connection of its own: a request
    # holding one connection while it waits for a second would, with as many requests at
    # once as the pool has connections (a burst of ingest), hold them all and wait for the
    # pool's timeout (test_authentication_holds_one_connection_at_a_time).
    with Session(engine) as session:
        info = None if key is None else verify_key(session, key)
        open_mode = (info is None and is_loopback(settings.host)
                     and not has_active_keys(session))
    if info is not None:
        ctx = ProjectCtx(info.project_id, info.project, info.scopes)
    elif open_mode:
        _refuse_open_mode_on_a_public_bind(request)
        # Open dev mode ignores whatever credentials a client sends: the Langfuse SDK
        # refuses to run without keys and always sends Basic auth, and a working local
        # setup must not turn into 401s because of it (docs/api.md, "Auth").
        ctx = ProjectCtx(project_id_for(engine, settings.project), settings.project,
                         frozenset(SCOPES))
    elif key is None:
        raise Unauthorized("an API key is required: send Authorization: Bearer <key>")
    else:
        # Log the lookup prefix only: a key, even a wrong one, never reaches the logs.
        log.info("rejected API key with prefix %s", key[:11])
        raise Unauthorized("unknown or revoked API key")
    request.state.project_ctx = ctx
    return ctx


def _refuse_open_mode_on_a_public_bind(request: Request) -> None:
    """Open mode needs a loopback socket, whatever the host setting says: ``uvicorn --factory
    tracestore.api:create_app --host 0.0.0.0`` never reads it. The listening sockets are read
    once per app (they do not change once it serves)."""
    state = request.app.state
    bound: str | None = getattr(state, "public_bind", None)
    if bound is None:  # requests come only once the server's sockets are bound
        bound = state.public_bind = public_bind(request.scope.get("server")) or ""
    if bound:
        raise Unauthorized(
            f"no API keys exist and this server listens on {bound}, which is not a loopback "
            "address, so it will not run open: create a key with `tracestore keys create "
            "--project P --scope admin` and send it, or bind to 127.0.0.1")


def require(scope: str | None = None) -> Callable[[Request], ProjectCtx]:
    """A dependency that authenticates the caller and demands ``scope`` (``admin`` implies
    all). ``None`` derives it from the method: ``GET``/``HEAD`` need ``read``, others ``admin``
    (ingest routes ask for ``ingest`` explicitly)."""

    def dependency(request: Request) -> ProjectCtx:
        ctx = _authenticate(request)
        needed = scope or ("read" if request.method in ("GET", "HEAD") else "admin")
        if needed not in ctx.scopes and "admin" not in ctx.scopes:
            raise Forbidden(f"this API key lacks the {needed!r} scope this route needs")
        return ctx

    dependency.tracestore_scope = scope  # type: ignore[attr-defined]  # read by required_scope
    return dependency


@dataclass(frozen=True)
class RouteInfo:
    """One API route as served: its full path, methods and dependency tree."""

    path: str
    methods: frozenset[str]
    dependant: Any


def api_routes(app: FastAPI) -> list[RouteInfo]:
    """Every API route of ``app``, flattened across included routers (FastAPI ≥ 0.16x
    nests them; older versions list them flat)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        return [RouteInfo(r.path_format, frozenset(r.methods or ()), r.dependant)
                for r in app.routes if isinstance(r, APIRoute)]
    # A context's path and methods are typed optional; an APIRoute's always has both.
    return [RouteInfo(c.path_format or "", frozenset(c.methods or ()), c.dependant)
            for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def required_scope(route: RouteInfo | APIRoute) -> str | None:
    """The scope ``route`` demands, or None for a public route (health, docs)."""
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        if dep.call is not None and hasattr(dep.call, "tracestore_scope"):
            scope: str | None = dep.call.tracestore_scope
            if scope:
                return scope
            return "read" if (route.methods or set()) <= {"GET", "HEAD"} else "admin"
        stack.extend(dep.dependencies)
    return None


current_project = require()


def document_auth(app: FastAPI) -> None:
    """Make the OpenAPI document list 401 and 403 (problem+json) on every route that needs a
    key, whoever wrote the route — clients and schemathesis rely on the documented codes."""
    from tracestore.api.problems import PROBLEM_RESPONSES

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = build()
        for route in api_routes(app):
            if required_scope(route) is None:
                continue
            for method in route.methods:
                op = doc.get("paths", {}).get(route.path, {}).get(method.lower())
                if op is not None:
                    for code in ("401", "403"):
                        op.setdefault("responses", {}).setdefault(
                            code, PROBLEM_RESPONSES[int(code)])
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def get_session(request: Request) -> Iterator[Session]:
    with Session(get_engine(request)) as session:
        yield session


ProjectDep = Annotated[ProjectCtx, Depends(current_project)]
ReadProjectDep = Annotated[ProjectCtx, Depends(require("read"))]
IngestProjectDep = Annotated[ProjectCtx, Depends(require("ingest"))]
AdminProjectDep = Annotated[ProjectCtx, Depends(require("admin"))]
SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
WriterDep = Annotated[Writer, Depends(get_writer)]
EngineDep = Annotated[Engine, Depends(get_engine)]
