"""The savings simulator (POST /api/v1/simulate, tracestore simulate) on both backends, its
dollars checked against genai-prices directly and against the stored findings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner
from fastapi.testclient import TestClient
from genai_prices import Usage, calc_price

from tracestore.api import create_app
from tracestore.cli.main import cli
from tracestore.config import Settings

T0 = 1794787200  # 2026-11-16T00:00:00Z
WINDOW = {"since": T0, "until": T0 + 7 * 86400}


def _llm(nid: str, model: str, start: float, **kw: Any) -> dict[str, Any]:
    return {"node_id": nid, "kind": "llm", "name": "draft", "step": "draft", "model": model,
            "provider": "openai", "input_tokens": 1000, "output_tokens": 200,
            "start": start, "end": start + 1, **kw}


def _list_price(model: str, i: int, o: int, r: int = 0) -> float:
    usage = Usage(input_tokens=i, output_tokens=o)
    p = calc_price(usage, model_ref=model, provider_id="openai",
                   genai_request_timestamp=datetime.fromtimestamp(T0, UTC))
    return float(p.total_price)


def _post(c: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post("/api/v1/simulate", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _store(c: TestClient) -> None:
    traces = [
        {"trace_id": "ok1", "workflow": "w", "nodes": [_llm("a", "gpt-4o", T0 + 10)],
         "outcome": {"status": "success"}},
        {"trace_id": "bad", "workflow": "w", "nodes": [_llm("a", "gpt-4o", T0 + 20)],
         "outcome": {"status": "failure"}},
        {"trace_id": "mini", "workflow": "w", "nodes": [_llm("a", "gpt-4o-mini", T0 + 30)],
         "outcome": {"status": "failure"}},
        {"trace_id": "o3", "workflow": "r", "nodes": [
            _llm("a", "o3-mini", T0 + 40, step="think", reasoning_tokens=150)],
         "outcome": {"status": "success"}},
    ]
    assert c.post("/api/v1/traces", json=traces).status_code == 200
    assert c.post("/api/v1/analyze", json={}).status_code == 200


def test_route_prices_and_risks(db_url: str) -> None:
    with TestClient(create_app(Settings(database_url=db_url, settle_seconds=0))) as c:
        _store(c)
        stored = {t["trace_id"]: t["cost_usd"] for t in c.get("/api/v1/traces").json()["items"]}
        d = _post(c, {**WINDOW, "workflow": "w", "scenario": {
            "route": [{"step": "draft", "to_model": "gpt-4o-mini"}]}})
        before = 2 * _list_price("gpt-4o", 1000, 200) + _list_price("gpt-4o-mini", 1000, 200)
        after = 3 * _list_price("gpt-4o-mini", 1000, 200)
        assert abs(d["before"]["spend_usd"] - before) < 1e-6
        assert abs(d["after"]["spend_usd"] - after) < 1e-6
        assert d["before"]["successes"] == d["after"]["successes"] == 1
        (step,) = d["steps"]
        assert step["step"] == "draft" and abs(step["saving_usd"] - (before - after)) < 1e-6
        assert set(step["levers"]) == {"cost_per_token", "tokens_per_attempt",
                                       "attempts_per_outcome"}
        assert abs(sum(step["levers"].values()) - (after - before)) < 1e-6  # LMDI sums up
        (risk,) = d["risks"]  # mini ran the step here and failed: 0% against gpt-4o's 50%
        assert risk["to_model"] == "gpt-4o-mini" and "0% of 1 traces" in risk["reason"]

        # a reasoning model routed to a non-reasoning one: reasoning tokens dropped
        d = _post(c, {**WINDOW, "workflow": "r", "scenario": {
            "route": [{"to_model": "gpt-4o-mini"}]}})
        assert abs(d["after"]["spend_usd"] - _list_price("gpt-4o-mini", 1000, 50)) < 1e-6
        assert d["after"]["tokens"] == 1050
        assert "never ran this step" in d["risks"][0]["reason"]

        # a contracted rate: every model call of the window re-priced under it
        d = _post(c, {**WINDOW, "scenario": {"prices": [
            {"provider": "openai", "model_pattern": "gpt-4o", "input_mtok": 1.0,
             "output_mtok": 2.0, "basis": "contracted"}]}})
        w = next(g for g in d["workflows"] if g["workflow"] == "w")
        expected = 2 * (1000 * 1e-6 + 200 * 2e-6) + _list_price("gpt-4o-mini", 1000, 200)
        assert abs(w["after"]["spend_usd"] - expected) < 1e-6

        r = c.post("/api/v1/simulate", json={"scenario": {"route": [{"to_model": "nope-9"}]}})
        assert r.status_code == 422 and "nope-9" in r.json()["detail"]
        assert c.post("/api/v1/simulate", json={"scenario": {"bogus": 1}}).status_code == 422
        after_stored = {t["trace_id"]: t["cost_usd"]
                        for t in c.get("/api/v1/traces").json()["items"]}
        assert after_stored == stored  # nothing stored changed


def test_fix_codes_remove_exactly_the_findings_waste(db_url: str, tmp_path: Path) -> None:
    nodes = [{"node_id": f"s{i}", "kind": "tool", "name": "search", "tool_name": "search",
              "args": {"q": "same"}, "result": "same", "start": T0 + i, "end": T0 + i + 0.5}
             for i in range(4)]
    nodes += [_llm(f"l{i}", "gpt-4o", T0 + 10 + i, prompt="same prompt", output="same")
              for i in range(3)]
    with TestClient(create_app(Settings(database_url=db_url, settle_seconds=0))) as c:
        assert c.post("/api/v1/traces", json={"trace_id": "t", "workflow": "w",
                                              "nodes": nodes}).status_code == 200
        assert c.post("/api/v1/analyze", json={}).status_code == 200
        findings = c.get("/api/v1/findings", params={"limit": 100}).json()["items"]
        codes = sorted({f["code"] for f in findings})
        assert codes, "the repeated calls must give findings"
        d = _post(c, {**WINDOW, "scenario": {"fix_codes": codes}})
        waste = sum(f["wasted_cost_usd"] for f in findings)
        assert abs((d["before"]["spend_usd"] - d["after"]["spend_usd"]) - waste) < 1e-6
        assert d["after"]["tokens"] < d["before"]["tokens"]
    scenario = tmp_path / "s.json"
    scenario.write_bytes(orjson.dumps({**WINDOW, "scenario": {"fix_codes": codes}}))
    res = CliRunner().invoke(cli, ["simulate", str(scenario), "--database-url", db_url])
    assert res.exit_code == 0, res.output
    assert orjson.loads(res.output)["saving_usd"] == d["saving_usd"]
