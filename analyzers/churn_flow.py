"""Churn from the trace's control flow: retry storms, re-prompts, overridden output, dead ends.
Called by :func:`analyzers.churn.analyze`, which books each node's waste once.

- ``churn.retry_storm`` (docs/methods.md C6): attempts of one logical call are the components of
  ``retry_of`` edges. Only retries that repeat the previous attempt's input count (a retry with
  changed arguments is a fix, not a storm): ≥3 attempts of one input, or 2 whose retry costs
  ≥ 20% of the trace. Waste: every attempt an unchanged retry repeated. Confidence 0.85 (0.75
  for the cost-share rule; 0.6 when an attempt's input is unknown, where only ≥3 attempts
  count). Advice names back-off for transient errors (timeouts, connection, rate limits).
- ``churn.reprompt`` (C7): an LLM call whose prompt is near-identical (J ≥ 0.8,
  ``reprompt_similarity``, or the same call key) to an earlier call whose output a human
  rejected/overrode or a guardrail failed. Waste: the rejected call. Confidence 0.8.
- ``churn.overridden`` (docs/analysis.md): model output a human rejected or replaced
  (``reviews`` edge to a ``reject``/``override`` decision). Waste: the call's full cost.
  Confidence 0.9.
- ``churn.dead_end`` (C9, the causal set of docs/methods.md): an agent/chain branch none of
  whose nodes has a data edge (``uses``, ``tool_call``, ``reviews``, ``link``) leaving it,
  while a sibling step's output *is* consumed, and which holds no outcome and not the final
  LLM call. It fires only when the producer sends explicit ``uses`` edges (without them the
  causal set degrades to the span tree). Waste: the branch's full cost. Confidence 0.7.
  Also an LLM call outside every causal set (:func:`analyzers.attribution.causal_sets`) whose
  output no step consumed, while a later call on the causal path declared its inputs with
  explicit ``uses`` edges (a draft nobody used). Failed calls, attempts a retry superseded
  and calls in a flagged branch are left to their own rules. Counterfactual: the calls not
  made. Confidence 0.6.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import TYPE_CHECKING

import networkx as nx

from analyzers.attribution import causal_sets
from analyzers.callkeys import minhash, shingles, similarity
from analyzers.common import make_finding
from analyzers.config import AnalyzerConfig
from analyzers.findings import Finding
from analyzers.view import TraceView

if TYPE_CHECKING:
    from analyzers.churn import Calls

__all__ = ["TRANSIENT", "analyze", "is_transient", "rejections"]

_DATA = frozenset({"uses", "tool_call", "reviews", "link"})


TRANSIENT = ("timeout", "timedout", "deadline", "connection", "connect", "unavailable",
             "overloaded", "ratelimit", "rate_limit", "toomanyrequests", "429", "502", "503",
             "504", "internalserver", "servererror", "apierror", "temporar")


def is_transient(error_type: object) -> bool:
    """An error type that says "try again later" (a timeout, a dropped connection, a rate
    limit, a 5xx from the provider) rather than "this input is wrong".

    >>> is_transient("ReadTimeout"), is_transient("RateLimitError"), is_transient("SyntaxError")
    (True, True, False)
    """
    e = str(error_type or "").lower().replace(" ", "").replace("-", "")
    return any(t in e for t in TRANSIENT)


def _repeated_attempts(v: TraceView, attempts: list[str]) -> tuple[list[str], bool]:
    """The attempts a retry repeated with the *same* input (the fixes, retries with changed
    arguments, are not waste), and whether every attempt's input is known."""
    keys = v.keys
    known = all(n in keys for n in attempts)
    if not known:
        return attempts[:-1], False
    return [a for a, b in itertools.pairwise(attempts) if keys[a] == keys[b]], True


