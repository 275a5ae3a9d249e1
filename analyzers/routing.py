"""Misrouting: a model more expensive than the step needs, priced against the cheaper one.

Heuristics and sources (methods §1 and §6.3); one routing finding per call, first match wins:

- ``routing.wasted_escalation`` (C10; FrugalGPT/AutoMix cascades): a call that retried an
  earlier one (``retry_of``, or the same prompt) on a higher-tier model and returned the same
  output (confidence 0.85) or still failed (0.75). Waste: the escalated call's cost.
- ``routing.reasoning_overkill`` (R3): a reasoning model that spent some reasoning tokens, but
  < 10% of its output (or output ≤ 50 tokens), on a step where it barely reasoned ≥ 20 times in
  the corpus. Waste: cost minus the same usage *without reasoning* on the vendor's cheaper
  non-reasoning model. Confidence 0.8.
- ``routing.cheaper_model_sufficient`` (R2; RouteLLM's ``sw_ranking`` idea on our own corpus):
  the same step ran ≥ 20 times on a cheaper tier with a success rate no more than 2 points
  below this tier's (which has ≥ 10 samples). Waste: cost minus the same usage on that tier's
  most used model. Confidence 0.7 + 0.2 × min(1, n/100).
- ``routing.overpowered_model`` (R1): a frontier model on a simple step (classify, extract,
  format, route, … in the step name), output ≤ 256 tokens, no tool calls — unless the corpus
  shows cheaper tiers failing this step (the hard negative). Confidence 0.5 ("candidate").

Counterfactual prices come from ``config.price_table`` (the runtime fills it from the price
book) or from rates observed in the workflow's corpus (``baseline.model_rates``); with
neither, no routing finding is made — no dollar figure without a price.
"""

from __future__ import annotations

import re

import networkx as nx

from analyzers.baseline import (
    LOW_REASONING_OUTPUT,
    LOW_REASONING_SHARE,
    WorkflowBaseline,
)
from analyzers.common import book_once, make_finding, price_usage, rates_for
from analyzers.config import AnalyzerConfig
from analyzers.findings import Finding
from analyzers.graph import node_cost
from analyzers.tiers import (
    TIER_RANK,
    cheaper_models,
    is_reasoning,
    model_tier,
)
from analyzers.view import TraceView

__all__ = ["analyze", "find"]

_WORDS = re.compile(r"[a-z]+")
MIN_OWN_TIER_SAMPLES = 10  # half of R2's floor: this tier's own rate must mean something


def _counterfactual(v: TraceView, n: str, code: str, alts: tuple[str, ...], *,
                    baseline: WorkflowBaseline | None, config: AnalyzerConfig,
                    drop_reasoning: bool, conf: float, evidence: dict[str, object],
                    message: str) -> Finding | None:
    a = v.A[n]
    r, alt = None, None
    for alt in alts:  # the first candidate with a known price
        r = rates_for(alt, baseline=baseline, config=config)
        if r is not None:
            break
    cost = node_cost(a)
    if r is None or not cost:
        return None
    alt_cost = price_usage(r, a, drop_reasoning=drop_reasoning)
    waste = cost - alt_cost
    if waste <= 0:
        return None
    tokens = int(a.get("input_tokens") or 0) + int(a.get("output_tokens") or 0)
    return make_finding(
        v.G, code, [n], {n: waste}, attrs=v.A, tokens=tokens, confidence=conf,
        evidence={"model": a.get("model"), "alternative_model": alt,
                  "cost_usd": round(cost, 9), "alternative_cost_usd": round(alt_cost, 9),
                  **evidence},
        message=message,
    )


def _outcome(v: TraceView) -> str | None:
    """:func:`analyzers.baseline.trace_outcome` from the view: the last outcome node's
    status, else the graph's."""
    status = None
    for n in v.by_kind.get("outcome", ()):
        a = v.A[n]
        if a.get("outcome_status"):
            status = str(a["outcome_status"])
    return status or v.G.graph.get("outcome_status")


def _escalations(v: TraceView) -> dict[str, str]:
    """Escalated call → the cheaper call it retried (``retry_of``, or the same prompt)."""
    out: dict[str, str] = {b: a for a, b in v.edges.get("retry_of", ())}
    by_prompt: dict[object, str] = {}
    keys = v.keys
    for n in v.by_kind.get("llm", ()):
        if n not in keys:
            continue
        k = keys[n]
        # what follows the second ":" of the call key "llm:<model>:<prompt hash>"
        prompt: object
        if isinstance(k, str):
            if not k.startswith("llm:"):
                continue
            prompt = k.split(":", 2)[2]
        else:
            if k[0] != "llm":
                continue
            model = k[1]
            prompt = (model.split(":", 1)[1] if ":" in model else None, k[2])
        if prompt in by_prompt and n not in out:
            out[n] = by_prompt[prompt]
        by_prompt[prompt] = n
    return {b: a for b, a in out.items() if v.A[a].get("kind") == "llm"
            and TIER_RANK.get(model_tier(v.A[b].get("model")) or "", -1)
            > TIER_RANK.get(model_tier(v.A[a].get("model")) or "", 99)}


def analyze(G: nx.DiGraph[str], *, baseline: WorkflowBaseline | None, config: AnalyzerConfig,
            view: TraceView | None = None) -> list[Finding]:
    """All routing findings of one trace, each node's waste booked once."""
    v = view or TraceView(G)
    return book_once(G, find(v, baseline=baseline, config=config), attrs=v.A)


