"""analyze_trace: all fixtures end to end, booking each node's waste once, determinism, purity,
and the baseline helpers the analysis runtime calls."""

from __future__ import annotations

import copy
import json

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzers.baseline import WorkflowBaseline, collect_samples, step_key
from analyzers.graph import node_cost
from analyzers.run import AnalyzerConfig, analyze_trace, compute_baselines
from fixtures.findings import load

CASES = [(c, w) for c in load.codes() for w in ("positive", "negative")]


def test_every_code_has_a_positive_and_a_negative_fixture() -> None:
    from analyzers.findings import CODES

    assert load.codes() == sorted(CODES)


def test_fixtures_are_small_named_traces() -> None:
    for code in load.codes():
        for which in ("positive", "negative"):
            doc = json.loads((load.ROOT / code / f"{which}.json").read_text())
            assert doc["trace_id"] == f"{code}.{which}"
            assert 5 <= len(doc["nodes"]) <= 50, (code, which)


@pytest.mark.parametrize(("code", "which"), CASES)
def test_fixture_end_to_end(code: str, which: str) -> None:
    G, base, expected = load.case(code, which)
    got = analyze_trace(G, baseline=base, config=load.config())
    assert load.matches(got, expected), load.summary(got)
    total = sum(node_cost(a) for _, a in G.nodes(data=True))
    assert sum(f.wasted_cost_usd for f in got) <= total + 1e-12
    for f in got:
        json.dumps(f.evidence)  # JSON-safe, no default needed
        assert f.message.endswith(".") and "$" in f.message


def test_clean_trace_yields_nothing() -> None:
    G = load.trace_graph(json.loads((load.ROOT / "clean.json").read_text()))
    assert analyze_trace(G, baseline=None, config=load.config()) == []
    assert analyze_trace(G, baseline=None) == []


def _overlapping() -> nx.DiGraph:
    """Four identical frontier calls on a simple step: churn, routing and bloat all claim
    the same nodes."""
    G = nx.DiGraph(trace_id="t", workflow="w")
    for i in range(4):
        G.add_node(f"l{i}", kind="llm", name="classify_ticket", model="gpt-4o",
                   input_tokens=800 + 600 * i, output_tokens=5, prompt="Classify: late refund",
                   output="billing", cost_usd=(800 + 600 * i) * 2.5e-6 + 5e-5, order=i,
                   parent_id="root", status="ok")
    return G


def test_each_nodes_waste_is_booked_once() -> None:
    G = _overlapping()
    got = analyze_trace(G, baseline=None, config=load.config())
    codes = [f.code for f in got]
    assert codes == ["churn.tight_loop", "routing.overpowered_model"]
    booked: dict[str, float] = {}
    for f in got:
        for n, w in f.evidence["waste_by_node"].items():
            booked[n] = booked.get(n, 0.0) + w
    for n, w in booked.items():
        assert w <= node_cost(G.nodes[n]) + 1e-12
    # the loop takes l1..l3 whole; only the first call is left for routing
    assert set(got[1].node_ids) == {"l0"}
    assert sum(f.wasted_cost_usd for f in got) <= sum(
        node_cost(a) for _, a in G.nodes(data=True))


def test_waste_on_unpriced_steps_is_reported_not_dropped() -> None:
    G = nx.DiGraph(trace_id="t", workflow="w")
    G.add_node("l", kind="llm", model="gpt-4o-mini", cost_usd=0.001, order=0, parent_id="r")
    for i in range(3):  # one turn issued three identical failing calls; tools are unpriced
        G.add_node(f"t{i}", kind="tool", tool_name="fetch_policy", args={"id": 1}, order=1 + i,
                   status="error", error_type="Unavailable", cost_usd=None, parent_id="r")
        G.add_edge("l", f"t{i}", kinds=("tool_call",), inferred=False)
    [f] = analyze_trace(G, baseline=None)
    assert f.code == "churn.error_loop" and f.wasted_cost_usd == 0.0
    assert f.evidence["unpriced_nodes"] == ["t1", "t2"]
    assert "an unpriced amount wasted" in f.message


def test_deterministic_and_does_not_touch_the_graph() -> None:
    G, base, _ = load.case("churn.cycle", "positive")
    before = copy.deepcopy(nx.node_link_data(G, edges="links"))
    a = analyze_trace(G, baseline=base, config=load.config())
    b = analyze_trace(G, baseline=base, config=load.config())
    assert a == b and a[0].id == b[0].id
    assert nx.node_link_data(G, edges="links") == before


