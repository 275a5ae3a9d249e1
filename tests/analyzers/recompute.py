"""Recompute a finding's dollars from its evidence and the trace's node data alone — what a
person checking a finding would do with the trace and the price book (docs/analysis.md,
"how dollars are counted"). Written from the documented counterfactuals, not from the
analyzers' code, and used by the tests on the labelled set and the demo store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# codes whose counterfactual is "the call not made": each booked node's full cost
FULL_COST = frozenset({
    "churn.exact_repeat", "churn.tight_loop", "churn.error_loop", "churn.cycle",
    "churn.near_duplicate", "churn.retry_storm", "churn.reprompt", "churn.overridden",
    "churn.dead_end", "routing.wasted_escalation",
})
ROUTING_SWAP = frozenset({"routing.overpowered_model", "routing.cheaper_model_sufficient",
                          "routing.reasoning_overkill"})


def _cost(a: Mapping[str, Any]) -> float:
    return float(a.get("cost_usd") or 0.0)


def claimed_usd(code: str, ev: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]]
                ) -> dict[str, float]:
    """Per node, what the finding's counterfactual says it wasted (before booking once)."""
    booked = ev["waste_by_node"]
    if code in FULL_COST:
        return {n: _cost(nodes[n]) for n in booked}
    if code in ("bloat.over_retrieval", "bloat.unused_context"):
        return {ev["consumer"]: ev["unused_tokens"] * ev["input_rate_per_mtok"] / 1e6}
    if code == "bloat.oversized_prompt":
        (n,) = booked
        return {n: ev["tokens_above_median"] * ev["input_rate_per_mtok"] / 1e6}
    if code == "bloat.history_growth":
        rates = ev["input_rate_per_mtok_by_turn"]
        return {n: t * rates[n] / 1e6 for n, t in ev["stale_tokens_by_turn"].items()}
    if code == "bloat.cache_miss":
        (n,) = booked
        return {n: ev["priced_prefix_tokens"] * (ev["input_rate_per_mtok"]
                                                 - ev["cache_read_rate_per_mtok"]) / 1e6
                - ev["cache_write_premium_usd"]}
    if code in ROUTING_SWAP:
        (n,) = booked
        r, u = ev["alternative_rates_per_mtok"], ev["usage"]
        alt = (u["uncached_input_tokens"] * r["input"] + u["output_tokens"] * r["output"]
               + u["cache_read_tokens"] * (r["cache_read"] or 0.0)) / 1e6
        return {n: _cost(nodes[n]) - alt}
    raise AssertionError(f"no documented counterfactual for {code}")


def check(f: Any, nodes: Mapping[str, Mapping[str, Any]], *, tol: float = 1e-8) -> None:
    """Assert that ``f``'s booked dollars follow from its evidence and the nodes: each node's
    booking is the counterfactual's claim, capped at the node's cost, less what a more precise
    rule already booked (``overlap_booked_elsewhere_usd``); the total is their sum."""
    ev = f.evidence
    claims = claimed_usd(f.code, ev, nodes)
    booked = ev["waste_by_node"]
    assert set(booked) <= set(claims), (f.code, booked, claims)
    for n, usd in booked.items():
        cap = min(claims[n], _cost(nodes[n]))
        assert usd <= cap + tol, (f.code, n, usd, cap)
    expected = sum(min(c, _cost(nodes[n])) for n, c in claims.items())
    overlap = ev.get("overlap_booked_elsewhere_usd", 0.0)
    if overlap:
        # a more precise rule booked part of the claim first (nodes it took whole are no
        # longer listed): what is left never exceeds the claim of the nodes still listed
        assert f.wasted_cost_usd <= expected + tol * max(1, len(claims)), (
            f.code, expected, f.wasted_cost_usd)
    else:
        assert abs(expected - f.wasted_cost_usd) <= tol * max(1, len(claims)), (
            f.code, expected, f.wasted_cost_usd)
    assert abs(sum(booked.values()) - f.wasted_cost_usd) <= tol * max(1, len(booked))
    assert 0.0 <= f.wasted_cost_usd <= sum(_cost(nodes[n]) for n in booked) + tol
