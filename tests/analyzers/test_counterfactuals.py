"""Every finding's dollars are a stated counterfactual: recomputed from its evidence and the
trace's node data alone (tests/analyzers/recompute.py) on the labelled set and the named
fixtures; and when two rules claim the same tokens the more specific one wins."""

from __future__ import annotations

import networkx as nx
import pytest

from analyzers import bloat
from analyzers.baseline import StepSample, compute_baselines
from analyzers.config import AnalyzerConfig
from analyzers.run import analyze_trace, collect_samples
from fixtures.findings import load
from fixtures.labelled import PRICES, generate
from tests.analyzers.recompute import check


def test_labelled_set_dollars_recompute_from_evidence() -> None:
    data = generate(seed=7, scale=0.5)
    baselines = compute_baselines(s for x in data for s in collect_samples(x.graph))
    cfg = AnalyzerConfig(price_table=PRICES)
    codes: set[str] = set()
    for x in data:
        G = x.graph
        for f in analyze_trace(G, baseline=baselines.get(G.graph["workflow"]), config=cfg):
            check(f, G.nodes)
            codes.add(f.code)
    assert len(codes) >= 15, codes  # nearly every code was exercised


@pytest.mark.parametrize("code", load.codes())
def test_fixture_dollars_recompute_from_evidence(code: str) -> None:
    G, base, _ = load.case(code, "positive")
    found = analyze_trace(G, baseline=base, config=load.config())
    assert found
    for f in found:
        check(f, G.nodes)


def _growing(turns: int = 10) -> nx.DiGraph[str]:
    G: nx.DiGraph[str] = nx.DiGraph(trace_id="t", workflow="w")
    for i in range(turns):
        x = 1000 + 800 * i
        G.add_node(f"l{i}", kind="llm", name="chat_turn", model="gpt-4o-mini", input_tokens=x,
                   output_tokens=80, cost_usd=(x * 0.15 + 80 * 0.6) / 1e6, order=i,
                   parent_id="root")
    return G


def test_history_growth_wins_over_the_step_median_on_a_growing_conversation() -> None:
    """Late turns of a conversation that never compacts are far above the step's median, but
    their excess is stale history: booked once, by the stale-history counterfactual."""
    rows = [StepSample("w", "chat_turn", "llm", "gpt-4o-mini", "small", 1000 + 10 * (i % 7),
                       80, 0, True, None) for i in range(40)]
    base = compute_baselines(rows)["w"]
    cfg = AnalyzerConfig(price_table=PRICES)
    G = _growing()
    found = analyze_trace(G, baseline=base, config=cfg)
    assert [f.code for f in found] == ["bloat.history_growth"]
    x = [1000 + 800 * i for i in range(10)]
    stale = sum(x[i - 5] - x[0] for i in range(5, 10))
    assert found[0].wasted_tokens == stale
    assert found[0].wasted_cost_usd == pytest.approx(stale * 0.15e-6)
    check(found[0], G.nodes)
    # without the conversation rule the step median would have claimed the turns
    only = bloat.analyze(G, baseline=base, config=AnalyzerConfig(
        price_table=PRICES, history_min_turns=99))
    assert {f.code for f in only} == {"bloat.oversized_prompt"}
    assert sum(f.wasted_cost_usd for f in only) > found[0].wasted_cost_usd


def test_cache_miss_prices_only_the_prefix_history_growth_does_not_drop() -> None:
    """A growing conversation re-sends its history uncached: the stale part is priced as
    history (not sent at all), the cache rule prices only the rest of the shared prefix."""
    base = "You are the support assistant of Acme. " * 130  # ~5,000 characters
    G: nx.DiGraph[str] = nx.DiGraph(trace_id="t", workflow="w")
    prompts = [base + "".join(f"turn {k}: " + "details " * 300 for k in range(i))
               for i in range(10)]
    x = [len(p) // 4 for p in prompts]
    r = PRICES["gpt-4o"]
    for i, p in enumerate(prompts):
        G.add_node(f"l{i}", kind="llm", name="chat_turn", model="gpt-4o", prompt=p,
                   input_tokens=x[i], output_tokens=50, start=10.0 * i, end=10.0 * i + 5,
                   cost_usd=(x[i] * r["input_mtok"] + 50 * r["output_mtok"]) / 1e6, order=i,
                   parent_id="root")
    found = analyze_trace(G, baseline=None, config=AnalyzerConfig(price_table=PRICES))
    hist = [f for f in found if f.code == "bloat.history_growth"]
    cache = {f.node_ids[1]: f for f in found if f.code == "bloat.cache_miss"}
    assert len(hist) == 1 and set(cache) == {f"l{i}" for i in range(1, 10)}
    stale = hist[0].evidence["stale_tokens_by_turn"]
    assert stale["l9"] == x[4] - x[0]
    ev = cache["l9"].evidence
    assert ev["shared_prefix_tokens"] == x[8]
    assert ev["priced_prefix_tokens"] == x[8] - stale["l9"]
    for f in found:
        check(f, G.nodes)
    # per turn, the two rules never price more tokens than the turn re-sent
    for n, f in cache.items():
        assert f.evidence["priced_prefix_tokens"] + stale.get(n, 0) <= f.evidence[
            "shared_prefix_tokens"]
