"""Every error case docs/api.md ("Conventions") documents, provoked against the real app on
each backend: the status, the problem+json shape and the members the docs promise. The
physical bounds and per-item limits of docs/limits.md are in test_hostile_input.py and
test_limits.py; the request-wide limits in test_resource_limits.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tracestore.api import create_app
from tracestore.config import Settings

NODE = {"node_id": "n", "kind": "tool", "start": "2026-11-16T09:00:00Z"}


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["type"].endswith(f"/{status}")
    assert isinstance(body["title"], str) and body["detail"]
    return body


@pytest.fixture
def tight(db_url: str) -> Iterator[TestClient]:
    """A server with a 200-byte body limit."""
    s = Settings(database_url=db_url, settle_seconds=0, ingest_workers=0, max_body_bytes=200)
    with TestClient(create_app(s)) as c:
        yield c


def test_400_malformed_body_query_and_cursor(client: TestClient) -> None:
    problem(client.post("/api/v1/traces", content=b"{not json",
                        headers={"content-type": "application/json"}), 400)
    problem(client.get("/api/v1/traces", params={"cursor": "!!!"}), 400)
    problem(client.get("/api/v1/findings", params={"cursor": "W10"}), 400)


def test_401_403_404_with_keys(client: TestClient) -> None:
    admin = client.post("/api/v1/keys", json={"scopes": ["admin"]}).json()["key"]
    read = client.post("/api/v1/keys", json={"scopes": ["read"]},
                       headers={"authorization": f"Bearer {admin}"}).json()["key"]
    r = client.get("/api/v1/traces")
    problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    problem(client.get("/api/v1/traces", headers={"authorization": "Bearer ts_wrong0000000000"}),
            401)
    problem(client.post("/api/v1/traces", json={"trace_id": "t", "nodes": [NODE]},
                        headers={"authorization": f"Bearer {read}"}), 403)
    problem(client.get("/api/v1/traces/nope", headers={"authorization": f"Bearer {read}"}), 404)


def test_405_names_every_allowed_method(client: TestClient) -> None:
    r = client.patch("/api/v1/traces")
    problem(r, 405)
    assert r.headers["allow"] == "GET, POST"


def test_413_and_415(tight: TestClient) -> None:
    # (503 needs other ingest in flight: a lone request is always admitted; the full write
    # queue is provoked with concurrent clients in test_resource_limits.py.)
    body = problem(tight.post("/api/v1/traces", json={"trace_id": "t" * 100, "nodes": [
        {**NODE, "name": "x" * 300}]}), 413)
    assert body["limit_bytes"] == 200
    problem(tight.post("/api/v1/traces", content=b"x", headers={"content-type": "text/plain"}),
            415)


def test_422_partial_ingest_names_item_and_field(client: TestClient) -> None:
    r = client.post("/api/v1/traces", json=[{"trace_id": "ok", "nodes": [NODE]},
                                            {"trace_id": "bad", "nodes": [{**NODE, "kind": "x"}]}])
    body = problem(r, 422)
    assert (body["accepted_traces"], body["accepted_nodes"], body["rejected_traces"]) == (1, 1, 1)
    assert body["errors"][0]["item"] == 1 and body["errors"][0]["trace_id"] == "bad"
    assert body["errors"][0]["loc"] == ["nodes", 0, "kind"]
    r = client.post("/api/v1/outcomes", json=[{"task_id": "a", "status": "success"},
                                              {"task_id": "b", "status": "won"}])
    body = problem(r, 422)
    assert body["accepted"] == 1 and body["errors"][0]["item"] == 1


def test_422_parameters(client: TestClient) -> None:
    problem(client.get("/api/v1/traces", params={"limit": 0}), 422)
    body = problem(client.get("/api/v1/traces", params={"grup_by": "team"}), 422)
    assert body["errors"][0]["loc"] == ["query", "grup_by"] and "workflow" in body["detail"]
    problem(client.get("/api/v1/traces", params={"workflow": "a\x00"}), 422)
    problem(client.put("/api/v1/workflows/w", json={"description": "a\x00"}), 422)


def test_documented_window_rules(client: TestClient) -> None:
    r = client.get("/api/v1/findings", params={"since": "2026-11-17", "until": "2026-11-16"})
    assert r.status_code == 200 and r.json()["items"] == []
    r = client.get("/api/v1/traces", params={"since": "0310-02-17T00:00:00Z"})
    assert r.status_code == 200, r.text  # before 1970: the nearest representable time
    err = problem(client.post("/api/v1/traces", json={"trace_id": "t", "nodes": [
        {**NODE, "start": "1999-06-01T00:00:00Z"}]}), 422)["errors"][0]
    assert err["loc"] == ["nodes", 0, "start"] and "2000 to 2099" in err["msg"]
