"""One waste total: for any window and filter, the waste in ``/findings``, ``/attribution``
(by any grouping), ``/paths``, the digest (JSON, Markdown, HTML) and the CLI reports is the
same number, and attribution's waste by code is exactly the findings' — every booked dollar
belongs to a finding a person can open. Checked on the demo store and on seeded random
stores, on SQLite and PostgreSQL, for several windows and filters, through the real app and
the real CLI."""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from analyzers.digest_types import MONEY_DP
from tests.analyzers.recompute import check
from tracestore.cli.main import cli
from tracestore.digest.markdown import usd
from tracestore.ingest.pipeline import project_id_for
from tracestore.store.engine import make_engine, session_scope
from tracestore.store.load import iter_trace_graphs

W46 = 1794182400.0  # Monday 2026-11-09 00:00 UTC
W47 = W46 + 7 * 86400.0
DAY = 86400.0
TOL = 1e-6


def _all_findings(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = client.get("/api/v1/findings", params={**params, "limit": 500,
                                                   **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return out


def _findings(client: TestClient, **params: Any) -> tuple[float, dict[str, float]]:
    total = 0.0
    by_code: defaultdict[str, float] = defaultdict(float)
    for f in _all_findings(client, **params):
        total += f["wasted_cost_usd"]
        by_code[f["code"]] += f["wasted_cost_usd"]
    return total, dict(by_code)


def check_counterfactuals(client: TestClient, db_url: str) -> int:
    """Every stored finding's dollars recompute from its evidence and its trace's stored
    nodes alone (tests/analyzers/recompute.py)."""
    by_trace: defaultdict[str, list[Any]] = defaultdict(list)
    for f in _all_findings(client):
        by_trace[f["trace_id"]].append(SimpleNamespace(**f))
    engine = make_engine(db_url)
    try:
        pid = project_id_for(engine, "default")
        with session_scope(engine) as s:
            n = 0
            for lt in iter_trace_graphs(s, project_id=pid, trace_ids=sorted(by_trace)):
                for f in by_trace.pop(lt.trace_id):
                    check(f, lt.graph.nodes)
                    n += 1
    finally:
        engine.dispose()
    assert not by_trace
    return n


def _attribution(client: TestClient, **params: Any) -> tuple[float, dict[str, float]]:
    r = client.get("/api/v1/attribution", params=params)
    assert r.status_code == 200, r.text
    total = 0.0
    by_code: defaultdict[str, float] = defaultdict(float)
    for g in r.json()["groups"]:
        total += sum(g["waste_usd"].values())
        for code, v in g["waste_by_code"].items():
            by_code[code] += v
    assert abs(sum(by_code.values()) - total) <= TOL
    return total, dict(by_code)


def _paths(client: TestClient, **params: Any) -> float:
    r = client.get("/api/v1/paths", params={**params, "limit": 1000})
    assert r.status_code == 200, r.text
    paths = r.json()["paths"]
    assert len(paths) < 1000
    return float(sum(p["waste_usd"] for p in paths))


def _cli_json(db_url: str, *args: str) -> Any:
    r = CliRunner().invoke(cli, ["report", *args, "--json", "--database-url", db_url])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def check_window(client: TestClient, db_url: str, *, since: float | None = None,
                 until: float | None = None, workflow: str | None = None,
                 team: str | None = None, model: str | None = None) -> float:
    """Assert every route and report agrees on the waste of one window and filter."""
    window = {k: v for k, v in (("since", since), ("until", until), ("workflow", workflow),
                                ("team", team), ("model", model)) if v is not None}
    found, found_codes = _findings(client, **window)
    for group_by in ("workflow", "team", "model,week"):
        att, att_codes = _attribution(client, group_by=group_by, **window)
        assert abs(att - found) <= TOL, (group_by, att, found, window)
        assert set(att_codes) <= set(found_codes), (att_codes, found_codes)
        for code, v in found_codes.items():
            assert abs(att_codes.get(code, 0.0) - v) <= TOL, (code, att_codes, found_codes)
    assert abs(_paths(client, **window) - found) <= TOL, window
    cli_window = [x for k, v in window.items() for x in (f"--{k}", str(v))]
    rep = _cli_json(db_url, "attribution", *cli_window)
    assert abs(sum(sum(g["waste_usd"].values()) for g in rep["groups"]) - found) <= TOL
    rep = _cli_json(db_url, "paths", "--limit", "1000", *cli_window)
    assert abs(sum(p["waste_usd"] for p in rep["paths"]) - found) <= TOL
    return found


def check_digest(client: TestClient, week: str, start: float) -> float:
    """The digest's headline waste and its waste by code equal the week's findings, in
    every format."""
    found, found_codes = _findings(client, since=start, until=start + 7 * DAY)
    d = client.get("/api/v1/digest/weekly", params={"week": week, "format": "json"}).json()
    assert abs(d["headline"]["waste_usd"] - found) <= 10 ** -MONEY_DP
    by_code = {row["code"]: row["wasted_usd"] for row in d["waste_by_code"]
               if row["wasted_usd"] > 0}  # rows of codes only the previous week had are 0
    assert set(by_code) == {c for c, v in found_codes.items() if round(v, MONEY_DP) > 0}
    for code, v in by_code.items():
        assert abs(v - found_codes[code]) <= 10 ** -MONEY_DP
    text = usd(round(found, MONEY_DP))
    for fmt in ("md", "html"):
        body = client.get("/api/v1/digest/weekly", params={"week": week, "format": fmt}).text
        assert f"waste found {text}" in body if fmt == "md" else text in body, (fmt, text)
    return found


def _windows() -> list[dict[str, Any]]:
    return [{}, {"since": W47}, {"since": W46, "until": W47},
            {"since": W47 + 2 * DAY, "until": W47 + 5 * DAY}]


@pytest.mark.parametrize("seed", [7, 11])
def test_demo_store_waste_reconciles(client: TestClient, db_url: str, seed: int) -> None:
    r = CliRunner().invoke(cli, ["demo", "--no-serve", "--fixed-dates", "--database-url", db_url,
                                 "--traces", "300", "--seed", str(seed)])
    assert r.exit_code == 0, r.output
    m = re.search(r"analysed \d+ traces: \d+ findings, \$([\d,.]+) wasted", r.output)
    assert m, r.output
    total = check_window(client, db_url)
    assert total > 0.5 and f"${total:,.4f}" == f"${m[1]}"  # the CLI's own total
    for w in _windows()[1:]:
        check_window(client, db_url, **w)
    for wf in ("support_triage", "claims_processing", "code_review"):
        check_window(client, db_url, workflow=wf)
        check_window(client, db_url, workflow=wf, since=W47)
    assert check_digest(client, "2026-W47", W47) > 0
    check_digest(client, "2026-W46", W46)
    check_counterfactuals(client, db_url)


# --- seeded random stores -------------------------------------------------------------------

MODELS = ("gpt-4o", "gpt-4o-mini", "o3-mini", "claude-sonnet-4-20250514")
TOOLS = ("search_kb", "lookup_order", "update_ticket", "get_status")


def _node(nid: str, kind: str, t: float, parent: str | None, **kw: Any) -> dict[str, Any]:
    return {"node_id": nid, "kind": kind, "parent_id": parent, "start": t, "end": t + 0.5,
            "name": kw.pop("name", kind), **kw}


def _random_trace(rng: random.Random, i: int) -> dict[str, Any]:
    t0 = W46 + rng.uniform(0, 14 * DAY - 3600)
    nodes = [_node("root", "agent", t0, None, name="agent")]
    parent, t = "root", t0
    llms: list[str] = []
    for j in range(rng.randint(2, 14)):
        t += 1.0
        nid, roll = f"n{j}", rng.random()
        status = {"status": "error", "error_type": rng.choice(("Timeout", "SyntaxError"))} \
            if rng.random() < 0.15 else {}
        if roll < 0.1:
            nodes.append(_node(nid, "chain", t, "root", name=f"branch{j % 3}"))
            parent = nid
        elif roll < 0.45:
            model = rng.choice(MODELS)
            kw: dict[str, Any] = {"name": rng.choice(("classify", "answer", "summarize_notes")),
                                  "provider": "anthropic" if "claude" in model else "openai",
                                  "model": model, "input_tokens": rng.randint(200, 9000),
                                  "output_tokens": rng.randint(1, 600),
                                  "prompt": f"prompt {rng.randint(0, 3)}",
                                  "output": f"out {rng.randint(0, 2)}", **status}
            if llms and rng.random() < 0.2:
                kw["retry_of"] = rng.choice(llms)
            if rng.random() < 0.3:
                kw["uses"] = [f"d{rng.randint(0, 12)}"]
            nodes.append(_node(nid, "llm", t, parent, **kw))
            llms.append(nid)
        elif roll < 0.8:
            nodes.append(_node(nid, "tool", t, parent, tool_name=rng.choice(TOOLS),
                               args={"q": rng.randint(0, 2)}, result=f"r{rng.randint(0, 1)}",
                               reported_cost_usd=rng.choice((None, 0.001)), **status))
        elif roll < 0.92:
            nodes.append(_node(nid, "retrieval", t, parent, name="kb_search",
                               documents=[{"id": f"d{k}", "tokens": rng.randint(50, 900)}
                                          for k in range(rng.randint(1, 13))]))
        elif llms:
            nodes.append(_node(nid, "human", t, parent, decision=rng.choice(
                ("approve", "reject", "override")), review_target=rng.choice(llms)))
    if rng.random() < 0.6:
        nodes.append(_node("out", "outcome", t + 1, "root", outcome_status=rng.choice(
            ("success", "success", "failure", "escalated"))))
    return {"trace_id": f"rnd{i:04d}", "task_id": f"task{i // 2}",
            "workflow": rng.choice(("alpha", "beta")), "team": rng.choice(("red", "blue", None)),
            "nodes": nodes}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_store_waste_reconciles(client: TestClient, db_url: str, seed: int) -> None:
    rng = random.Random(seed)
    traces = [_random_trace(rng, i) for i in range(160)]
    for k in range(0, len(traces), 40):
        r = client.post("/api/v1/traces", json=traces[k:k + 40])
        assert r.status_code == 200, r.text
    r = client.post("/api/v1/analyze", json={})
    assert r.status_code == 200 and r.json()["traces_analyzed"] == len(traces), r.text
    total = check_window(client, db_url)
    assert total > 0 and abs(total - r.json()["wasted_cost_usd"]) <= TOL
    for w in (*_windows()[1:], {"workflow": "alpha"}, {"workflow": "beta", "since": W47}):
        check_window(client, db_url, **w)
    red = check_window(client, db_url, team="red")
    blue = check_window(client, db_url, team="blue", since=W46)
    assert 0 < red < total and 0 < blue < total
    check_window(client, db_url, team="red", workflow="alpha", since=W47)
    # the model filter is the trace's primary model on every route, so the split adds up
    by_model = [check_window(client, db_url, model=m) for m in MODELS]
    assert sum(1 for x in by_model if x > 0) >= 2
    groups = client.get("/api/v1/attribution", params={"group_by": "model"}).json()["groups"]
    no_model = sum(sum(g["waste_usd"].values()) for g in groups if g["key"]["model"] is None)
    assert abs(sum(by_model) + no_model - total) <= TOL * len(MODELS)  # (no LLM call: null)
    # a late outcome refreshes summaries without re-analysis: waste stays the findings'
    r = client.post("/api/v1/outcomes", json={"task_id": "task3", "status": "success"})
    assert r.status_code == 200, r.text
    check_window(client, db_url)
    check_digest(client, "2026-W47", W47)
    check_counterfactuals(client, db_url)
