"""The price book through the real app and the real CLI, on every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from tracestore.cli.main import cli
from tracestore.pricing.pricer import GENAI_PRICES_SOURCE
from tracestore.store.tables import Node

T = "2026-11-16T09:00:0{}Z"


def _trace(trace_id: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {"trace_id": trace_id, "workflow": "triage",
            "nodes": [{"node_id": "root", "kind": "agent", "name": "triage",
                       "start": T.format(0), "end": T.format(9)}, *nodes]}


def _llm(node_id: str, model: str = "gpt-4o", provider: str = "openai",
         **kw: Any) -> dict[str, Any]:
    return {"node_id": node_id, "parent_id": "root", "kind": "llm", "name": node_id,
            "provider": provider, "model": model, "input_tokens": 1000, "output_tokens": 500,
            "start": T.format(1), "end": T.format(2), **kw}


BOOK = {"overrides": [
    {"provider": "openai", "model_pattern": "gpt-4o*", "input_mtok": 1.0, "output_mtok": 2.0,
     "basis": "contracted", "note": "2026 enterprise agreement"},
    {"node_kind": "human", "model_pattern": "*", "per_minute_usd": 0.75},
    {"node_kind": "tool", "model_pattern": "web_*", "per_call_usd": 0.01,
     "valid_from": "2026-01-01T00:00:00Z", "valid_to": "2027-01-01T00:00:00Z"},
]}


def _node_rows(db_url: str) -> dict[str, dict[str, Any]]:
    engine = create_engine(db_url)
    with engine.connect() as c:
        rows = {r.node_id: dict(r._mapping) for r in c.execute(select(Node.__table__))}  # type: ignore[attr-defined]
    engine.dispose()
    return rows


def test_put_and_get_the_book(client: TestClient) -> None:
    r = client.put("/api/v1/prices", json=BOOK)
    assert r.status_code == 200, r.text
    book = r.json()
    assert book["library"] == GENAI_PRICES_SOURCE
    assert [o["model_pattern"] for o in book["overrides"]] == ["gpt-4o*", "*", "web_*"]
    first = book["overrides"][0]
    assert (first["basis"], first["input_mtok"], first["active"]) == ("contracted", 1.0, True)
    assert book["overrides"][2]["valid_from"] == "2026-01-01T00:00:00.000Z"
    ids = [o["id"] for o in book["overrides"]]
    # Re-importing the same entries keeps their ids; a dropped entry disappears.
    again = client.put("/api/v1/prices", json={"overrides": BOOK["overrides"][:2]}).json()
    assert [o["id"] for o in again["overrides"]] == ids[:2]
    past = client.get("/api/v1/prices", params={"at": "2025-06-01T00:00:00Z"}).json()
    assert [o["active"] for o in past["overrides"]] == [True, True]
    assert client.get("/api/v1/prices").json()["overrides"] == again["overrides"]


@pytest.mark.parametrize(("item", "loc_tail", "needle"), [
    ({"model_pattern": "x", "output_mtok": 1}, "input_mtok", "needs input_mtok"),
    ({"model_pattern": "x", "input_mtok": -1, "output_mtok": 1}, "input_mtok", "greater than"),
    ({"node_kind": "tool", "model_pattern": "x"}, "per_minute_usd", "per_call_usd"),
    ({"model_pattern": "x", "input_mtok": 1, "output_mtok": 1, "valid_from": "2026-02-01",
      "valid_to": "2026-01-01"}, "valid_to", "later than"),
    ({"model_pattern": "x", "input_mtok": 1, "output_mtok": 1, "price": 3}, "price", "Extra"),
])
def test_invalid_book_is_422_naming_item_and_field(
    client: TestClient, item: dict[str, Any], loc_tail: str, needle: str
) -> None:
    client.put("/api/v1/prices", json=BOOK)
    r = client.put("/api/v1/prices", json={"overrides": [BOOK["overrides"][0], item]})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["errors"][0]["loc"] == ["body", "overrides", 1, loc_tail]
    assert needle in body["detail"]
    assert len(client.get("/api/v1/prices").json()["overrides"]) == 3  # nothing stored


def test_duplicate_entries_are_422(client: TestClient) -> None:
    dup = BOOK["overrides"][0]
    r = client.put("/api/v1/prices", json={"overrides": [dup, dup]})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["overrides", 1]
    assert client.put("/api/v1/prices", json=[dup]).status_code == 422  # not a list body


def test_unknown_model_is_unpriced_and_listed(client: TestClient) -> None:
    client.post("/api/v1/traces", json=_trace(
        "t1", _llm("a", model="mystery-9"), _llm("b", model="mystery-9"), _llm("c")))
    t = client.get("/api/v1/traces/t1").json()
    assert (t["unpriced_count"], t["unpriced_tokens"]) == (2, 3000)
    assert t["cost_usd"] == pytest.approx(0.0075)  # only gpt-4o: $2.50 / $10 per MTok
    a = next(n for n in t["nodes"] if n["node_id"] == "a")
    assert (a["cost_usd"], a["priced"]) == (None, False)
    un = client.get("/api/v1/prices/unpriced").json()
    assert (un["nodes"], un["tokens"]) == (2, 3000)
    assert [(i["provider"], i["model"], i["nodes"], i["input_tokens"]) for i in un["items"]] == [
        ("openai", "mystery-9", 2, 2000)
    ]
    assert client.get("/api/v1/prices/unpriced",
                      params={"since": "2026-11-17T00:00:00Z"}).json()["items"] == []


def test_override_tool_and_human_priced_at_ingest(client: TestClient) -> None:
    ids = [o["id"] for o in client.put("/api/v1/prices", json=BOOK).json()["overrides"]]
    client.post("/api/v1/traces", json=_trace(
        "t2", _llm("l"),
        {"node_id": "w", "parent_id": "root", "kind": "tool", "tool_name": "web_search",
         "start": T.format(3)},
        {"node_id": "h", "parent_id": "root", "kind": "human", "decision": "override",
         "review_minutes": 6, "start": T.format(4)}))
    nodes = {n["node_id"]: n for n in client.get("/api/v1/traces/t2").json()["nodes"]}
    assert nodes["l"]["cost_usd"] == pytest.approx(0.002)  # 1000 × $1 + 500 × $2 per MTok
    assert nodes["l"]["price_source"] == f"override:{ids[0]}"
    assert (nodes["w"]["cost_usd"], nodes["w"]["price_source"]) == (0.01, f"override:{ids[2]}")
    assert nodes["h"]["cost_usd"] == pytest.approx(4.5)  # 6 minutes × $0.75
    assert client.get("/api/v1/traces/t2").json()["cost_usd"] == pytest.approx(4.512)


def test_reported_cost_mismatch_is_visible_on_the_trace(client: TestClient) -> None:
    client.post("/api/v1/traces", json=_trace(
        "t3", _llm("ok", reported_cost_usd=0.0075), _llm("bad", reported_cost_usd=0.03)))
    t = client.get("/api/v1/traces/t3").json()
    assert t["cost_mismatch_count"] == 1
    assert t["reported_cost_usd"] == pytest.approx(0.0375)
    flags = {n["node_id"]: n["cost_mismatch"] for n in t["nodes"]}
    assert (flags["ok"], flags["bad"]) == (False, True)


_COST_COLS = {"cost_usd", "price_source", "priced", "cost_mismatch"}


def test_reprice_changes_totals_and_nothing_else(client: TestClient, db_url: str) -> None:
    client.post("/api/v1/traces", json=[
        _trace("r1", _llm("a"), _llm("b", model="claude-sonnet-4-20250514", provider="anthropic")),
        _trace("r2", _llm("c", model="mystery-9")),
    ])
    before_rows = _node_rows(db_url)
    before = {t: client.get(f"/api/v1/traces/{t}").json() for t in ("r1", "r2")}
    client.put("/api/v1/prices", json={"overrides": [
        {"model_pattern": "gpt-4o", "input_mtok": 1.0, "output_mtok": 2.0},
        {"model_pattern": "mystery-*", "input_mtok": 10.0, "output_mtok": 10.0},
    ]})
    dry = client.post("/api/v1/reprice", params={"dry_run": "true"}).json()
    assert (dry["dry_run"], dry["changed_nodes"], dry["traces"]) == (True, 2, 2)
    assert _node_rows(db_url) == before_rows  # a dry run changes nothing
    rep = client.post("/api/v1/reprice", params={"since": "2026-11-16T00:00:00Z",
                                                  "until": "2026-11-17T00:00:00Z"}).json()
    # old: gpt-4o $0.0075 + claude-sonnet-4 $0.0105; new: gpt-4o $0.002, mystery $0.015
    assert rep["old_total_usd"] == pytest.approx(0.018)
    assert rep["new_total_usd"] == pytest.approx(0.0275)
    assert (rep["old_unpriced"], rep["new_unpriced"]) == (1, 0)
    deltas = {m["key"]: m["delta_usd"] for m in rep["models"]}
    assert deltas["openai/gpt-4o"] == pytest.approx(-0.0055)
    assert deltas["openai/mystery-9"] == pytest.approx(0.015)
    assert deltas["anthropic/claude-sonnet-4-20250514"] == 0
    after_rows = _node_rows(db_url)
    for nid, row in after_rows.items():
        same = {k: v for k, v in row.items() if k not in _COST_COLS}
        assert same == {k: v for k, v in before_rows[nid].items() if k not in _COST_COLS}
    assert after_rows["c"]["priced"] and after_rows["c"]["cost_usd"] == pytest.approx(0.015)
    r1, r2 = (client.get(f"/api/v1/traces/{t}").json() for t in ("r1", "r2"))
    assert r1["cost_usd"] == pytest.approx(0.0125) and r2["unpriced_count"] == 0
    for t, new in (("r1", r1), ("r2", r2)):
        changed = {k for k in new if new[k] != before[t][k]}
        assert changed <= {"cost_usd", "unpriced_count", "unpriced_tokens", "nodes"}
    again = client.post("/api/v1/reprice").json()
    assert again["changed_nodes"] == 0  # idempotent


def test_cli_prices_import_and_reprice(client: TestClient, db_url: str, tmp_path: Path) -> None:
    client.post("/api/v1/traces", json=_trace("c1", _llm("a")))
    runner = CliRunner()
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps([{"model_pattern": "gpt-4o", "output_mtok": 1}]))
    r = runner.invoke(cli, ["prices", "import", str(bad), "--database-url", db_url])
    assert r.exit_code == 1 and "overrides.0.input_mtok" in r.output
    good = tmp_path / "book.json"
    good.write_bytes(orjson.dumps([{"model_pattern": "gpt-4o", "input_mtok": 4,
                                    "output_mtok": 4}]))
    r = runner.invoke(cli, ["prices", "import", str(good), "--database-url", db_url])
    assert r.exit_code == 0, r.output
    assert "1 overrides" in r.output
    r = runner.invoke(cli, ["reprice", "--dry-run", "--since", "2026-11-16",
                            "--database-url", db_url])
    assert r.exit_code == 0, r.output
    assert "would change 1 nodes: old total $0.007500, new total $0.006000" in r.output
    assert client.get("/api/v1/traces/c1").json()["cost_usd"] == pytest.approx(0.0075)
    r = runner.invoke(cli, ["reprice", "--database-url", db_url])
    assert "changed 1 nodes: old total $0.007500, new total $0.006000" in r.output
    assert "openai/gpt-4o" in r.output
    assert client.get("/api/v1/traces/c1").json()["cost_usd"] == pytest.approx(0.006)
    r = runner.invoke(cli, ["reprice", "--since", "yesterday", "--database-url", db_url])
    assert r.exit_code == 2 and "not an ISO 8601 timestamp" in r.output
