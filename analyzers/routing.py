"""Misrouting: a model more expensive than the step needs, priced against the cheaper one.

Heuristics and sources (docs/methods.md, "Routing"); one routing finding per call, first match wins:

- ``routing.wasted_escalation`` (C10; FrugalGPT/AutoMix cascades): a call that retried an
  earlier one (``retry_of``, or the same prompt) on a higher-tier model and returned the same
  output (confidence 0.85) or still failed (0.75). Waste: the escalated call's cost.
- ``routing.reasoning_overkill`` (R3): a reasoning model that spent some reasoning tokens, but
  < 10% of its output (or output ≤ 50 tokens), on a step where it barely reasoned ≥ 20 times in
  the corpus. Waste: cost minus the same usage *without reasoning* on the vendor's cheaper
  non-reasoning model. Confidence 0.8.
- ``routing.cheaper_model_sufficient`` (R2; RouteLLM's ``sw_ranking`` idea on our own corpus):
  the same step ran ≥ 20 times on a cheaper tier, and this tier (≥ 3 samples) does not succeed
  significantly more often: the cheaper tier's rate is at most 2 points below, or the gap is
  not significant (one-sided two-proportion z-test, z < 1.645). Waste: cost minus the same
  usage on the dearer of that tier's most used model (on a tie, the call's own vendor's) and
  the vendor's cheaper model (when two counterfactuals are possible, the smaller saving is
  booked). Confidence 0.6 + 0.3 × the
  evidence (both tiers' sample sizes).
- ``routing.overpowered_model`` (R1): a frontier model on a step whose *shape* is simple —
  status ok, no tool calls, output ≤ 256 tokens, no reasoning that was used, and either a
  label-sized output (≤ 16 tokens), a structured output (JSON, a list, ``key: value`` lines)
  or a compression (input ≥ 4 × output) whose step name or prompt instruction names a
  classify/extract/summarise/format task — unless the corpus shows cheaper tiers failing the
  step (the hard negative: significantly lower success, or below 80% with no history of this
  tier). Waste: cost minus the same usage on the same vendor's cheaper model
  (:mod:`analyzers.tiers`). Confidence 0.5 with no corpus evidence, 0.65 when the corpus has
  seen the cheaper tier succeed on the step.

Every routing finding's evidence names the counterfactual (``alternative_model``, its
per-million-token ``alternative_rates``, the ``usage`` priced), so the dollars recompute as
``cost_usd − usage · rates``. Counterfactual prices come from ``config.price_table`` (the
runtime fills it from the price book) or from rates observed in the workflow's corpus
(``baseline.model_rates``); with neither, no routing finding is made.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import networkx as nx

from analyzers.baseline import (
    LOW_REASONING_OUTPUT,
    LOW_REASONING_SHARE,
    Rates,
    TierStats,
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

__all__ = ["analyze", "find", "step_shape"]

_WORDS = re.compile(r"[a-z]+")
# this tier's own success rate must rest on a few samples before a cheaper tier is compared
MIN_OWN_TIER_SAMPLES = 3
_INSTRUCTION_CHARS = 240  # the head of a prompt, where its instruction sits
_KEY_VALUE = re.compile(r"^\s*[-*]?\s*[\w .]{1,40}:\s*\S")


@dataclass(frozen=True)
class _Ctx:
    """What every routing rule reads, gathered once per trace."""

    v: TraceView
    baseline: WorkflowBaseline | None
    config: AnalyzerConfig
    escalations: dict[str, str]
    failed: bool
    tool_callers: frozenset[str]


def _per_mtok(r: Rates) -> dict[str, float | None]:
    return {"input": r.input * 1e6, "output": r.output * 1e6,
            "cache_read": r.cache_read * 1e6 if r.cache_read is not None else None}


def _usage(a: dict[str, Any], r: Rates, drop_reasoning: bool) -> dict[str, int]:
    """The token counts :func:`price_usage` prices (what the evidence shows)."""
    inp = int(a.get("input_tokens") or 0)
    out = int(a.get("output_tokens") or 0)
    if drop_reasoning:
        out = max(0, out - int(a.get("reasoning_tokens") or 0))
    cr = min(inp, int(a.get("cache_read_tokens") or 0)) if r.cache_read is not None else 0
    return {"uncached_input_tokens": inp - cr, "cache_read_tokens": cr, "output_tokens": out}


def _cheapest_claim(c: _Ctx, a: dict[str, Any], alts: tuple[str, ...],
                    drop_reasoning: bool) -> tuple[str, Rates, float] | None:
    """Among the candidate models with a known price, the one whose counterfactual cost is
    highest (the smallest saving: never overstate); ``alts`` may repeat a model."""
    best: tuple[str, Rates, float] | None = None
    for alt in dict.fromkeys(alts):
        r = rates_for(alt, baseline=c.baseline, config=c.config)
        if r is None:
            continue
        alt_cost = price_usage(r, a, drop_reasoning=drop_reasoning)
        if best is None or alt_cost > best[2]:
            best = (alt, r, alt_cost)
    return best


def _counterfactual(c: _Ctx, n: str, code: str, alts: tuple[str, ...], *,
                    drop_reasoning: bool, conf: float, evidence: dict[str, object],
                    message: str) -> Finding | None:
    a = c.v.A[n]
    cost = node_cost(a)
    claim = _cheapest_claim(c, a, alts, drop_reasoning) if cost else None
    if claim is None:
        return None
    alt, r, alt_cost = claim
    waste = cost - alt_cost
    if waste <= 0:
        return None
    tokens = int(a.get("input_tokens") or 0) + int(a.get("output_tokens") or 0)
    return make_finding(
        c.v.G, code, [n], {n: waste}, attrs=c.v.A, tokens=tokens, confidence=conf,
        evidence={"model": a.get("model"), "alternative_model": alt,
                  "cost_usd": round(cost, 9), "alternative_cost_usd": round(alt_cost, 9),
                  "alternative_rates_per_mtok": _per_mtok(r),
                  "usage": _usage(a, r, drop_reasoning), "reasoning_dropped": drop_reasoning,
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


def _wasted_escalation(c: _Ctx, n: str) -> Finding | None:
    prev = c.escalations.get(n)
    if prev is None:
        return None
    v, a = c.v, c.v.A[n]
    res = v.result(n)
    same = res is not None and res == v.result(prev)
    cost = node_cost(a)
    if not cost or not (same or a.get("status") == "error" or c.failed):
        return None
    model, step = a.get("model"), v.steps[n]
    return make_finding(
        v.G, "routing.wasted_escalation", [prev, n], {n: cost}, attrs=v.A,
        tokens=int(a.get("input_tokens") or 0) + int(a.get("output_tokens") or 0),
        confidence=0.85 if same else 0.75,
        evidence={"from_model": v.A[prev].get("model"), "to_model": model,
                  "same_output": same, "still_failed": not same,
                  "counterfactual": "the escalated call not made"},
        message=f"Escalating `{step}` from {v.A[prev].get('model')} to {model} "
        + ("changed nothing" if same else "still failed")
        + ": {usd} wasted; stop escalating this case or fix the input.",
    )


def _reasoning_overkill(c: _Ctx, n: str) -> Finding | None:
    a = c.v.A[n]
    model = a.get("model")
    if c.baseline is None or not is_reasoning(model):
        return None
    out_t = int(a.get("output_tokens") or 0)
    spent = int(a.get("reasoning_tokens") or 0)
    # hybrid models (Claude 3.7+) reason only when asked: 0 reasoning tokens is a plain
    # call, not overkill; only calls that did reason, briefly, count
    low = spent > 0 and (spent < LOW_REASONING_SHARE * out_t or out_t <= LOW_REASONING_OUTPUT)
    step = c.v.steps[n]
    rs = c.baseline.reasoning.get(step, {}).get(str(model))
    if not low or rs is None or rs.low < c.config.reasoning_min_samples:
        return None
    return _counterfactual(
        c, n, "routing.reasoning_overkill", cheaper_models(model, reasoning=False),
        drop_reasoning=True, conf=0.8,
        evidence={"reasoning_tokens": spent, "output_tokens": out_t,
                  "low_reasoning_runs": rs.low, "runs": rs.n,
                  "threshold": LOW_REASONING_SHARE},
        message=f"{model} barely reasoned on `{step}` ({rs.low} of {rs.n} runs): {{usd}} "
        "wasted; use a non-reasoning model for this step.")


def _z(own: TierStats, other: TierStats) -> float:
    """One-sided two-proportion z statistic of ``own`` succeeding more often than
    ``other`` (pooled standard error)."""
    p = (own.successes + other.successes) / (own.n + other.n)
    se = math.sqrt(p * (1 - p) * (1 / own.n + 1 / other.n)) if 0 < p < 1 else 0.0
    gap = own.rate - other.rate
    return gap / se if se else (math.inf if gap > 0 else 0.0)


def _fails(s: TierStats, own: TierStats | None, cfg: AnalyzerConfig) -> bool:
    """The corpus shows tier ``s`` failing the step against this tier ``own``: significantly
    lower success (more than the margin), or, with no history of this tier, below the floor."""
    if own is None or own.n < MIN_OWN_TIER_SAMPLES:
        return s.rate < cfg.routing_fail_floor
    return s.rate < own.rate - cfg.routing_margin and _z(own, s) >= cfg.routing_z


def _cheaper_tiers(c: _Ctx, n: str, tier: str) -> list[tuple[str, TierStats]]:
    stats = c.baseline.tier_success.get(c.v.steps[n], {}) if c.baseline else {}
    return sorted(((t, s) for t, s in stats.items() if TIER_RANK[t] < TIER_RANK[tier]),
                  key=lambda ts: TIER_RANK[ts[0]])


def _cheaper_sufficient(c: _Ctx, n: str, tier: str) -> Finding | None:
    stats = c.baseline.tier_success.get(c.v.steps[n], {}) if c.baseline else {}
    own = stats.get(tier)
    if own is None or own.n < MIN_OWN_TIER_SAMPLES:
        return None
    cfg, model, step = c.config, c.v.A[n].get("model"), c.v.steps[n]
    same_vendor = cheaper_models(model)
    for t, s in _cheaper_tiers(c, n, tier):
        if s.n < cfg.routing_min_samples or _fails(s, own, cfg):
            continue
        # On a tie for the tier's most used model, the call's own vendor's model is "the" one.
        top = next((m for m in s.top_tied if m in same_vendor), s.top_model)
        weight = min(1.0, s.n / 100) * min(1.0, own.n / 20)
        f = _counterfactual(
            c, n, "routing.cheaper_model_sufficient", (top, *same_vendor),
            drop_reasoning=False, conf=0.6 + 0.3 * weight,
            evidence={"step": step, "tier": tier, "tier_success": [own.successes, own.n],
                      "cheaper_tier": t, "cheaper_success": [s.successes, s.n],
                      "z": round(min(_z(own, s), 99.0), 3),
                      "thresholds": [cfg.routing_min_samples, cfg.routing_margin,
                                     cfg.routing_z]},
            message=f"`{step}` succeeds {s.rate:.0%} of {s.n} times on {t}-tier "
            f"{top} vs {own.rate:.0%} of {own.n} on {model}: {{usd}} wasted; route "
            "this step to the cheaper model.")
        if f is not None:
            return f
    return None


def _instruction_task(step: str, prompt: object, cfg: AnalyzerConfig) -> str | None:
    """The classify/extract/summarise/format task word in the step name or at the head of
    the prompt (its instruction), if any."""
    texts = [step.lower()]
    if isinstance(prompt, str):
        texts.append(prompt[:_INSTRUCTION_CHARS].lower())
    for text in texts:
        for w in _WORDS.findall(text):
            if w.startswith(cfg.simple_step_words):
                return str(w)
    return None


def _structured(output: object) -> bool:
    """JSON, a list, or ``key: value`` lines: an extraction or formatting shape."""
    if not isinstance(output, str) or not output.strip():
        return False
    s = output.strip()
    if s[0] in "{[":
        return True
    lines = [x for x in s.splitlines() if x.strip()]
    return len(lines) >= 2 and sum(bool(_KEY_VALUE.match(x)) for x in lines) >= 0.8 * len(lines)


def step_shape(a: dict[str, Any], step: str, cfg: AnalyzerConfig) -> str | None:
    """Why a model call's shape is simple — ``"label"``, ``"structured"`` or the task word
    of a compression (``"summarize"``…) — or None. Tool calls are checked by the caller.

    >>> cfg = AnalyzerConfig()
    >>> step_shape({"input_tokens": 900, "output_tokens": 3}, "step_1", cfg)
    'label'
    >>> step_shape({"input_tokens": 3000, "output_tokens": 90}, "summarize_changes", cfg)
    'summarize'
    >>> step_shape({"input_tokens": 3000, "output_tokens": 90}, "answer_ticket", cfg) is None
    True
    """
    out = int(a.get("output_tokens") or 0)
    inp = int(a.get("input_tokens") or 0)
    if out <= 0 or out > cfg.simple_max_output_tokens:
        return None
    spent = int(a.get("reasoning_tokens") or 0)
    if spent and spent >= LOW_REASONING_SHARE * out:
        return None  # reasoning that was used (a tenth of the output or more): not simple
    if out - spent <= cfg.label_max_output_tokens:
        return "label"
    if _structured(a.get("output")) and inp >= out:
        return "structured"
    if inp >= cfg.compression_min_ratio * out:
        return _instruction_task(step, a.get("prompt"), cfg)
    return None


def _overpowered(c: _Ctx, n: str, tier: str) -> Finding | None:
    a = c.v.A[n]
    if tier != "frontier" or a.get("status", "ok") != "ok" or n in c.tool_callers \
            or a.get("finish_reason") == "tool_calls":
        return None
    step = c.v.steps[n]
    shape = step_shape(a, step, c.config)
    if shape is None:
        return None
    stats = c.baseline.tier_success.get(step, {}) if c.baseline else {}
    own = stats.get(tier)
    cheaper = _cheaper_tiers(c, n, tier)
    if any(_fails(s, own, c.config) for _, s in cheaper):
        return None  # the hard negative: the corpus shows cheaper tiers failing this step
    seen = [[s.successes, s.n] for _, s in cheaper]
    # the corpus has shown a cheaper tier succeeding on this step (more often than not)
    shown = any(s.successes and s.rate >= 0.5 for _, s in cheaper)
    model = a.get("model")
    return _counterfactual(
        c, n, "routing.overpowered_model", cheaper_models(model), drop_reasoning=False,
        conf=0.65 if shown else 0.5,
        evidence={"step": step, "shape": shape,
                  "output_tokens": int(a.get("output_tokens") or 0),
                  "input_tokens": int(a.get("input_tokens") or 0),
                  "cheaper_tier_success": seen,
                  "threshold_output_tokens": c.config.simple_max_output_tokens},
        message=f"Frontier model {model} ran `{step}`, a simple step ({shape}, "
        f"{int(a.get('output_tokens') or 0)} output tokens, no tools): {{usd}} over the "
        "cheaper model; try the cheaper model on this step.")


def analyze(G: nx.DiGraph[str], *, baseline: WorkflowBaseline | None, config: AnalyzerConfig,
            view: TraceView | None = None) -> list[Finding]:
    """All routing findings of one trace, each node's waste booked once."""
    v = view or TraceView(G)
    return book_once(G, find(v, baseline=baseline, config=config), attrs=v.A)


def find(v: TraceView, *, baseline: WorkflowBaseline | None,
         config: AnalyzerConfig) -> list[Finding]:
    """Routing findings before booking (:func:`analyzers.run.analyze_trace` books once)."""
    llms = v.by_kind.get("llm")
    if not llms:
        return []
    # a small-tier call is never misrouted (nothing cheaper; not an escalation target)
    tiers = {n: model_tier(v.A[n].get("model")) for n in llms}
    calls = [n for n in llms if tiers[n] in ("mid", "frontier")]
    if not calls:
        return []
    G = v.G
    c = _Ctx(v, baseline, config, _escalations(v), _outcome(v) in ("failure", "escalated"),
             frozenset(u for t in v.by_kind.get("tool", ()) for u in G.predecessors(t)))
    out: list[Finding] = []
    for n in calls:
        tier = str(tiers[n])
        f = (_wasted_escalation(c, n) or _reasoning_overkill(c, n)
             or _cheaper_sufficient(c, n, tier) or _overpowered(c, n, tier))
        if f is not None:
            out.append(f)
    return out
