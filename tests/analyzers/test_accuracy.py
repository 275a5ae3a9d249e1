"""Measured accuracy on the seeded labelled set (issue 5 item 7; docs/methods.md): node-level
precision ≥ 0.95 and recall ≥ 0.90 per analyzer, and booked waste dollars within 5% of the
labelled dollars, per analyzer and in total."""

from __future__ import annotations

from collections import defaultdict

import pytest

from analyzers.findings import ANALYZERS
from analyzers.run import AnalyzerConfig, analyze_trace, collect_samples, compute_baselines
from fixtures.labelled import PRICES, Labelled, generate

MIN_PRECISION, MIN_RECALL, MAX_DOLLAR_ERROR = 0.95, 0.90, 0.05


@pytest.fixture(scope="module")
def scored() -> dict[str, dict[str, float]]:
    data: list[Labelled] = generate(seed=7)
    assert len(data) >= 1000
    pos = sum(len(x.positives) for x in data)
    neg = sum(len(x.negatives) for x in data)
    assert neg / (pos + neg) >= 0.30, "hard negatives must be ≥ 30% of injected patterns"
    baselines = compute_baselines(s for x in data for s in collect_samples(x.graph))
    cfg = AnalyzerConfig(price_table=PRICES)
    c: dict[str, dict[str, float]] = {a: defaultdict(float) for a in ANALYZERS}
    for x in data:
        G = x.graph
        found = analyze_trace(G, baseline=baselines.get(G.graph["workflow"]), config=cfg)
        booked: dict[str, tuple[str, float]] = {}
        for f in found:
            for n, usd in f.evidence["waste_by_node"].items():
                assert n not in booked, "a node's waste was booked twice"
                booked[n] = (f.analyzer, usd)
        total_cost = sum(a.get("cost_usd") or 0.0 for _, a in G.nodes(data=True))
        assert sum(u for _, u in booked.values()) <= total_cost + 1e-12
        for n, (a, usd) in booked.items():
            c[a]["booked_usd"] += usd
            c[a]["tp" if x.labels.get(n, ("",))[0] == a else "fp"] += 1
        for n, (a, usd) in x.labels.items():
            c[a]["labelled_usd"] += usd
            if booked.get(n, ("",))[0] != a:
                c[a]["fn"] += 1
    return c


@pytest.mark.parametrize("analyzer", ANALYZERS)
def test_precision_and_recall(scored: dict[str, dict[str, float]], analyzer: str) -> None:
    s = scored[analyzer]
    assert s["tp"] >= 50, "too few labelled nodes to measure"
    precision = s["tp"] / (s["tp"] + s["fp"])
    recall = s["tp"] / (s["tp"] + s["fn"])
    assert precision >= MIN_PRECISION, (analyzer, precision)
    assert recall >= MIN_RECALL, (analyzer, recall)


@pytest.mark.parametrize("analyzer", ANALYZERS)
def test_booked_dollars_match_labelled(scored: dict[str, dict[str, float]],
                                       analyzer: str) -> None:
    s = scored[analyzer]
    assert s["labelled_usd"] > 0
    err = abs(s["booked_usd"] - s["labelled_usd"]) / s["labelled_usd"]
    assert err <= MAX_DOLLAR_ERROR, (analyzer, s["booked_usd"], s["labelled_usd"])


def test_total_dollars_match_labelled(scored: dict[str, dict[str, float]]) -> None:
    booked = sum(s["booked_usd"] for s in scored.values())
    labelled = sum(s["labelled_usd"] for s in scored.values())
    assert abs(booked - labelled) / labelled <= MAX_DOLLAR_ERROR


def test_generator_is_seeded() -> None:
    a, b = generate(seed=3, scale=0.05), generate(seed=3, scale=0.05)
    assert [x.labels for x in a] == [x.labels for x in b]
    assert [sorted(x.graph.nodes(data="input_tokens")) for x in a] == [
        sorted(x.graph.nodes(data="input_tokens")) for x in b]
