"""Churn analyzer: every churn code's named positive and hard-negative fixture, plus the rules
behind them (canonical keys, state changes, who pays for a redundant tool call)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from analyzers import churn
from analyzers.callkeys import call_key, canonical_args, lsh_pairs, minhash, shingles, similarity
from analyzers.config import AnalyzerConfig
from fixtures.findings import load

CODES = [c for c in load.codes() if c.startswith("churn.")]


def test_every_churn_code_has_fixtures() -> None:
    assert len(CODES) == 9


@pytest.mark.parametrize("which", ["positive", "negative"])
@pytest.mark.parametrize("code", CODES)
def test_fixture(code: str, which: str) -> None:
    got = load.check(churn.analyze, code, which)
    if which == "positive":
        f = got[0]
        assert 0 < f.confidence <= 1 and f.wasted_cost_usd > 0
        assert f"${f.wasted_cost_usd:,.4f}" in f.message or "$0.0000" in f.message
        assert set(f.evidence["waste_by_node"]) <= set(f.node_ids)


def test_canonical_args_strip_volatile_fields_and_whitespace() -> None:
    a = canonical_args({"q": " refund\n policy ", "timestamp": 1, "requestId": "x",
                        "filters": {"uuid": "u", "lang": "en"}})
    assert a == '{"filters":{"lang":"en"},"q":"refund policy"}'
    assert canonical_args('{"b": 1, "a": 2}') == canonical_args({"a": 2, "b": 1})
    # a different target is a different key
    k1 = call_key({"kind": "tool", "tool_name": "read", "args": {"path": "a.py"}})
    k2 = call_key({"kind": "tool", "tool_name": "read", "args": {"path": "b.py"}})
    assert k1 != k2 and k1 is not None


def test_minhash_estimates_jaccard_and_lsh_finds_the_pair() -> None:
    base = "the agent searched the knowledge base for the refund policy of order"
    sigs = [minhash(shingles(t)) for t in (base, base + " again", ("completely unrelated "
                                           "words about shipping labels and printers today"))]
    assert similarity(sigs[0], sigs[1]) >= 0.8
    assert similarity(sigs[0], sigs[2]) < 0.2
    assert lsh_pairs(sigs) == [(0, 1)]
    assert sigs[0].dtype == np.uint64 and minhash(shingles(base)).tolist() == sigs[0].tolist()


def _loop(results: list[str], between: str | None = None) -> nx.DiGraph:
    G = nx.DiGraph(trace_id="t", workflow="w")
    o = 0
    for i, r in enumerate(results):
        G.add_node(f"l{i}", kind="llm", parent_id="root", order=o, cost_usd=0.01)
        G.add_node(f"t{i}", kind="tool", parent_id="root", order=o + 1, tool_name="get_status",
                   args={"id": 1}, result=r, cost_usd=0.001)
        o += 2
        if between and i == 0:
            G.add_node("x", kind="tool", parent_id="root", order=o, tool_name=between,
                       args={"v": 2}, result="ok", cost_usd=0.0)
            o += 1
    return G


def test_state_change_between_repeats_is_not_churn() -> None:
    cfg = AnalyzerConfig()
    assert [f.code for f in churn.analyze(_loop(["a", "a"]), baseline=None, config=cfg)] == [
        "churn.exact_repeat"]
    assert churn.analyze(_loop(["a", "a"], between="update_ticket"), baseline=None,
                         config=cfg) == []
    # a read-only call between does not reset the repeat
    assert len(churn.analyze(_loop(["a", "a"], between="search_kb"), baseline=None,
                             config=cfg)) == 1


def test_redundant_tool_call_is_paid_by_its_issuing_turn() -> None:
    [f] = churn.analyze(_loop(["a", "a"]), baseline=None, config=AnalyzerConfig())
    assert f.node_ids == ("t0", "l1", "t1")
    assert f.evidence["waste_by_node"] == {"t1": 0.001, "l1": 0.01}
    assert f.wasted_cost_usd == pytest.approx(0.011)
    assert "$0.0110" in f.message


def test_tight_loop_threshold_is_configurable() -> None:
    G = _loop(["a", "a", "a"])
    assert [f.code for f in churn.analyze(G, baseline=None, config=AnalyzerConfig())] == [
        "churn.tight_loop"]
    assert [f.code for f in churn.analyze(G, baseline=None,
                                          config=AnalyzerConfig(tight_loop_min=4))] == [
        "churn.exact_repeat"]


def test_cycle_threshold_of_one_round_on_a_short_stream() -> None:
    """``cycle_min_repeats=1`` on A-B-A whose A results differ: no period fits, so nothing is
    found (this raised IndexError once: the period-3 probe read past the stream's end)."""
    G = nx.DiGraph(trace_id="t", workflow="w")
    calls = [("get_status", {"id": 1}, "open"), ("get_order", {"id": 7}, "x"),
             ("get_status", {"id": 1}, "closed")]
    for i, (tool, args, result) in enumerate(calls):
        G.add_node(f"t{i}", kind="tool", parent_id="root", order=i, tool_name=tool, args=args,
                   result=result, cost_usd=0.001)
    for m in (1, 2, 3):
        assert churn.analyze(G, baseline=None, config=AnalyzerConfig(cycle_min_repeats=m)) == []


def test_dead_end_branch_beside_consumed_steps() -> None:
    """A sub-agent whose output nothing reads, next to tool results the answer does read
    (the shape of the demo's unread fraud screen)."""
    G = nx.DiGraph(trace_id="t", workflow="w")
    rows = [("root", "agent", None, 0.0), ("fetch", "tool", "root", 0.0),
            ("screen", "agent", "root", 0.0), ("signals", "llm", "screen", 0.004),
            ("prior", "tool", "screen", 0.001), ("assess", "llm", "root", 0.02)]
    for i, (n, kind, parent, cost) in enumerate(rows):
        G.add_node(n, kind=kind, parent_id=parent, order=i, cost_usd=cost, name=n)
        if parent:
            G.add_edge(parent, n, kinds=("parent",), inferred=False)
    G.add_edge("fetch", "assess", kinds=("uses",), inferred=False)
    G.add_edge("signals", "prior", kinds=("tool_call",), inferred=False)
    [f] = churn.analyze(G, baseline=None, config=AnalyzerConfig())
    assert (f.code, f.node_ids) == ("churn.dead_end", ("screen", "signals", "prior"))
    assert f.wasted_cost_usd == pytest.approx(0.005)
    # once the answer reads the screen's result, it is not a dead end
    G.add_edge("signals", "assess", kinds=("uses",), inferred=False)
    assert churn.analyze(G, baseline=None, config=AnalyzerConfig()) == []
    # without explicit uses edges the rule stays silent (the causal set would be a guess)
    H = G.copy()
    H.remove_edges_from([("fetch", "assess"), ("signals", "assess")])
    assert churn.analyze(H, baseline=None, config=AnalyzerConfig()) == []
