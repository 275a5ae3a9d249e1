"""One error shape on every route: ``application/problem+json`` (RFC 9457).

The test walks every route of ``create_app().routes`` — including routes added after this test
was written — and provokes failures generically:

* every path parameter set to an id that cannot exist (a trace id route must answer 404);
* on GET, each query parameter, one at a time, set to a value no typed parameter accepts,
  and the request with no parameters at all (missing required parameters);
* on POST/PUT/PATCH, a body that is not JSON;
* a method the path does not support (405) — possible on every path, so every route is
  covered by at least one provoked error.

Every 4xx/5xx answer must be problem+json with an integer ``status`` equal to the HTTP status
and string ``type``, ``title`` and ``detail``; no provocation may cause a 5xx.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tracestore.api import create_app
from tracestore.api.pages import router as pages_router
from tracestore.config import Settings

# The analyst pages answer HTML, their errors included (tests/tracestore/test_pages.py); the
# API's error shape is problem+json.
SKIP_PATHS = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc", "/static-offline-docs",
              *(getattr(r, "path", "") for r in pages_router.routes)}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MISSING_ID = "no-such-id-0000"
BAD_VALUE = "§not-valid§"


def _walk(routes: Any) -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, descending into included routers (FastAPI ≥ 0.16x
    keeps included routers as lazy ``_IncludedRouter`` entries in ``app.routes``)."""
    for r in routes:
        contexts = getattr(r, "effective_route_contexts", None)
        if contexts is not None:
            for c in contexts():
                yield c.path, set(getattr(c.original_route, "methods", None) or ())
        elif getattr(r, "path", None) is not None:
            yield r.path, set(getattr(r, "methods", None) or ())


_APP = create_app(Settings())
OPENAPI: dict[str, Any] = _APP.openapi()


def _routes() -> list[tuple[str, set[str]]]:
    by_path: dict[str, set[str]] = {}
    for path, methods in _walk(_APP.routes):
        if path not in SKIP_PATHS:
            by_path.setdefault(path, set()).update(methods - {"HEAD", "OPTIONS"})
    return sorted(by_path.items())


ROUTES = _routes()


def assert_problem(r: Response) -> dict[str, Any]:
    assert r.status_code < 500, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    assert r.headers["content-type"].split(";")[0] == "application/problem+json", (
        f"{r.request.method} {r.request.url}: {r.headers['content-type']} {r.text[:200]}")
    body = r.json()
    assert isinstance(body["status"], int) and not isinstance(body["status"], bool)
    assert body["status"] == r.status_code
    for key in ("type", "title", "detail"):
        assert isinstance(body[key], str) and body[key], (key, body)
    return body


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", MISSING_ID, path)


def _operation(openapi: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    op: dict[str, Any] = openapi["paths"].get(path, {}).get(method.lower(), {})
    return op


def test_the_walk_finds_the_core_routes() -> None:
    paths = dict(ROUTES)
    assert paths["/api/v1/traces"] >= {"GET", "POST"}
    assert "GET" in paths["/api/v1/traces/{trace_id}"]
    assert "GET" in paths["/api/v1/traces/{trace_id}/graph"]
    assert "GET" in paths["/healthz"]


@pytest.mark.parametrize(("path", "methods"), ROUTES, ids=[p for p, _ in ROUTES])
def test_every_route_fails_with_problem_json(
    client: TestClient, path: str, methods: set[str]
) -> None:
    url = _fill(path)
    provoked = 0
    for method in sorted(methods):
        op = _operation(OPENAPI, path, method)
        if "{" in path and method == "GET":
            r = client.request(method, url)
            if "{trace_id}" in path:
                assert r.status_code == 404, (method, path, r.status_code, r.text)
            if r.status_code >= 400:
                assert_problem(r)
                provoked += 1
        if method in ("POST", "PUT", "PATCH") and (
            "requestBody" in op or not op
        ):
            r = client.request(method, url, content=b"{not json",
                               headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)
            assert_problem(r)
            provoked += 1
        if method != "GET":
            # Only GET is probed parameter by parameter: a write that happens to accept a
            # value would do real work. Writes were probed above with a body that is not JSON.
            continue
        params = [p for p in op.get("parameters", []) if p.get("in") == "query"]
        r = client.request(method, url)  # no parameters: required ones are missing
        if r.status_code >= 400:
            assert_problem(r)
            provoked += 1
        for p in params:
            r = client.request(method, url, params={p["name"]: BAD_VALUE})
            if r.status_code >= 400:
                body = assert_problem(r)
                assert r.status_code in (400, 404, 422), body
                provoked += 1
    unsupported = [m for m in METHODS if m not in methods]
    if unsupported:
        r = client.request(unsupported[0], url)
        assert r.status_code == 405, (unsupported[0], path, r.status_code)
        assert_problem(r)
        provoked += 1
    assert provoked > 0, f"no error could be provoked on {path}"


def test_typed_query_parameters_are_422_problem_json(client: TestClient) -> None:
    r = client.get("/api/v1/traces", params={"limit": "many"})
    body = assert_problem(r)
    assert r.status_code == 422 and "limit" in body["detail"]


def test_unknown_route_is_404_problem_json(client: TestClient) -> None:
    r = client.get("/api/v1/no-such-route")
    body = assert_problem(r)
    assert r.status_code == 404 and "/api/v1/no-such-route" in body["detail"]


def test_wrong_method_is_405_problem_json(client: TestClient) -> None:
    r = client.delete("/api/v1/traces")
    assert_problem(r)
    assert r.status_code == 405


def test_unknown_trace_is_404_problem_json(client: TestClient) -> None:
    for url in ("/api/v1/traces/nope", "/api/v1/traces/nope/graph"):
        r = client.get(url)
        body = assert_problem(r)
        assert r.status_code == 404 and "nope" in body["detail"]
