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
    # a 120-token output that is not a label: "tag" inside a word is not the tag task
    G.nodes["l"].update(name="stage_two", output_tokens=120)
    assert routing.analyze(G, baseline=None, config=cfg) == []


def _call(name: str, inp: int, out: int, model: str = "gpt-4o", **kw: object) -> nx.DiGraph:
    G = nx.DiGraph(trace_id="t", workflow="w")
    r = PRICES[model]
    cost = (inp * r["input_mtok"] + out * r["output_mtok"]) / 1e6
    G.add_node("l", kind="llm", name=name, model=model, input_tokens=inp, output_tokens=out,
               cost_usd=cost, order=0, status="ok", **kw)
    return G


PRICES = {"gpt-4o": {"input_mtok": 2.5, "output_mtok": 10.0},
          "gpt-4o-mini": {"input_mtok": 0.15, "output_mtok": 0.6},
          "gpt-5": {"input_mtok": 1.25, "output_mtok": 10.0},
          "gpt-5-mini": {"input_mtok": 0.25, "output_mtok": 2.0}}
CFG = AnalyzerConfig(price_table=PRICES)


def _samples(step: str, tier_model: str, n: int, ok: int) -> list[StepSample]:
    return [StepSample("w", step, "llm", tier_model, model_tier(tier_model), 1000, 50, 0,
                       i < ok, None) for i in range(n)]


def test_overpowered_from_the_step_shape_not_its_name() -> None:
    """A two-line summary (90 output tokens of 3,000 read, no tools) on gpt-4o: flagged with
    no corpus at all, priced on the same vendor's cheaper model, recomputable from evidence."""
    G = _call("summarize_changes", 3000, 90)
    [f] = routing.analyze(G, baseline=None, config=CFG)
    assert f.code == "routing.overpowered_model" and f.evidence["shape"] == "summarize"
    assert f.confidence == 0.5 and f.evidence["alternative_model"] == "gpt-4o-mini"
    ev = f.evidence
    rates, use = ev["alternative_rates_per_mtok"], ev["usage"]
    alt = (use["uncached_input_tokens"] * rates["input"] + use["output_tokens"]
           * rates["output"]) / 1e6
    assert f.wasted_cost_usd == pytest.approx(G.nodes["l"]["cost_usd"] - alt, abs=1e-9)
    # a label-sized output under any name; structured output (JSON) under any name
    assert [x.evidence["shape"] for x in routing.analyze(
        _call("step_7", 900, 3), baseline=None, config=CFG)] == ["label"]
    assert [x.evidence["shape"] for x in routing.analyze(
        _call("step_7", 900, 60, output='{"policy_id": "P-1", "amount": 12.5}'),
        baseline=None, config=CFG)] == ["structured"]
    # the instruction at the head of the prompt names the task
    assert [x.evidence["shape"] for x in routing.analyze(
        _call("step_7", 3000, 90, prompt="Summarise this diff in two lines.\n..."),
        baseline=None, config=CFG)] == ["summarise"]


def test_overpowered_hard_negatives() -> None:
    # an answer of 100 tokens from a long prompt with no classify/extract/summarise task
    assert routing.analyze(_call("answer_ticket", 2000, 100,
                                 prompt="You are the support assistant of Acme. Policy 1."),
                           baseline=None, config=CFG) == []
    # reasoning that was used (150 of 200 output tokens; 30 of a 40-token label)
    assert routing.analyze(_call("summarize_plan", 3000, 200, model="gpt-5",
                                 reasoning_tokens=150), baseline=None, config=CFG) == []
    assert routing.analyze(_call("classify_risk", 3000, 40, model="gpt-5",
                                 reasoning_tokens=30), baseline=None, config=CFG) == []
    # a step that calls tools
    G = _call("summarize_changes", 3000, 90)
    G.add_node("t", kind="tool", tool_name="read_file", order=1)
    G.add_edge("l", "t", kinds=("tool_call",), inferred=False)
    assert routing.analyze(G, baseline=None, config=CFG) == []
    # the cheaper tier fails this step in the corpus (significantly): quiet
    base = compute_baselines([*_samples("classify_clause", "gpt-4o", 24, 22),
                              *_samples("classify_clause", "gpt-4o-mini", 36, 18)])["w"]
    assert routing.analyze(_call("classify_clause", 800, 5), baseline=base, config=CFG) == []


def test_corpus_evidence_raises_confidence_and_needs_few_frontier_runs() -> None:
    # 3 frontier runs and 20 cheaper ones, 88% vs 85% (not a significant gap): the corpus
    # route fires without ten frontier runs
    base = compute_baselines([*_samples("classify_intent", "gpt-4o", 3, 3),
                              *_samples("classify_intent", "gpt-4o-mini", 20, 17)])["w"]
    [f] = routing.analyze(_call("classify_intent", 800, 5), baseline=base, config=CFG)
    assert f.code == "routing.cheaper_model_sufficient" and 0.6 < f.confidence < 0.7
    # fewer than 20 cheaper runs that succeeded: the shape rule, with the corpus' support
    base = compute_baselines([*_samples("classify_intent", "gpt-4o-mini", 8, 8)])["w"]
    [f] = routing.analyze(_call("classify_intent", 800, 5), baseline=base, config=CFG)
    assert f.code == "routing.overpowered_model" and f.confidence == 0.65
    assert f.evidence["cheaper_tier_success"] == [[8, 8]]
