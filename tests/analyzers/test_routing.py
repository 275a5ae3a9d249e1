"""Routing analyzer: every routing code's named positive and hard-negative fixture, plus the
counterfactual pricing (price table first, corpus-observed rates second, none: no finding)."""

from __future__ import annotations

import networkx as nx
import pytest

from analyzers import routing
from analyzers.baseline import StepSample, compute_baselines
from analyzers.config import AnalyzerConfig
from analyzers.tiers import cheaper_model, is_reasoning, model_tier
from fixtures.findings import load

CODES = [c for c in load.codes() if c.startswith("routing.")]


def test_every_routing_code_has_fixtures() -> None:
    assert len(CODES) == 4


@pytest.mark.parametrize("which", ["positive", "negative"])
@pytest.mark.parametrize("code", CODES)
def test_fixture(code: str, which: str) -> None:
    got = load.check(routing.analyze, code, which)
    if which == "positive":
        ev = got[0].evidence
        assert got[0].savings_usd == pytest.approx(got[0].wasted_cost_usd)
        assert "waste_by_node" in ev


def test_tier_table() -> None:
    assert [model_tier(m) for m in ("openai/gpt-4o", "gpt-4o-mini-2024-07-18", "o3-mini",
                                    "claude-3-5-haiku-latest", "nope")] == [
        "frontier", "small", "mid", "small", None]
    assert is_reasoning("o3") and not is_reasoning("gpt-4o")
    assert cheaper_model("gpt-4o-2024-11-20") == "gpt-4o-mini"


def _classify(cost: float = 0.00205) -> nx.DiGraph:
    G = nx.DiGraph(trace_id="t", workflow="w")
    G.add_node("l", kind="llm", name="classify_intent", model="gpt-4o", input_tokens=800,
               output_tokens=5, cost_usd=cost, order=0, status="ok")
    return G


def test_counterfactual_uses_corpus_rates_without_a_price_table() -> None:
    G = _classify()
    assert routing.analyze(G, baseline=None, config=AnalyzerConfig()) == []  # no price known
    rows = [StepSample("w", "other", "llm", "gpt-4o-mini", "small", 1000 * (i + 1), 10 * i,
                       0, True, (1000 * (i + 1) * 0.15 + 10 * i * 0.6) / 1e6) for i in range(5)]
    base = compute_baselines(rows)["w"]
    r = base.model_rates["gpt-4o-mini"]
    assert r.input == pytest.approx(0.15e-6) and r.output == pytest.approx(0.6e-6)
    [f] = routing.analyze(G, baseline=base, config=AnalyzerConfig())
    assert f.code == "routing.overpowered_model"
    assert f.wasted_cost_usd == pytest.approx(0.00205 - (800 * 0.15 + 5 * 0.6) / 1e6)
    assert f.evidence["alternative_model"] == "gpt-4o-mini"


def test_a_tool_calling_or_long_output_step_is_not_simple() -> None:
    cfg = load.config()
    G = _classify()
    G.nodes["l"]["output_tokens"] = 600
    assert routing.analyze(G, baseline=None, config=cfg) == []
    G = _classify()
    G.add_node("t", kind="tool", tool_name="lookup", order=1)
    G.add_edge("l", "t", kinds=("tool_call",), inferred=False)
    assert routing.analyze(G, baseline=None, config=cfg) == []
    G = _classify()
    G.nodes["l"]["name"] = "stage_two"  # "tag" inside a word is not the tag task
    assert routing.analyze(G, baseline=None, config=cfg) == []
