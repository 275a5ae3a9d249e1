"""The analyst pages: overview, workflow, paths, findings, trace, prices and the digest, server
rendered with Jinja2 (autoescaped) over the same report functions as the REST routes.

Auth is the API's: open on a loopback dev server with no keys; otherwise a read-scope key sent
as ``Authorization: Bearer`` or entered once on ``/login`` (kept in an HttpOnly,
SameSite=Strict cookie). Another project's trace is a 404 page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracestore.api.deps import PAGE_COOKIE, ProjectCtx, get_session, require
from tracestore.api.pages import data, stored
from tracestore.api.pages.window import PageWindow, page_window
from tracestore.digest import render
from tracestore.digest.cache import cached_digest
from tracestore.errors import TracestoreError, Unauthorized
from tracestore.pricing.book import load_book, override_public
from tracestore.store.engine import upsert
from tracestore.store.read import get_trace
from tracestore.store.tables import SETTING_T

__all__ = ["CSP", "DOCS_CSP", "HtmlCsp", "router"]

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

# No external origin anywhere; the pages run no script at all.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")

# Swagger UI and ReDoc (served from fastapi-offline's files) run an inline start-up script.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
            "'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; "
            "frame-ancestors 'none'")

Opt = Annotated[str | None, Query(max_length=200)]
SessionPage = Annotated[Session, Depends(get_session)]
_read = require("read")


def _usd(x: float | None) -> str:
    if x is None:
        return "–"
    return f"${x:,.4f}" if abs(x) < 1 else f"${x:,.2f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


templates.env.filters["usd"] = _usd
templates.env.filters["pct"] = _pct


def page_project(request: Request) -> ProjectCtx | None:
    """The caller's project for a page (the key from the header or the page cookie), or None
    when a key is needed and missing (the page then asks for one)."""
    request.state.page = True
    try:
        return _read(request)
    except Unauthorized:
        return None


PageProject = Annotated[ProjectCtx | None, Depends(page_project)]


def _page(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    resp = templates.TemplateResponse(request, template, ctx, status_code=status)
    resp.headers["content-security-policy"] = CSP
    resp.headers["x-content-type-options"] = "nosniff"
    resp.headers["referrer-policy"] = "same-origin"
    return resp


def _guard(request: Request, project: ProjectCtx | None,
           build: Callable[[ProjectCtx], HTMLResponse]) -> Response:
    """Ask for a key when there is none; render errors as pages with their status."""
    if project is None:
        return _page(request, "login.html", 401, next=request.url.path, error=None)
    try:
        return build(project)
    except TracestoreError as exc:
        return _page(request, "error.html", exc.status, title=exc.title, detail=str(exc))


def _window(session: Session, project: ProjectCtx, week: str | None, **f: str | None
            ) -> PageWindow:
    return page_window(session, project.id, time.time(), week=week, **f)


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, project: PageProject, session: SessionPage,
                  week: Opt = None, workflow: Opt = None, team: Opt = None,
                  feature: Opt = None, model: Opt = None) -> Response:
    def build(p: ProjectCtx) -> HTMLResponse:
        w = _window(session, p, week, workflow=workflow, team=team, feature=feature,
                    model=model)
        return _page(request, "overview.html", w=w, nav="overview", project=p,
                     **stored.overview(session, p.id, w))
    return _guard(request, project, build)


@router.get("/workflows/{name}", response_class=HTMLResponse)
def workflow_page(request: Request, name: str, project: PageProject, session: SessionPage,
                  week: Opt = None, team: Opt = None, feature: Opt = None,
                  model: Opt = None) -> Response:
    def build(p: ProjectCtx) -> HTMLResponse:
        w = _window(session, p, week, workflow=name, team=team, feature=feature, model=model)
        return _page(request, "workflow.html", w=w, nav="overview", project=p,
                     can_edit="admin" in p.scopes,
                     **stored.workflow(session, p.id, name, w, request.app.state.writer.pricer))
    return _guard(request, project, build)


def _float_or_none(form: dict[str, list[str]], key: str) -> float | None:
    raw = (form.get(key) or [""])[0].strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise TracestoreError(f"{key} must be a number of dollars, not {raw!r}") from None
    if not 0 <= value < 1e9:
        raise TracestoreError(f"{key} must be between 0 and 1e9 dollars")
    return value


@router.post("/workflows/{name}", response_class=HTMLResponse)
async def workflow_settings(request: Request, name: str, project: PageProject,
                            session: SessionPage) -> Response:
    """The workflow page's settings form (admin scope): baseline and outcome value."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))

    def build(p: ProjectCtx) -> HTMLResponse:
        if "admin" not in p.scopes:
            return _page(request, "error.html", 403, title="Forbidden",
                         detail="editing a workflow needs a key with the admin scope")
        row = {"project_id": p.id, "name": name,
               "baseline_cost_per_outcome_usd": _float_or_none(form, "baseline"),
               "outcome_value_usd": _float_or_none(form, "value"), "description": None}
        upsert(session, SETTING_T, [row], keys=["project_id", "name"])
        session.commit()
        return _page(request, "error.html", 200, title="Saved",
                     detail=f"settings of {name} saved")
    return _guard(request, project, build)


