"""Control-flow churn: retry storms that count only unchanged retries, advice that fits the
error, and dead ends proven by explicit ``uses`` edges — each with its hard negatives."""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest

from analyzers import churn
from analyzers.config import AnalyzerConfig
from tracestore.store.graph import build_trace_graph

CFG = AnalyzerConfig()


def _graph(nodes: list[dict[str, Any]]) -> nx.DiGraph[str]:
    rows = [{"node_id": "R", "kind": "agent", "name": "agent", "start": 0.0, "end": 99.0}]
    for i, n in enumerate(nodes):
        rows.append({"parent_id": "R", "start": float(i + 1), "end": i + 1.5, "status": "ok",
                     **n})
    return build_trace_graph({"trace_id": "t", "workflow": "w"}, rows, [])


def _llm(nid: str, prompt: str, cost: float = 0.01, **kw: Any) -> dict[str, Any]:
    return {"node_id": nid, "kind": "llm", "name": "draft_reply", "model": "gpt-4o",
            "prompt": prompt, "input_tokens": 1000, "output_tokens": 100, "cost_usd": cost,
            **kw}


def _attempts(prompts: list[str], error: str = "ValidationError") -> nx.DiGraph[str]:
    nodes = []
    for i, p in enumerate(prompts):
        last = i == len(prompts) - 1
        kw: dict[str, Any] = {} if last else {"status": "error", "error_type": error}
        if i:
            kw["retry_of"] = f"a{i - 1}"
        nodes.append(_llm(f"a{i}", p, output="ok" if last else None, **kw))
    return _graph(nodes)


def codes(G: nx.DiGraph[str]) -> list[str]:
    return [f.code for f in churn.analyze(G, baseline=None, config=CFG)]


def test_retries_with_changed_arguments_are_fixes_not_a_storm() -> None:
    assert codes(_attempts(["Reply to T1.", "Reply to T1 briefly.", "Reply to T1 in one line."])
                 ) == []
    # one unchanged retry among fixes: 2 attempts of one input, cheap -> still quiet
    G = _attempts(["Reply to T1.", "Reply to T1.", "Reply to T1 in one line.", "Reply, T1."])
    G.add_node("big", kind="llm", cost_usd=1.0, order=99, parent_id="R", name="other")
    assert codes(G) == []


def test_three_unchanged_attempts_are_a_storm_with_advice_for_transient_errors() -> None:
    [f] = churn.analyze(_attempts(["Reply to T1."] * 3, error="ReadTimeout"), baseline=None,
                        config=CFG)
    assert f.code == "churn.retry_storm" and f.wasted_cost_usd == pytest.approx(0.02)
    assert f.evidence["repeated_unchanged"] == 2 and f.evidence["transient"] is True
    assert "back off" in f.message and "fix the cause" not in f.message
    [f] = churn.analyze(_attempts(["Reply to T1."] * 3), baseline=None, config=CFG)
    assert "fix the cause" in f.message


def _tool_loop(error: str, then_ok: bool) -> nx.DiGraph[str]:
    nodes = []
    for i in range(3 + then_ok):
        ok = then_ok and i == 3
        nodes.append({"node_id": f"t{i}", "kind": "tool", "name": "fetch", "tool_name": "fetch",
                      "args": {"url": "https://x/y"}, "cost_usd": 0.001,
                      **({"result": "page"} if ok else {"status": "error",
                                                         "error_type": error})})
    return _graph(nodes)


@pytest.mark.parametrize(("error", "then_ok", "advice"), [
    ("SyntaxError", False, "deterministic"),
    ("ReadTimeout", False, "transient"),
    ("ConnectionError", True, "intermittent"),
    ("ValueError", True, "intermittent"),
])
def test_error_loop_advice_fits_the_error(error: str, then_ok: bool, advice: str) -> None:
    [f] = churn.analyze(_tool_loop(error, then_ok), baseline=None, config=CFG)
    assert f.code == "churn.error_loop" and advice in f.message
    assert ("deterministic" in f.message) == (advice == "deterministic")
    assert f.evidence["later_identical_call_succeeded"] is then_ok


def _draft_trace(**draft: Any) -> nx.DiGraph[str]:
    return _graph([
        {"node_id": "r", "kind": "retrieval", "name": "kb", "documents": [{"id": "d1"}]},
        _llm("draft", "Draft an answer.", **draft),
        _llm("answer", "Answer with d1.", cost=0.02, uses=["d1"]),
    ])


def test_a_draft_nobody_used_is_a_dead_end() -> None:
    [f] = churn.analyze(_draft_trace(), baseline=None, config=CFG)
    assert (f.code, f.node_ids, f.wasted_cost_usd) == ("churn.dead_end", ("draft",), 0.01)
    assert f.evidence["consumer"] == "answer" and f.evidence["consumer_inputs"] == ["r"]


def test_dead_end_hard_negatives() -> None:
    # a failed call is a failure, not abandoned work
    assert codes(_draft_trace(status="error", error_type="Timeout")) == []
    # the answer consumed the draft
    G = _draft_trace()
    G.add_edge("draft", "answer", kinds=("uses",), inferred=False)
    assert codes(G) == []
    # no explicit uses edges: the causal set would be a guess
    G = _graph([_llm("draft", "Draft an answer."), _llm("answer", "Answer.", cost=0.02)])
    assert codes(G) == []