def test_step_key_rules() -> None:
    G = nx.DiGraph(trace_id="t", workflow="w")
    G.add_node("a", kind="agent", name="triage", order=0)
    G.add_node("s", kind="llm", step="classify", name="chat gpt-4o", parent_id="a", order=1)
    G.add_node("p", kind="llm", name="chat gpt-4o", parent_id="a", order=2,
               attributes={"gen_ai.prompt.name": "draft_v2"})
    G.add_node("n", kind="llm", name="summarise", model="gpt-4o", parent_id="a", order=3)
    G.add_node("g1", kind="llm", name="chat gpt-4o", model="gpt-4o", parent_id="a", order=4)
    G.add_node("g2", kind="llm", name="ChatOpenAI", model="gpt-4o", parent_id="a", order=5)
    assert [step_key(G, n) for n in ("s", "p", "n", "g1", "g2")] == [
        "classify", "draft_v2", "summarise", "triage/llm#0", "triage/llm#1"]


def test_baselines_round_trip_and_use_numpy_medians() -> None:
    graphs = [load.case(c, "positive")[0] for c in load.codes()]
    samples = [s for G in graphs for s in collect_samples(G)]
    assert samples and all(s.workflow == "support" for s in samples)
    base = compute_baselines(samples)["support"]
    assert WorkflowBaseline.from_dict(json.loads(json.dumps(base.to_dict()))) == base
    hist = base.steps["support_agent/llm#0"]
    assert hist.n >= 1 and hist.median_input > 0
    assert base.model_rates["gpt-4o"].input == pytest.approx(2.5e-6, rel=1e-6)
    assert AnalyzerConfig().routing_min_samples == 20


_node = st.fixed_dictionaries({
    "kind": st.sampled_from(["llm", "tool", "retrieval", "agent", "chain", "human", "guardrail",
                             "outcome"]),
    "name": st.sampled_from(["", "chat gpt-4o", "classify_ticket", "search", "draft_reply"]),
    "model": st.sampled_from([None, "gpt-4o", "gpt-4o-mini", "o3", "mystery-1"]),
    "tool_name": st.sampled_from([None, "search_kb", "edit_file"]),
    "args": st.one_of(st.none(), st.sampled_from([{}, {"q": "a"}, "[1, 2", '{"q": "a"}', 7])),
    "result": st.one_of(st.none(), st.sampled_from(["x", "y", '{"a": 1}'])),
    "prompt": st.one_of(st.none(), st.sampled_from(["p", "p p p p", "x" * 5000])),
    "output": st.one_of(st.none(), st.sampled_from(["o", "d1 used"])),
    "status": st.sampled_from(["ok", "error"]),
    "input_tokens": st.integers(0, 20000),
    "output_tokens": st.integers(0, 3000),
    "reasoning_tokens": st.integers(0, 3000),
    "cache_read_tokens": st.integers(0, 5000),
    "cost_usd": st.one_of(st.none(), st.floats(0, 1)),
    "documents": st.one_of(st.none(), st.lists(st.fixed_dictionaries(
        {"id": st.sampled_from(["d1", "d2", "d3"]), "tokens": st.integers(0, 3000)}),
        max_size=12)),
    "decision": st.sampled_from([None, "reject", "approve"]),
    "outcome_status": st.sampled_from([None, "success", "failure"]),
})


@settings(max_examples=40, deadline=None)
@given(st.lists(_node, min_size=1, max_size=25), st.data())
def test_any_graph_is_analysed_within_its_cost(nodes: list[dict], data: st.DataObject) -> None:
    from tracestore.store.graph import build_trace_graph

    rows = []
    for i, n in enumerate(nodes):
        row = {"node_id": f"n{i}", "start": 1794819600.0 + i, **n,
               "parent_id": f"n{data.draw(st.integers(0, i - 1))}" if i else None}
        if i and data.draw(st.booleans()):
            row["retry_of"] = f"n{data.draw(st.integers(0, i - 1))}"
        if i and n["kind"] in ("llm", "human") and data.draw(st.booleans()):
            row["uses" if n["kind"] == "llm" else "review_target"] = (
                ["d1", f"n{i - 1}"] if n["kind"] == "llm" else f"n{i - 1}")
        rows.append(row)
    G = build_trace_graph({"trace_id": "t", "workflow": "w"}, rows, [])
    samples = collect_samples(G)
    base = compute_baselines(samples * 25).get("w")
    found = analyze_trace(G, baseline=base, config=load.config())
    assert sum(f.wasted_cost_usd for f in found) <= sum(
        node_cost(a) for _, a in G.nodes(data=True)) + 1e-9
    for f in found:
        json.dumps(f.evidence)
        assert 0 <= f.confidence <= 1 and f.wasted_cost_usd >= 0
        # $0 only when the wasted steps carry no price, and then it says so
        assert f.wasted_cost_usd > 0 or (f.evidence["unpriced_nodes"]
                                         and "unpriced" in f.message)
