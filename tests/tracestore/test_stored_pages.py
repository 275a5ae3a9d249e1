"""The overview, workflow, paths and prices pages of a complete week are stored once and served
until one of their inputs changes: a late trace, its analysis, a late outcome, a workflow
setting, a re-pricing, a write to an older trace with a node in the week, a deletion. After
each change the served page equals the page built from scratch (the stored rows dropped), on
both backends; an unchanged week is served without rebuilding."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

import tracestore.store.stored
from analyzers.digest import week_of
from tests.tracestore.test_digest_api import W47, _analyse, _load, _trace
from tracestore.store.tables import STORED_T

WEEK = "2026-W47"
W45 = W47 - 14 * 86400
WF = {"workflow": "support_triage"}
# name (the stored page before any "_") -> path and filters
PAGES: dict[str, tuple[str, dict[str, str]]] = {
    "overview": ("/", {}),
    "overview_wf": ("/", WF),
    "workflow": ("/workflows/support_triage", {}),
    "paths": ("/paths", {}),
    "paths_wf": ("/paths", WF),
    "prices": ("/prices", {}),
}


def _stored(client: TestClient, page: str) -> list[float]:
    """built_at of the page's stored rows."""
    c = STORED_T.c
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        return sorted(b for (b,) in s.execute(select(c.built_at).where(c.page == page)))


def _get(client: TestClient, path: str, params: dict[str, str]) -> str:
    r = client.get(path, params={"week": WEEK, **params})
    assert r.status_code == 200, r.text
    return r.text


def _exact(client: TestClient, path: str, params: dict[str, str]) -> str:
    """The served page (stored when unchanged) equals the page built from scratch."""
    served = _get(client, path, params)
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        s.execute(delete(STORED_T))
        s.commit()
    assert _get(client, path, params) == served
    return served


def _late(tid: str, t0: float, model: str = "gpt-4o") -> dict[str, Any]:
    return _trace(tid, "support_triage", "S47-late", t0, 9000, model=model)


# Which changes show on which page (each asserted to change it).
CHANGES = {
    "overview": {"trace", "analysis", "outcome", "reprice", "delete"},
    "overview_wf": {"trace", "analysis", "outcome", "reprice", "delete"},
    "workflow": {"trace", "analysis", "outcome", "setting", "reanalysis", "delete"},
    "paths": {"analysis", "reanalysis", "delete"},
    "paths_wf": {"analysis", "reanalysis", "delete"},
    "prices": {"trace", "reprice", "older", "delete_older"},
}


@pytest.mark.parametrize("page", list(PAGES))
def test_a_stored_page_follows_every_input(client: TestClient, page: str) -> None:
    path, params = PAGES[page]
    stored = page.split("_")[0]
    _load(client)
    before = _exact(client, path, params)
    built = _stored(client, stored)
    assert len(built) == 1
    assert _get(client, path, params) == before
    assert _stored(client, stored) == built  # served, not rebuilt

    def step(name: str) -> None:
        nonlocal before
        now = _exact(client, path, params)
        if name in CHANGES[page]:
            assert now != before, name
        before = now

    # Two late traces of the week (one model unpriced), then their analysis.
    late = [_late("late01", W47 + 3 * 86400),
            _late("late02", W47 + 4 * 86400, model="acme-late-1")]
    assert client.post("/api/v1/traces", json=late).status_code == 200
    step("trace")
    _analyse(client)
    step("analysis")
    # A late outcome: a task that succeeded now failed.
    r = client.post("/api/v1/outcomes", json=[{"task_id": "S47-0", "status": "failure",
                                               "occurred_at": W47 + 7200}])
    assert r.status_code == 200
    step("outcome")
    r = client.put("/api/v1/workflows/support_triage",
                   json={"baseline_cost_per_outcome_usd": 0.01})
    assert r.status_code == 200, r.text
    step("setting")
    # A contracted rate for gpt-4o and a price for the unpriced model, then a re-pricing.
    r = client.put("/api/v1/prices", json={"overrides": [
        {"provider": "openai", "model_pattern": "gpt-4o", "input_mtok": 1.0,
         "output_mtok": 4.0, "basis": "contracted"},
        {"provider": "openai", "model_pattern": "acme-late-1", "input_mtok": 1.0,
         "output_mtok": 4.0, "basis": "contracted"}]})
    assert r.status_code == 200, r.text
    assert client.post("/api/v1/reprice").json()["changed_nodes"] > 0
    step("reprice")
    _analyse(client)  # the summaries take the new costs
    step("reanalysis")
    # A trace started two weeks before with an unpriced node in the week.
    old = _late("old01", W45 + 3600, model="acme-old-1")
    old["nodes"][1]["start"], old["nodes"][1]["end"] = W47 + 7200, W47 + 7300
    assert client.post("/api/v1/traces", json=[old]).status_code == 200
    step("older")
    # Deletions: a trace of the week, and the older trace with its node in the week.
    assert client.delete("/api/v1/traces/late01").status_code == 204
    step("delete")
    assert client.delete("/api/v1/traces/old01").status_code == 204
    step("delete_older")


def test_a_week_in_progress_is_not_stored(client: TestClient) -> None:
    _load(client)
    week = week_of(time.time())
    for path, params in PAGES.values():
        assert client.get(path, params={"week": week, **params}).status_code == 200
    assert _stored(client, "overview") == _stored(client, "paths") == []
    assert _stored(client, "workflow") == _stored(client, "prices") == []


def test_stored_rows_are_bounded(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    _load(client)
    monkeypatch.setattr(tracestore.store.stored, "MAX_STORED", 2)
    for week in ("2026-W45", "2026-W46", "2026-W47"):
        assert client.get("/paths", params={"week": week}).status_code == 200
    c = STORED_T.c
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        kept = [p for (p,) in s.execute(select(c.params).order_by(c.built_at))]
    assert len(kept) == 2 and "2026-W45" not in " ".join(kept)
