"""A complete week's digest is stored once and served until one of its inputs changes: a late
trace, its analysis, a late outcome, a workflow setting, a re-pricing. After each change the
page and the API answer exactly what a digest built from scratch says (both backends)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from analyzers.digest import week_of
from tests.tracestore.test_digest_api import W47, _analyse, _load, _trace
from tracestore.digest import render_html, render_json
from tracestore.digest.cache import DIGEST_PAGE
from tracestore.digest.gather import load_digest
from tracestore.digest.service import project_digest
from tracestore.store.tables import STORED_T

WEEK = "2026-W47"
BASE = "http://127.0.0.1:8000"


def _stored(client: TestClient) -> dict[str, float]:
    """week -> built_at of the stored digests."""
    c = STORED_T.c
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        return {orjson.loads(p)["week"]: b for p, b in s.execute(
            select(c.params, c.built_at).where(c.page == DIGEST_PAGE))}


def _fresh(client: TestClient) -> Any:
    """The digest built now from the store, bypassing what is stored."""
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        return load_digest(s, project_id=1, project="default", week=WEEK)


def _check_exact(client: TestClient) -> str:
    """The page and the JSON equal a digest built from scratch; returns the page."""
    fresh = _fresh(client)
    r = client.get("/api/v1/digest/weekly", params={"week": WEEK, "format": "json"})
    assert r.status_code == 200
    assert r.content == render_json(fresh)
    page = client.get("/digest", params={"week": WEEK})
    assert page.status_code == 200
    assert page.text == render_html(fresh, base_url=BASE)
    return page.text


def test_a_complete_week_is_stored_and_rebuilt_when_an_input_changes(
        client: TestClient) -> None:
    _load(client)
    first = _check_exact(client)
    built = _stored(client)[WEEK]
    # Nothing changed: served from the store (not rebuilt), byte-identical.
    assert client.get("/digest", params={"week": WEEK}).text == first
    assert _stored(client)[WEEK] == built
    traces = client.get("/api/v1/digest/weekly", params={"week": WEEK}).json()
    assert traces["headline"]["traces"] == 18

    # A late trace of the week, then its analysis.
    late = _trace("late01", "support_triage", "S47-late", W47 + 3 * 86400, 9000)
    assert client.post("/api/v1/traces", json=[late]).status_code == 200
    _check_exact(client)
    assert _stored(client)[WEEK] > built
    _analyse(client)
    after = _check_exact(client)
    assert after != first
    d = client.get("/api/v1/digest/weekly", params={"week": WEEK}).json()
    assert d["headline"]["traces"] == 19
    assert d["headline"]["spend_usd"] > traces["headline"]["spend_usd"]

    # A later attempt of a W47 task, started the week after: the task's success is now
    # counted on it, outside the digest's weeks (no trace of W46-W47 was written).
    built = _stored(client)[WEEK]
    again = _trace("c4700again", "claims_processing", "C47-0", W47 + 8 * 86400, 1500)
    assert client.post("/api/v1/traces", json=[again]).status_code == 200
    r = client.post("/api/v1/analyze", json={"since": W47 + 7 * 86400,
                                             "until": W47 + 14 * 86400})
    assert r.status_code == 200, r.text
    _check_exact(client)
    assert _stored(client)[WEEK] > built
    d2 = client.get("/api/v1/digest/weekly", params={"week": WEEK}).json()
    assert d2["headline"]["outcomes"] == d["headline"]["outcomes"] - 1

    # A late outcome: a task that succeeded now failed.
    d = d2
    built = _stored(client)[WEEK]
    r = client.post("/api/v1/outcomes", json=[{"task_id": "S47-0", "status": "failure",
                                               "occurred_at": W47 + 7200}])
    assert r.status_code == 200
    _check_exact(client)
    assert _stored(client)[WEEK] > built
    assert client.get("/api/v1/digest/weekly", params={"week": WEEK}).json()[
        "headline"]["outcomes"] == d["headline"]["outcomes"] - 1

    # A workflow's baseline.
    built = _stored(client)[WEEK]
    r = client.put("/api/v1/workflows/support_triage",
                   json={"baseline_cost_per_outcome_usd": 0.01})
    assert r.status_code == 200, r.text
    _check_exact(client)
    assert _stored(client)[WEEK] > built

    # A contracted rate, applied to the stored traces by a re-pricing.
    built = _stored(client)[WEEK]
    r = client.put("/api/v1/prices", json={"overrides": [
        {"provider": "openai", "model_pattern": "gpt-4o", "input_mtok": 1.0,
         "output_mtok": 4.0, "basis": "contracted"}]})
    assert r.status_code == 200, r.text
    assert client.post("/api/v1/reprice").json()["changed_nodes"] > 0
    _check_exact(client)
    assert _stored(client)[WEEK] > built


def test_an_incomplete_week_is_not_stored(client: TestClient) -> None:
    week = week_of(time.time())
    r = client.get("/api/v1/digest/weekly", params={"week": week})
    assert r.status_code == 200
    assert week not in _stored(client)
    assert orjson.loads(r.content)["week"] == week


def test_the_cli_and_webhook_digest_is_the_stored_one(client: TestClient) -> None:
    """``tracestore digest`` and the scheduled webhook (service.project_digest) read and
    store the same digest as the page: built once, then served from the store."""
    _load(client)
    engine = client.app.state.engine  # type: ignore[attr-defined]
    _, first = project_digest(engine, project="default", week=WEEK)
    built = _stored(client)[WEEK]
    _, again = project_digest(engine, project="default", week=WEEK)
    assert _stored(client)[WEEK] == built  # not rebuilt
    assert render_json(again) == render_json(first) == render_json(_fresh(client))
    assert client.get("/digest", params={"week": WEEK}).text == render_html(first,
                                                                            base_url=BASE)
    assert _stored(client)[WEEK] == built  # the page served it too