def find(v: TraceView, *, baseline: WorkflowBaseline | None,
         config: AnalyzerConfig) -> list[Finding]:
    """Routing findings before booking (:func:`analyzers.run.analyze_trace` books once)."""
    G = v.G
    llms = v.by_kind.get("llm")
    if not llms:
        return []
    # a small-tier call is never misrouted (nothing cheaper; not an escalation target)
    A = v.A
    models = [A[n].get("model") for n in llms]
    if not any(model_tier(m) in ("mid", "frontier") for m in set(models)):
        return []
    calls = [n for n, m in zip(llms, models, strict=True)
             if model_tier(m) in ("mid", "frontier")]
    keys = v.steps
    esc = _escalations(v)
    failed = _outcome(v) in ("failure", "escalated")
    pred = G._pred  # networkx's predecessor dicts, read only
    tool_callers = {u for t in v.by_kind.get("tool", ()) for u in pred[t]}
    out: list[Finding] = []
    for n in calls:
        a = v.A[n]
        model = a.get("model")
        tier = model_tier(model)
        assert tier is not None
        step = keys[n]
        f: Finding | None = None
        if n in esc:
            prev = esc[n]
            res = v.result(n)
            same = res is not None and res == v.result(prev)
            if same or a.get("status") == "error" or failed:
                cost = node_cost(a)
                f = make_finding(
                    G, "routing.wasted_escalation", [prev, n], {n: cost},
                    attrs=v.A,
                    tokens=int(a.get("input_tokens") or 0) + int(a.get("output_tokens") or 0),
                    confidence=0.85 if same else 0.75,
                    evidence={"from_model": v.A[prev].get("model"), "to_model": model,
                              "same_output": same, "still_failed": not same},
                    message=f"Escalating `{step}` from {v.A[prev].get('model')} to {model} "
                    + ("changed nothing" if same else "still failed")
                    + ": {usd} wasted; stop escalating this case or fix the input.",
                ) if cost else None
        stats = baseline.tier_success.get(step, {}) if baseline else {}
        if f is None and is_reasoning(model) and baseline is not None:
            out_t = int(a.get("output_tokens") or 0)
            spent = int(a.get("reasoning_tokens") or 0)
            # hybrid models (Claude 3.7+) reason only when asked: 0 reasoning tokens is a
            # plain call, not overkill; only calls that did reason, briefly, count
            low = spent > 0 and (spent < LOW_REASONING_SHARE * out_t
                                 or out_t <= LOW_REASONING_OUTPUT)
            rs = baseline.reasoning.get(step, {}).get(str(model))
            if low and rs is not None and rs.low >= config.reasoning_min_samples:
                f = _counterfactual(
                    v, n, "routing.reasoning_overkill", cheaper_models(model, reasoning=False),
                    baseline=baseline, config=config, drop_reasoning=True, conf=0.8,
                    evidence={"reasoning_tokens": int(a.get("reasoning_tokens") or 0),
                              "output_tokens": out_t, "low_reasoning_runs": rs.low,
                              "runs": rs.n, "threshold": LOW_REASONING_SHARE},
                    message=f"{model} barely reasoned on `{step}` ({rs.low} of {rs.n} runs): "
                    "{usd} wasted; use a non-reasoning model for this step.")
        own = stats.get(tier)
        if f is None and own is not None and own.n >= MIN_OWN_TIER_SAMPLES:
            for t in sorted(stats, key=TIER_RANK.__getitem__):
                s = stats[t]
                if TIER_RANK[t] >= TIER_RANK[tier] or s.n < config.routing_min_samples \
                        or s.rate < own.rate - config.routing_margin:
                    continue
                f = _counterfactual(
                    v, n, "routing.cheaper_model_sufficient", (s.top_model,), baseline=baseline,
                    config=config, drop_reasoning=False, conf=0.7 + 0.2 * min(1.0, s.n / 100),
                    evidence={"step": step, "tier": tier, "tier_success": [own.successes, own.n],
                              "cheaper_tier": t, "cheaper_success": [s.successes, s.n],
                              "thresholds": [config.routing_min_samples,
                                             config.routing_margin]},
                    message=f"`{step}` succeeds {s.rate:.0%} of {s.n} times on {t}-tier "
                    f"{s.top_model} vs {own.rate:.0%} on {model}: {{usd}} wasted; route this "
                    "step to the cheaper model.")
                if f is not None:
                    break
        words = _WORDS.findall(step.lower())
        simple = any(w.startswith(config.simple_step_words) for w in words)
        # the hard negative: cheaper tiers fail this step more often (with no own-tier
        # history, any measurable shortfall from perfect counts)
        own_rate = own.rate if own is not None else 1.0
        cheaper_fail = any(TIER_RANK[t] < TIER_RANK[tier] and s.n >= config.routing_min_samples
                           and s.rate < own_rate - config.routing_margin
                           for t, s in stats.items())
        if f is None and tier == "frontier" and simple and a.get("status", "ok") == "ok" \
                and int(a.get("output_tokens") or 0) <= config.simple_max_output_tokens \
                and n not in tool_callers and a.get("finish_reason") != "tool_calls" \
                and not cheaper_fail:
            f = _counterfactual(
                v, n, "routing.overpowered_model", cheaper_models(model), baseline=baseline,
                config=config, drop_reasoning=False, conf=0.5,
                evidence={"step": step, "output_tokens": int(a.get("output_tokens") or 0),
                          "threshold_output_tokens": config.simple_max_output_tokens},
                message=f"Frontier model {model} ran the simple step `{step}`: {{usd}} over "
                "the cheaper model; try the cheaper model on this step.")
        if f is not None:
            out.append(f)
    return out