def _retry_storms(v: TraceView, cfg: AnalyzerConfig) -> list[Finding]:
    pairs = v.edges.get("retry_of")
    if not pairs:
        return []
    out = []
    R = nx.Graph(pairs)
    for comp in sorted(nx.connected_components(R), key=lambda s: min(v.pos[n] for n in s)):
        attempts = sorted(comp, key=v.pos.__getitem__)
        waste_nodes, known = _repeated_attempts(v, attempts)
        retry_cost = sum(v.cost[n] for n in waste_nodes)
        total = v.total_cost
        by_share = total > 0 and retry_cost >= cfg.retry_storm_cost_share * total
        # identical retries: >= 3 attempts in a row with one input, or costly ones; with
        # inputs unknown, only the attempt count speaks (and confidence drops)
        if not waste_nodes or (len(waste_nodes) + 1 < cfg.retry_storm_attempts
                               and not (known and by_share)):
            continue
        errors = [v.A[n].get("error_type") for n in waste_nodes
                  if v.A[n].get("status") == "error"]
        transient = bool(errors) and all(map(is_transient, errors))
        advice = ("back off with jitter and cap the retries (the errors were transient)"
                  if transient else "fix the cause of the failure or cap the retries")
        out.append(make_finding(
            v.G, "churn.retry_storm", attempts, {n: v.cost[n] for n in waste_nodes},
            attrs=v.A, tokens=v.tokens(waste_nodes),
            confidence=(0.85 if len(waste_nodes) + 1 >= cfg.retry_storm_attempts else 0.75)
            if known else 0.6,
            evidence={"attempts": len(attempts), "repeated_unchanged": len(waste_nodes),
                      "input_unchanged": len(waste_nodes) == len(attempts) - 1 if known
                      else "unknown", "error_types": sorted({str(e) for e in errors}),
                      "transient": transient,
                      "retry_share_of_trace_cost": round(retry_cost / total, 4) if total else 0,
                      "counterfactual": "the repeated attempts not made",
                      "thresholds": [cfg.retry_storm_attempts, cfg.retry_storm_cost_share]},
            message=f"{len(attempts)} attempts of `{v.label(attempts[-1])}`: {{usd}} spent on "
            f"retries with unchanged input; {advice}.",
        ))
    return out


def rejections(v: TraceView) -> dict[str, str]:
    """Rejected LLM calls → the rejecting human or failed guardrail node."""
    rej: dict[str, str] = {}
    for u, h in v.edges.get("reviews", ()):
        if v.A[u].get("kind") == "llm" and v.A[h].get("decision") in ("reject", "override"):
            rej.setdefault(u, h)
    for u, g in sorted((e for k in _DATA for e in v.edges.get(k, ())),
                       key=lambda e: (v.pos[e[1]], v.pos[e[0]])):
        if v.A[g].get("kind") == "guardrail" and v.A[g].get("status") == "error" \
                and v.A[u].get("kind") == "llm":
            rej.setdefault(u, g)
    return rej


def _reprompts_and_overrides(v: TraceView, c: Calls, cfg: AnalyzerConfig) -> list[Finding]:
    out = []
    llms = c.streams["llm"]
    for a, judge in sorted(rejections(v).items(), key=lambda kv: v.pos[kv[0]]):
        again, s = None, 0.0
        pa = v.A[a].get("prompt")
        for b in (b for b in llms if v.pos[b] > v.pos[judge]):
            if a in v.keys and v.keys.get(b) == v.keys[a]:
                again, s = b, 1.0
                break
            pb = v.A[b].get("prompt")
            if isinstance(pa, str) and isinstance(pb, str):
                s = similarity(minhash(shingles(pa)), minhash(shingles(pb)))
                if s >= cfg.reprompt_similarity:
                    again = b
                    break
        cost = {a: v.cost[a]}
        name = v.label(a)
        if again is not None:
            out.append(make_finding(
                v.G, "churn.reprompt", [a, judge, again], cost, attrs=v.A, tokens=v.tokens([a]),
                confidence=0.8,
                evidence={"rejected_by": judge, "prompt_similarity": round(s, 3),
                          "threshold": cfg.reprompt_similarity,
                          "counterfactual": "the rejected call not made (fixed before sending)"},
                message=f"`{name}` was sent again nearly unchanged after its output was "
                "rejected: {usd} wasted; change the prompt or the model before retrying.",
            ))
        elif v.A[judge].get("kind") == "human":
            decision = v.A[judge].get("decision")
            out.append(make_finding(
                v.G, "churn.overridden", [a, judge], cost, attrs=v.A, tokens=v.tokens([a]),
                confidence=0.9, evidence={"decision": decision, "reviewer_node": judge,
                                          "counterfactual": "the overridden call not made"},
                message=f"A reviewer chose `{decision}` on the output of `{name}`: {{usd}} "
                "wasted; fix the prompt or route this case to a person first.",
            ))
    return out


