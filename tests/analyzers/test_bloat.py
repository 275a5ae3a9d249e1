"""Bloat analyzer: every bloat code's named positive and hard-negative fixture, plus how
unneeded tokens are priced and when the lexical cascade decides a document was used."""

from __future__ import annotations

import networkx as nx
import pytest

from analyzers import bloat
from analyzers.baseline import StepSample, compute_baselines
from analyzers.config import AnalyzerConfig
from fixtures.findings import load

CODES = [c for c in load.codes() if c.startswith("bloat.")]


def test_every_bloat_code_has_fixtures() -> None:
    assert len(CODES) == 5


@pytest.mark.parametrize("which", ["positive", "negative"])
@pytest.mark.parametrize("code", CODES)
def test_fixture(code: str, which: str) -> None:
    got = load.check(bloat.analyze, code, which)
    if which == "positive":
        assert got[0].wasted_tokens > 0 and 0 < got[0].confidence <= 1


def _rag(answer: str, contents: list[str]) -> nx.DiGraph:
    G = nx.DiGraph(trace_id="t", workflow="w")
    docs = [{"id": f"d{i}", "content": c, "tokens": 500} for i, c in enumerate(contents)]
    G.add_node("r", kind="retrieval", documents=docs, order=0, parent_id="root")
    G.add_node("l", kind="llm", model="gpt-4o-mini", input_tokens=4000, output_tokens=100,
               output=answer, cost_usd=0.01, order=1, parent_id="root")
    return G


def test_lexical_containment_marks_a_copied_document_as_used() -> None:
    used = "refunds are accepted within thirty days of delivery for unused items"
    filler = [f"warehouse {i} opens at nine and closes at five on weekdays only" for i in range(11)]
    cfg = AnalyzerConfig(price_table={"gpt-4o-mini": {"input_mtok": 0.15, "output_mtok": 0.6}})
    [f] = bloat.analyze(_rag("Good news: " + used + ".", [used, *filler]), baseline=None,
                        config=cfg)
    assert f.code == "bloat.over_retrieval"
    assert f.evidence["used_ranks"] == [1] and f.evidence["retrieved"] == 12
    assert f.wasted_tokens == 11 * 500
    assert f.wasted_cost_usd == pytest.approx(11 * 500 * 0.15e-6)
    # no answer text and no explicit uses edge: no evidence either way, no finding
    G = _rag("", [used, *filler])
    G.nodes["l"]["output"] = None
    assert bloat.analyze(G, baseline=None, config=cfg) == []


def test_without_a_price_the_calls_own_cost_sets_the_input_rate() -> None:
    G = _rag("nothing matches", ["alpha beta gamma delta"] * 12)
    G.nodes["l"]["input_tokens"] = 8000
    [f] = bloat.analyze(G, baseline=None, config=AnalyzerConfig())
    rate = 0.01 / (8000 + 4 * 100)  # output at 4x input
    assert f.wasted_cost_usd == pytest.approx(12 * 500 * rate)
    assert f.wasted_cost_usd <= 0.01


def test_oversized_prompt_needs_enough_samples() -> None:
    G = nx.DiGraph(trace_id="t", workflow="w")
    G.add_node("l", kind="llm", name="summarise", model="gpt-4o-mini", input_tokens=9000,
               output_tokens=10, cost_usd=0.002, order=0)
    rows = [StepSample("w", "summarise", "llm", "gpt-4o-mini", "small", 1000 + i, 10, 0, True,
                       None) for i in range(19)]
    cfg = AnalyzerConfig()
    assert bloat.analyze(G, baseline=compute_baselines(rows)["w"], config=cfg) == []
    rows.append(rows[0])
    [f] = bloat.analyze(G, baseline=compute_baselines(rows)["w"], config=cfg)
    assert f.code == "bloat.oversized_prompt" and f.evidence["samples"] == 20
