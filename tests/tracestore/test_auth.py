"""API keys and project isolation through the real app, on every backend.

The route walk is generic: it visits every route of ``create_app().routes``, so routes other
engineers add later are covered without touching this file.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.pool import QueuePool

from tracestore.api import create_app
from tracestore.api.deps import RouteInfo, api_routes, required_scope
from tracestore.api.pages import router as pages_router
from tracestore.auth import create_key
from tracestore.cli.main import cli
from tracestore.config import Settings
from tracestore.errors import TracestoreError
from tracestore.ingest.pipeline import project_id_for
from tracestore.store.engine import make_engine, session_scope
from tracestore.store.tables import ApiKey

# Liveness probes, the offline API docs (the contract itself is public) and the operator
# metrics (counts only, projects by id: docs/operations.md) run without credentials.
PUBLIC_ROUTES = {"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/metrics"}
# The analyst pages authenticate inside (a login page when no key; tests/tracestore/
# test_pages.py checks their keys and isolation), so the route walk leaves them out.
PAGE_ROUTES = {getattr(r, "path", "") for r in pages_router.routes}
MARKER = "marker-of-project-a-7f3c"  # appears in project A's data and nowhere else
TRACE_A = "trace-a-1"  # project A's trace (its id alone may be echoed back in a 404)


@dataclass
class Keys:
    admin: str
    ingest: str
    read: str
    other_admin: str  # project B

    def all(self) -> list[str]:
        return [self.admin, self.ingest, self.read, self.other_admin]


def _mint(db_url: str, project: str, *scopes: str) -> str:
    engine = make_engine(db_url)
    pid = project_id_for(engine, project)
    with session_scope(engine) as s:
        key, _ = create_key(s, project_id=pid, scopes=scopes, name=None, now=time.time())
    engine.dispose()
    return key


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _trace(trace_id: str) -> dict[str, Any]:
    return {
        "trace_id": trace_id, "workflow": f"wf-{MARKER}", "team": MARKER, "task_id": trace_id,
        "nodes": [
            {"node_id": "root", "kind": "agent", "name": MARKER, "start": 1_763_283_600},
            {"node_id": "l1", "parent_id": "root", "kind": "llm", "provider": "openai",
             "model": "gpt-4o", "input_tokens": 100, "output_tokens": 10, "prompt": MARKER,
             "start": 1_763_283_601},
        ],
        "outcome": {"status": "success", "type": MARKER},
    }


@pytest.fixture
def keyed(client: TestClient, db_url: str) -> Iterator[tuple[TestClient, Keys]]:
    keys = Keys(
        admin=_mint(db_url, "proj-a", "admin"),
        ingest=_mint(db_url, "proj-a", "ingest"),
        read=_mint(db_url, "proj-a", "read"),
        other_admin=_mint(db_url, "proj-b", "admin"),
    )
    r = client.post("/api/v1/traces", json=_trace(TRACE_A),
                    headers=_bearer(keys.ingest))
    assert r.status_code == 200, r.text
    # Analyse it, so findings, summaries, paths and digests of project A exist to leak.
    r = client.post("/api/v1/analyze", json={}, headers=_bearer(keys.admin))
    assert r.status_code == 200, r.text
    yield client, keys


def _calls(app: Any) -> list[tuple[RouteInfo, str, str]]:
    out = []
    for route in api_routes(app):
        if route.path in PAGE_ROUTES:
            continue
        path = re.sub(r"\{[^}]+\}", lambda m: TRACE_A if "trace" in m.group(0) else "x",
                      route.path)
        for method in sorted(route.methods):
            out.append((route, method, path))
    return out


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, path, json=body, headers=headers)


def test_every_route_needs_a_key_with_its_scope_and_sees_only_its_project(
    keyed: tuple[TestClient, Keys],
) -> None:
    client, keys = keyed
    calls = _calls(client.app)
    assert len(calls) >= 5
    lacking = {"admin": [keys.ingest, keys.read], "read": [keys.ingest], "ingest": [keys.read]}
    shows_a: list[str] = []  # routes whose answer to A's key carries A's data
    for route, method, path in calls:
        scope = required_scope(route)
        where = f"{method} {route.path}"
        if scope is None:
            assert route.path in PUBLIC_ROUTES, f"{where} is reachable without any API key"
            continue
        for headers in ({}, _bearer("ts_" + "A" * 43), {"Authorization": "Bearer nonsense"},
                        {"Authorization": "Basic !!!"}):
            r = _call(client, method, path, headers)
            assert r.status_code == 401, (where, headers, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["www-authenticate"].startswith("Bearer")
        for key in lacking[scope]:
            r = _call(client, method, path, _bearer(key))
            assert r.status_code == 403, (where, r.status_code, r.text)
            assert scope in r.json()["detail"]
        r = _call(client, method, path, _bearer(keys.admin))
        assert r.status_code not in (401, 403), (where, r.text)
        if MARKER in r.text:
            shows_a.append(where)
        # Another project's key: never a byte of project A, and a 404 exactly like a missing id.
        other = _call(client, method, path, _bearer(keys.other_admin))
        assert other.status_code not in (401, 403, 500), (where, other.text)
        assert MARKER not in other.text, (where, other.text)
        if "{trace_id}" in route.path and method == "GET":
            missing = client.request(method, path.replace(TRACE_A, "no-such-trace"),
                                     headers=_bearer(keys.admin))
            assert other.status_code == missing.status_code == 404, where
            strip = {k: v for k, v in other.json().items() if k not in ("detail", "instance")}
            assert strip == {k: v for k, v in missing.json().items()
                             if k not in ("detail", "instance")}
            assert other.json()["detail"].replace(TRACE_A, "no-such-trace") == (
                missing.json()["detail"])
    # The isolation check above can fail: A's own key does see A's data on these routes.
    assert {"GET /api/v1/traces", "GET /api/v1/traces/{trace_id}"} <= set(shows_a), shows_a
    print("routes showing project A's data to A's key:", shows_a)


def test_read_key_reads_and_ingest_key_cannot(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    r = client.get(f"/api/v1/traces/{TRACE_A}", headers=_bearer(keys.read))
    assert r.status_code == 200 and r.json()["node_count"] == 2
    assert client.get("/api/v1/traces", headers=_bearer(keys.ingest)).status_code == 403
    r = client.post("/api/v1/traces", json=_trace("t2"), headers=_bearer(keys.read))
    assert r.status_code == 403
    # B's listing is empty; A's holds exactly A's trace.
    assert client.get("/api/v1/traces", headers=_bearer(keys.other_admin)).json()["items"] == []
    items = client.get("/api/v1/traces", headers=_bearer(keys.admin)).json()["items"]
    assert [t["trace_id"] for t in items] == [TRACE_A]


def test_basic_auth_with_the_key_as_password_like_the_langfuse_sdk(
    keyed: tuple[TestClient, Keys],
) -> None:
    client, keys = keyed
    basic = base64.b64encode(f"pk-lf-public:{keys.ingest}".encode()).decode()
    r = client.post("/api/v1/traces", json=_trace("lf-1"),
                    headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200, r.text
    wrong = base64.b64encode(b"pk-lf-public:sk-lf-secret").decode()
    r = client.post("/api/v1/traces", json=_trace("lf-2"),
                    headers={"Authorization": f"Basic {wrong}"})
    assert r.status_code == 401


def test_cli_creates_lists_and_revokes_keys_and_stores_only_a_hash(
    keyed: tuple[TestClient, Keys], db_url: str,
) -> None:
    client, _ = keyed
    runner = CliRunner()
    r = runner.invoke(cli, ["keys", "create", "--project", "proj-c", "--scope", "read",
                            "--name", "dashboards", "--database-url", db_url])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[0]
    assert key.startswith("ts_") and len(key) == 46
    assert client.get("/api/v1/traces", headers=_bearer(key)).status_code == 200
    listing = runner.invoke(cli, ["keys", "list", "--project", "proj-c", "--database-url", db_url])
    assert listing.exit_code == 0 and "dashboards" in listing.stdout
    assert key not in listing.stdout and key[:11] in listing.stdout
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        stored = [tuple(row) for row in s.execute(select(ApiKey.__table__)).all()]  # type: ignore[attr-defined]
    engine.dispose()
    assert stored and all(key not in str(row) for row in stored)
    r = runner.invoke(cli, ["keys", "revoke", key[:11], "--database-url", db_url])
    assert r.exit_code == 0, r.output
    assert client.get("/api/v1/traces", headers=_bearer(key)).status_code == 401
    bad = runner.invoke(cli, ["keys", "create", "--project", "p", "--scope", "root",
                              "--database-url", db_url])
    assert bad.exit_code != 0


def test_open_dev_mode_on_loopback_without_keys(
    client: TestClient, caplog: pytest.LogCaptureFixture, settings: Settings
) -> None:
    r = client.post("/api/v1/traces", json=_trace("dev-1"))
    assert r.status_code == 200
    assert client.get("/api/v1/traces/dev-1").json()["node_count"] == 2
    with caplog.at_level(logging.WARNING, logger="tracestore.auth"), \
            TestClient(create_app(settings)):
        pass
    assert "running OPEN" in caplog.text and "'default'" in caplog.text


def test_open_dev_mode_ignores_client_credentials_like_the_langfuse_sdks(
    client: TestClient,
) -> None:
    """The Langfuse SDK refuses to run without keys and always sends Basic auth: against a
    fresh loopback server (no keys) its requests are stored, not answered 401."""
    basic = base64.b64encode(b"pk-lf-1234:sk-lf-5678").decode()
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "generation",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
            "attributes": [{"key": "langfuse.observation.type", "value": {"stringValue":
                                                                         "generation"}}]}
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    for i, auth in enumerate((f"Basic {basic}", "Bearer sk-lf-5678", "Basic !!not-base64")):
        r = client.post("/api/public/otel/v1/traces", json=body, headers={"Authorization": auth})
        assert r.status_code == 200, (i, r.text)
    r = client.post("/api/v1/traces", json=_trace("dev-cred"), headers=_bearer("ts_" + "x" * 43))
    assert r.status_code == 200, r.text
    detail = client.get("/api/v1/traces/" + "ab" * 16, headers={"Authorization": f"Basic {basic}"})
    assert detail.status_code == 200 and detail.json()["nodes"][0]["kind"] == "llm"


def test_non_loopback_bind_refuses_to_start_without_keys_and_needs_keys_with_them(
    db_url: str,
) -> None:
    exposed = Settings(database_url=db_url, host="0.0.0.0", settle_seconds=0)
    with pytest.raises(TracestoreError, match="no API keys exist"), \
            TestClient(create_app(exposed)):
        pass
    r = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "1",
                                 "--database-url", db_url])
    assert r.exit_code != 0 and "no API keys exist" in str(r.exception)
    key = _mint(db_url, "proj-a", "admin")
    with TestClient(create_app(exposed)) as c:
        assert c.get("/api/v1/traces").status_code == 401
        assert c.get("/api/v1/traces", headers=_bearer(key)).status_code == 200
        assert c.get("/healthz").status_code == 200


def test_keys_never_reach_the_logs(
    keyed: tuple[TestClient, Keys], caplog: pytest.LogCaptureFixture
) -> None:
    client, keys = keyed
    wrong = "ts_" + "Z" * 43
    with caplog.at_level(logging.DEBUG):
        for key in [*keys.all(), wrong]:
            client.get("/api/v1/traces", headers=_bearer(key))
            client.post("/api/v1/traces", content=b"{", headers=_bearer(key))
        client.get("/api/v1/nowhere", headers=_bearer(keys.admin))
    assert caplog.records, "expected some log records to check"
    for key in [*keys.all(), wrong]:
        assert key not in caplog.text
        assert key[11:] not in caplog.text


def test_admin_manages_its_projects_keys_over_rest(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    r = client.post("/api/v1/keys", json={"scopes": ["read"], "name": "bi"},
                    headers=_bearer(keys.admin))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["project"] == "proj-a" and created["scopes"] == ["read"]
    assert client.get("/api/v1/traces", headers=_bearer(created["key"])).status_code == 200
    listed = client.get("/api/v1/keys", headers=_bearer(keys.admin)).json()
    assert created["id"] in [k["id"] for k in listed]
    assert all("key" not in k and k["project"] == "proj-a" for k in listed)
    # Project B's admin can neither see nor revoke A's key: 404 as for a missing id.
    other = client.get("/api/v1/keys", headers=_bearer(keys.other_admin)).json()
    assert created["id"] not in [k["id"] for k in other]
    r = client.delete(f"/api/v1/keys/{created['id']}", headers=_bearer(keys.other_admin))
    assert r.status_code == 404
    missing = client.delete("/api/v1/keys/999999", headers=_bearer(keys.other_admin))
    assert missing.status_code == 404 and missing.json()["title"] == r.json()["title"]
    r = client.delete(f"/api/v1/keys/{created['id']}", headers=_bearer(keys.admin))
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert client.get("/api/v1/traces", headers=_bearer(created["key"])).status_code == 401
    assert client.post("/api/v1/keys", json={"scopes": ["root"]},
                       headers=_bearer(keys.admin)).status_code == 422


def test_authentication_holds_one_connection_at_a_time(settings: Settings) -> None:
    """A request authenticates with at most one pooled connection at a time. With a pool of
    one, open mode's lookup of the default project must not wait for a second connection
    while it holds the first: with as many requests at once as the pool has connections (a
    burst of ingest), each would hold one and wait for another until the pool's timeout."""
    url = settings.database_url
    small = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=2,
                          connect_args={"check_same_thread": False}
                          if url.startswith("sqlite") else {})
    with TestClient(create_app(settings)) as client:
        real = client.app.state.engine  # type: ignore[attr-defined]
        client.app.state.engine = small  # type: ignore[attr-defined]
        try:
            r = client.get("/api/v1/traces")
            assert r.status_code == 200, r.text
            assert r.json()["items"] == []
        finally:
            client.app.state.engine = real  # type: ignore[attr-defined]
            small.dispose()