def _dead_ends(v: TraceView, c: Calls) -> list[Finding]:
    if not v.edges.get("uses"):
        return []  # without a uses edge no branch is consumed
    pred = v.G.pred
    if not any("parent" in (d.get("kinds") or ())
               for b in (*v.by_kind.get("agent", ()), *v.by_kind.get("chain", ()))
               for d in pred[b].values()):
        return []  # no agent/chain node under a parent: no branch
    children: dict[str, list[str]] = defaultdict(list)
    for u, w in v.parent_edges:
        children[u].append(w)
    groups = {p: ch for p, ch in children.items()
              if any(v.A[b].get("kind") in ("agent", "chain") for b in ch) and len(ch) >= 2}
    succ = v.G.succ
    if not groups or not any(not succ[u][w].get("inferred") for u, w in v.edges.get("uses", ())):
        return []
    llms = [n for n in v.order if v.A[n].get("kind") == "llm"]
    final = llms[-1] if llms else None

    def subtree(n: str) -> set[str]:
        seen, stack = {n}, [n]
        while stack:
            for w in children.get(stack.pop(), ()):
                if w not in seen:
                    seen.add(w)
                    stack.append(w)
        return seen

    def consumed(s: set[str]) -> bool:
        return any(w not in s and not _DATA.isdisjoint(ks)
                   for u in s for w, ks in v.out_kinds.get(u, ()))

    out: list[Finding] = []
    for p in sorted(groups, key=v.pos.__getitem__):
        branches = sorted(groups[p], key=v.pos.__getitem__)
        subs = {b: subtree(b) for b in branches}
        used = [b for b in branches if consumed(subs[b])]
        if not used:
            continue
        for b in branches:
            s = subs[b]
            if b in used or v.A[b].get("kind") not in ("agent", "chain") or final in s \
                    or any(v.A[n].get("kind") in ("outcome", "human") for n in s):
                continue
            nodes = sorted(s, key=v.pos.__getitem__)
            waste = {n: v.cost[n] for n in nodes if v.cost[n] > 0}
            if not waste:
                continue
            out.append(make_finding(
                v.G, "churn.dead_end", nodes, waste, attrs=v.A, tokens=v.tokens(nodes),
                confidence=0.7,
                evidence={"branch": b, "steps": len(nodes), "consumed_siblings": used,
                          "counterfactual": "the branch not run"},
                message=f"Branch `{v.label(b)}` ({len(nodes)} steps) produced nothing a later "
                "step used: {usd} wasted; drop the branch or gate it on need.",
            ))
    return out


def _unused_calls(v: TraceView, branches: list[Finding]) -> list[Finding]:
    """LLM calls off every causal path whose output nothing consumed, when a later causal
    call declared its inputs explicitly (one finding per trace)."""
    uses = v.edges.get("uses")
    if not uses:
        return []
    A, succ = v.A, v.G.succ
    declared = [w for u, w in uses
                if A[w].get("kind") == "llm" and not succ[u][w].get("inferred")]
    if not declared:
        return []
    last = max(v.pos[w] for w in declared)
    superseded = {u for u, _ in v.edges.get("retry_of", ())}
    flagged = {n for f in branches for n in f.node_ids}
    calls = [n for n in v.by_kind.get("llm", ())
             if n not in superseded and n not in flagged
             and v.pos[n] < last and v.A[n].get("status", "ok") == "ok" and v.cost[n] > 0
             and not any(not _DATA.isdisjoint(ks) for _, ks in v.out_kinds.get(n, ()))]
    if not calls:
        return []  # settled without the causal sets (most traces)
    causal: set[str] = set().union(*causal_sets(v.G).values())
    declared = [w for w in declared if w in causal]
    calls = [n for n in calls if n not in causal
             and any(v.pos[w] > v.pos[n] for w in declared)]
    if not calls:
        return []
    consumer = min((w for w in declared if v.pos[w] > v.pos[calls[-1]]), key=v.pos.__getitem__)
    names = sorted({v.label(n) for n in calls})
    return [make_finding(
        v.G, "churn.dead_end", calls, {n: v.cost[n] for n in calls}, attrs=v.A,
        tokens=v.tokens(calls), confidence=0.6,
        evidence={"unused_calls": calls, "consumer": consumer,
                  "consumer_inputs": sorted(u for u, w in v.edges.get("uses", ()) if w == consumer),
                  "counterfactual": "the calls not made"},
        message=f"{len(calls)} call(s) to {', '.join(f'`{x}`' for x in names)} produced output no "
        f"later step used (`{v.label(consumer)}` declared its inputs): {{usd}} wasted; drop the "
        "call or use its output.",
    )]


def analyze(v: TraceView, c: Calls, config: AnalyzerConfig) -> list[Finding]:
    """Control-flow churn findings (not yet booked once)."""
    branches = _dead_ends(v, c)
    return [*_retry_storms(v, config), *_reprompts_and_overrides(v, c, config),
            *branches, *_unused_calls(v, branches)]
