"""The read API through the real app on every backend: trace list filters, both orders,
keyset pagination, trace detail and the node-link graph, edge by edge."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tracestore.schemas import iso

# 2026-11-16T00:00:00Z, Monday of ISO week 2026-W47.
T0 = 1794787200.0
WORKFLOWS = ("support_triage", "claims_processing", "code_review")
N_TRACES = 120


def _corpus_trace(i: int) -> dict[str, Any]:
    """Trace ``i`` of the pagination corpus. Every third trace has no LLM call and so costs
    exactly $0 (ties on the cost order); every seventh has an error node."""
    t = T0 + i * 60.0
    nodes: list[dict[str, Any]] = [
        {"node_id": "root", "kind": "agent", "name": "run", "start": t, "end": t + 5},
    ]
    if i % 3:
        nodes.append({"node_id": "llm", "parent_id": "root", "kind": "llm", "name": "answer",
                      "provider": "openai", "model": "gpt-4o-mini",
                      "input_tokens": 1000 + 10 * (i % 17), "output_tokens": 100,
                      "start": t + 1, "end": t + 2})
    if i % 7 == 0:
        nodes.append({"node_id": "tool", "parent_id": "root", "kind": "tool", "name": "fetch",
                      "tool_name": "fetch", "args": {"i": i}, "status": "error",
                      "error_type": "timeout", "start": t + 3, "end": t + 4})
    return {
        "trace_id": f"tr-{i:03d}",
        "workflow": WORKFLOWS[i % 3],
        "team": "alpha" if i % 2 else "beta",
        "feature": f"f{i % 4}",
        "task_id": f"TASK-{i // 2}",  # two traces per task
        "nodes": nodes,
    }


def _untimed_trace(i: int) -> dict[str, Any]:
    """A trace whose nodes carry no timestamps (started_at stays null)."""
    return {"trace_id": f"untimed-{i}", "workflow": "support_triage", "team": "alpha",
            "nodes": [{"node_id": "n", "kind": "chain", "name": "x"}]}


@pytest.fixture
def corpus(client: TestClient) -> list[dict[str, Any]]:
    traces = [_corpus_trace(i) for i in range(N_TRACES)] + [_untimed_trace(i) for i in range(2)]
    for k in range(0, len(traces), 50):
        r = client.post("/api/v1/traces", json=traces[k : k + 50])
        assert r.status_code == 200, r.text
    return traces


def _all_pages(client: TestClient, limit: int, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        q = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = client.get("/api/v1/traces", params=q)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not terminate")


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [t["trace_id"] for t in items]


def test_every_filter_selects_exactly_the_matching_traces(
    client: TestClient, corpus: list[dict[str, Any]]
) -> None:
    timed = corpus[:N_TRACES]

    def expect(pred: Any) -> set[str]:
        return {t["trace_id"] for t in timed if pred(t)}

    def got(**params: Any) -> set[str]:
        return set(_ids(_all_pages(client, 1000, **params)))

    claims = expect(lambda t: t["workflow"] == "claims_processing")
    assert got(workflow="claims_processing") == claims
    assert len(got(workflow="claims_processing")) == 40
    # untimed traces are listed too (after all timed ones)
    assert got(team="alpha") == expect(lambda t: t["team"] == "alpha") | {"untimed-0", "untimed-1"}
    assert got(feature="f2") == expect(lambda t: t["feature"] == "f2")
    assert got(task_id="TASK-7") == {"tr-014", "tr-015"}
    since, until = iso(T0 + 30 * 60), iso(T0 + 40 * 60)
    assert got(since=since) == {f"tr-{i:03d}" for i in range(30, N_TRACES)}
    assert got(until=until) == {f"tr-{i:03d}" for i in range(40)}
    assert got(since=since, until=until) == {f"tr-{i:03d}" for i in range(30, 40)}
    assert got(since=T0 + 30 * 60, until=T0 + 40 * 60) == got(since=since, until=until)
    errored = expect(lambda t: any(n.get("status") == "error" for n in t["nodes"]))
    assert got(has_error="true") == errored and len(errored) == 18
    assert got(has_error="false") == {t["trace_id"] for t in corpus} - errored
    combo = got(workflow="support_triage", team="beta", has_error="true")
    assert combo == expect(lambda t: t["workflow"] == "support_triage" and t["team"] == "beta"
                           and t["trace_id"] in errored)
    assert combo == {"tr-000", "tr-042", "tr-084"}
    assert got(workflow="no_such_workflow") == set()


@pytest.mark.parametrize("order", ["start", "cost"])
@pytest.mark.parametrize("limit", [7, 50])
def test_cursor_pagination_returns_every_trace_once_in_order(
    client: TestClient, corpus: list[dict[str, Any]], order: str, limit: int
) -> None:
    everything = _ids(_all_pages(client, 1000, order=order))
    paged = _all_pages(client, limit, order=order)
    assert _ids(paged) == everything
    assert len(set(_ids(paged))) == len(corpus)
    if order == "start":  # untimed traces (null started_at) come last, by id
        assert _ids(paged) == [f"tr-{i:03d}" for i in reversed(range(N_TRACES))] + [
            "untimed-1", "untimed-0"]
    else:
        keys = [(t["cost_usd"], t["trace_id"]) for t in paged]
        assert keys == sorted(keys, reverse=True)
        assert sum(1 for t in paged if t["cost_usd"] == 0) == 40 + 2  # ties broken by id
        assert paged[0]["cost_usd"] > 0


@pytest.mark.parametrize("order", ["start", "cost"])
def test_cursor_pagination_with_a_filter(
    client: TestClient, corpus: list[dict[str, Any]], order: str
) -> None:
    paged = _all_pages(client, 6, order=order, workflow="code_review", team="beta")
    want = {t["trace_id"] for t in corpus[:N_TRACES]
            if t["workflow"] == "code_review" and t["team"] == "beta"}
    assert len(paged) == len(want) == 20
    assert set(_ids(paged)) == want
    assert _ids(paged) == _ids(_all_pages(client, 1000, order=order, workflow="code_review",
                                          team="beta"))


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor!!"},
        {"cursor": "WzEsMiwzXQ"},  # base64 of [1,2,3]: wrong arity
        {"cursor": "eyJhIjoxfQ"},  # base64 of {"a":1}
        {"cursor": "WyJ4IiwxXQ"},  # base64 of ["x",1]: wrong types
        {"order": "name"},
        {"limit": 0},
        {"limit": 1001},
        {"since": "yesterday"},
        {"has_error": "maybe"},
    ],
)
def test_bad_list_parameters_are_problem_json(client: TestClient, params: dict[str, Any]) -> None:
    r = client.get("/api/v1/traces", params=params)
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == r.status_code
    if "cursor" in params:
        assert r.status_code == 400 and "cursor" in body["detail"]


def _rich_trace() -> dict[str, Any]:
    """A RAG + tool + review trace exercising every edge kind."""
    s = "2026-11-16T09:00:0{}Z".format
    return {
        "trace_id": "rich",
        "workflow": "support_triage",
        "task_id": "TICKET-9",
        "team": "support",
        "feature": "refunds",
        "user_id": "u1",
        "session_id": "s1",
        "environment": "prod",
        "tags": ["vip"],
        "nodes": [
            {"node_id": "root", "kind": "agent", "name": "triage", "start": s(0), "end": s(9)},
            {"node_id": "ret", "parent_id": "root", "kind": "retrieval", "name": "kb_search",
             "start": s(1), "end": s(2), "top_k": 3, "query": "refund policy",
             "documents": [{"id": "kb-1", "score": 0.9, "tokens": 300, "content": "Refunds…"},
                           {"id": "kb-2", "score": 0.8, "tokens": 200},
                           {"id": "kb-3", "score": 0.7, "tokens": 100}]},
            {"node_id": "llm1", "parent_id": "root", "kind": "llm", "name": "answer",
             "provider": "openai", "model": "gpt-4o", "input_tokens": 2000,
             "output_tokens": 200, "start": s(3), "end": s(4), "status": "error",
             "error_type": "rate_limit", "tool_call_id": "call-1"},
            {"node_id": "tool", "parent_id": "root", "kind": "tool", "name": "lookup_order",
             "tool_name": "lookup_order", "args": {"order": "A1"}, "result": {"state": "paid"},
             "tool_call_id": "call-1", "start": s(4), "end": s(5)},
            {"node_id": "llm2", "parent_id": "root", "kind": "llm", "name": "answer",
             "provider": "openai", "model": "gpt-4o", "input_tokens": 2100,
             "output_tokens": 250, "start": s(5), "end": s(6), "retry_of": "llm1",
             "uses": ["kb-1", "kb-3", "tool", "no-such-doc"],
             "prompt": "Answer the ticket", "output": "You will be refunded."},
            {"node_id": "rev", "parent_id": "root", "kind": "human", "name": "agent_review",
             "decision": "edit", "review_target": "llm2", "review_minutes": 2.5,
             "start": s(7), "end": s(8)},
            {"node_id": "out", "parent_id": "root", "kind": "outcome", "name": "resolved",
             "outcome_status": "success", "outcome_type": "ticket_resolved",
             "outcome_value_usd": 12.0, "start": s(9)},
        ],
        "edges": [
            {"src": "llm1", "dst": "tool", "kind": "tool_call"},
            {"src": "ret", "dst": "llm1", "kind": "link"},
            {"src": "ghost", "dst": "llm1", "kind": "link"},  # dangling: dropped from the graph
        ],
    }


def test_trace_detail_fields(client: TestClient) -> None:
    assert client.post("/api/v1/traces", json=_rich_trace()).status_code == 200
    r = client.get("/api/v1/traces/rich")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    t = r.json()
    assert (t["trace_id"], t["workflow"], t["task_id"], t["team"], t["feature"]) == (
        "rich", "support_triage", "TICKET-9", "support", "refunds")
    assert (t["user_id"], t["session_id"], t["environment"], t["tags"]) == (
        "u1", "s1", "prod", ["vip"])
    assert t["started_at"] == "2026-11-16T09:00:00.000Z"
    assert t["ended_at"] == "2026-11-16T09:00:09.000Z"
    assert t["duration_ms"] == 9000.0
    assert (t["node_count"], t["llm_calls"], t["error_count"]) == (7, 2, 1)
    assert (t["input_tokens"], t["output_tokens"]) == (4100, 450)
    # gpt-4o list price in the bundled genai-prices data: $2.50 in / $10 out per MTok.
    assert t["cost_usd"] == pytest.approx((4100 * 2.5 + 450 * 10) / 1e6)
    assert t["unpriced_count"] == 0
    assert [n["node_id"] for n in t["nodes"]] == ["root", "ret", "llm1", "tool", "llm2", "rev",
                                                  "out"]
    by_id = {n["node_id"]: n for n in t["nodes"]}
    assert by_id["llm1"]["cost_usd"] == pytest.approx((2000 * 2.5 + 200 * 10) / 1e6)
    assert by_id["ret"]["documents"][0]["id"] == "kb-1"
    assert by_id["ret"]["documents"][0]["content_hash"]
    assert by_id["tool"]["args"] == {"order": "A1"}
    assert by_id["tool"]["result"] == '{"state":"paid"}'
    assert by_id["llm2"]["retry_of"] == "llm1"
    assert by_id["llm2"]["uses"] == ["kb-1", "kb-3", "tool", "no-such-doc"]
    assert by_id["llm2"]["prompt_hash"] and by_id["llm2"]["output"] == "You will be refunded."
    assert (by_id["rev"]["decision"], by_id["rev"]["review_target"],
            by_id["rev"]["review_minutes"]) == ("edit", "llm2", 2.5)
    assert sorted((e["src"], e["dst"], e["kind"]) for e in t["edges"]) == [
        ("ghost", "llm1", "link"), ("llm1", "tool", "tool_call"), ("ret", "llm1", "link")]
    assert t["outcomes"] == [{"task_id": "TICKET-9", "status": "success",
                              "type": "ticket_resolved", "value_usd": 12.0,
                              "occurred_at": "2026-11-16T09:00:09.000Z", "trace_id": "rich",
                              "workflow": "support_triage"}]
    assert t["findings"] == []
    r = client.get("/api/v1/traces/nope")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_trace_graph_edge_by_edge(client: TestClient) -> None:
    assert client.post("/api/v1/traces", json=_rich_trace()).status_code == 200
    r = client.get("/api/v1/traces/rich/graph")
    assert r.status_code == 200, r.text
    g = r.json()
    assert g["directed"] is True
    assert g["graph"]["trace_id"] == "rich" and g["graph"]["task_id"] == "TICKET-9"
    nodes = {n["id"]: n for n in g["nodes"]}
    assert set(nodes) == {"root", "ret", "llm1", "tool", "llm2", "rev", "out"}
    assert [nodes[k]["order"] for k in ("root", "ret", "llm1", "tool", "llm2", "rev", "out")] == [
        0, 1, 2, 3, 4, 5, 6]
    assert nodes["llm1"]["kind"] == "llm" and nodes["llm1"]["status"] == "error"
    edges = {(e["source"], e["target"]): e for e in g["links"]}
    want = {
        ("root", "ret"): (["parent"], None),
        ("root", "llm1"): (["parent"], None),
        ("root", "tool"): (["parent"], None),
        ("root", "llm2"): (["parent"], None),
        ("root", "rev"): (["parent"], None),
        ("root", "out"): (["parent"], None),
        ("llm1", "llm2"): (["retry_of"], None),
        ("ret", "llm2"): (["uses"], ["kb-1", "kb-3"]),
        ("tool", "llm2"): (["uses"], None),
        ("llm2", "rev"): (["reviews"], None),
        ("llm1", "tool"): (["tool_call"], None),
        ("ret", "llm1"): (["link"], None),
    }
    assert set(edges) == set(want)
    for key, (kinds, docs) in want.items():
        assert edges[key]["kinds"] == kinds, key
        assert edges[key]["inferred"] is False, key
        assert edges[key].get("doc_ids") == docs, key
    r = client.get("/api/v1/traces/nope/graph")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_uses_picks_the_latest_retrieval_before_the_consumer(client: TestClient) -> None:
    s = "2026-11-16T10:00:0{}Z".format
    trace = {"trace_id": "two-ret", "nodes": [
        {"node_id": "r1", "kind": "retrieval", "start": s(1), "documents": [{"id": "d"}]},
        {"node_id": "l1", "kind": "llm", "start": s(2), "uses": ["d"]},
        {"node_id": "r2", "kind": "retrieval", "start": s(3), "documents": [{"id": "d"}]},
        {"node_id": "l2", "kind": "llm", "start": s(4), "uses": ["d"]},
    ]}
    assert client.post("/api/v1/traces", json=trace).status_code == 200
    g = client.get("/api/v1/traces/two-ret/graph").json()
    assert sorted((e["source"], e["target"], tuple(e["doc_ids"])) for e in g["links"]) == [
        ("r1", "l1", ("d",)), ("r2", "l2", ("d",))]