@router.get("/paths", response_class=HTMLResponse)
def paths_page(request: Request, project: PageProject, session: SessionPage,
               week: Opt = None, workflow: Opt = None, team: Opt = None,
               feature: Opt = None, model: Opt = None, signature: Opt = None) -> Response:
    def build(p: ProjectCtx) -> HTMLResponse:
        w = _window(session, p, week, workflow=workflow, team=team, feature=feature,
                    model=model)
        shown = stored.paths(session, p.id, w, signature)  # stored for a complete week
        return _page(request, "paths.html", w=w, nav="paths", project=p,
                     signature=signature, **shown)
    return _guard(request, project, build)


@router.get("/findings", response_class=HTMLResponse)
def findings_page(request: Request, project: PageProject, session: SessionPage,
                  week: Opt = None, workflow: Opt = None, team: Opt = None,
                  feature: Opt = None, model: Opt = None, code: Opt = None,
                  analyzer: Opt = None, cursor: Annotated[str | None, Query(max_length=400)] = None
                  ) -> Response:
    def build(p: ProjectCtx) -> HTMLResponse:
        w = _window(session, p, week, workflow=workflow, team=team, feature=feature,
                    model=model)
        items, nxt = data.findings_page(session, p.id, w, code=code, analyzer=analyzer,
                                        limit=50, cursor=cursor)
        return _page(request, "findings.html", w=w, nav="findings", project=p, findings=items,
                     next_cursor=nxt, code=code, analyzer=analyzer)
    return _guard(request, project, build)


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
def trace_page(request: Request, trace_id: str, project: PageProject,
               session: SessionPage) -> Response:
    def build(p: ProjectCtx) -> HTMLResponse:
        detail = get_trace(session, project_id=p.id, trace_id=trace_id)
        return _page(request, "trace.html", nav="", project=p, t=detail,
                     **data.trace_view(detail))
    return _guard(request, project, build)


@router.get("/prices", response_class=HTMLResponse)
def prices_page(request: Request, project: PageProject, session: SessionPage,
                week: Opt = None) -> Response:
    def build(p: ProjectCtx) -> HTMLResponse:
        w = _window(session, p, week)
        now = time.time()
        book = [override_public(o, at=now) for o in load_book(session, project_id=p.id)]
        unpriced = stored.prices(session, p.id, w)  # stored for a complete week
        return _page(request, "prices.html", w=w, nav="prices", project=p, book=book,
                     unpriced=unpriced)
    return _guard(request, project, build)


@router.get("/digest", response_class=HTMLResponse)
def digest_page(request: Request, project: PageProject, session: SessionPage,
                week: Opt = None) -> Response:
    """The weekly digest as its self-contained HTML page, links pointing at these pages."""
    def build(p: ProjectCtx) -> HTMLResponse:
        w = _window(session, p, week)
        settings = request.app.state.settings
        digest = cached_digest(request.app.state.engine, project_id=p.id, project=p.name,
                               week=w.week, now=time.time())
        base = settings.digest_base_url or f"http://{settings.host}:{settings.port}"
        body, _ = render(digest, "html", base_url=base)
        resp = HTMLResponse(body)
        resp.headers["content-security-policy"] = CSP.replace("style-src 'self'",
                                                              "style-src 'unsafe-inline'")
        return resp
    return _guard(request, project, build)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: Opt = "/") -> HTMLResponse:
    return _page(request, "login.html", next=next if (next or "").startswith("/") else "/",
                 error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check a key once and keep it in an HttpOnly, SameSite=Strict cookie."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    target = (form.get("next") or ["/"])[0]
    target = target if target.startswith("/") and not target.startswith("//") else "/"
    request.state.page = True
    request.state.page_key = key
    try:
        _read(request)
    except TracestoreError as exc:
        return _page(request, "login.html", 401, next=target, error=str(exc))
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(PAGE_COOKIE, key, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path="/")
    return resp


@router.get("/static/pages.css")
def stylesheet() -> Response:
    return Response((HERE / "static" / "pages.css").read_bytes(), media_type="text/css",
                    headers={"cache-control": "max-age=3600"})



class HtmlCsp:
    """ASGI middleware: every HTML answer gets a Content-Security-Policy with no external origin
    (the pages set their own stricter one; /docs, /redoc and the digest page get DOCS_CSP).
    Pure ASGI, so the body streams through untouched (no response buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_csp(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=message["headers"])
                if (headers.get("content-type", "").startswith("text/html")
                        and "content-security-policy" not in headers):
                    headers["content-security-policy"] = DOCS_CSP
            await send(message)

        await self.app(scope, receive, send_with_csp)


@router.get("/favicon.ico")
def favicon() -> Response:
    """No icon (browsers ask for one on every page; a 404 would be a console error)."""
    return Response(status_code=204)
