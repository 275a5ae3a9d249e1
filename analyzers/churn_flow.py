"""Churn from the trace's control flow: retry storms, re-prompts, overridden output, dead ends.
Called by :func:`analyzers.churn.analyze`, which books each node's waste once.

- ``churn.retry_storm`` (methods §6.1 C6): attempts of one logical call are the components of
  ``retry_of`` edges. ≥3 attempts, or 2 attempts with unchanged input whose retry costs ≥ 20%
  of the trace (a retry with changed arguments is a fix, not a storm). Waste: every attempt but
  the last. Confidence 0.85 (0.75 for the cost-share rule).
- ``churn.reprompt`` (C7): an LLM call whose prompt is near-identical (MinHash J ≥ 0.9, or the
  same call key) to an earlier call whose output a human rejected/overrode or a guardrail
  failed. Waste: the rejected call. Confidence 0.8.
- ``churn.overridden`` (DESIGN §5): model output a human rejected or replaced (``reviews`` edge
  to a ``reject``/``override`` decision). Waste: the call's full cost. Confidence 0.9.
- ``churn.dead_end`` (C9, methods §4.2 causal set): an agent/chain branch none of whose nodes
  has a data edge (``uses``, ``tool_call``, ``reviews``, ``link``) leaving it, while a sibling
  branch's output *is* consumed, and which holds no outcome and not the final LLM call. It
  fires only when the producer sends explicit ``uses`` edges (without them the causal set
  degrades to the span tree, methods §8). Waste: the branch's full cost. Confidence 0.7.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx

from analyzers.baseline import rejected_nodes
from analyzers.callkeys import minhash, shingles, similarity
from analyzers.common import make_finding
from analyzers.config import AnalyzerConfig
from analyzers.findings import Finding
from analyzers.graph import edges_of_kind, node_cost

if TYPE_CHECKING:
    from analyzers.churn import Calls

__all__ = ["analyze"]

_DATA = frozenset({"uses", "tool_call", "reviews", "link"})


def _tokens(G: nx.DiGraph, nodes: list[str]) -> int:
    return sum(int(G.nodes[n].get("input_tokens") or 0) + int(G.nodes[n].get("output_tokens")
               or 0) for n in nodes)


def _retry_storms(G: nx.DiGraph, c: Calls, cfg: AnalyzerConfig) -> list[Finding]:
    R = nx.Graph(edges_of_kind(G, "retry_of"))
    total = sum(node_cost(G.nodes[n]) for n in G.nodes)
    out = []
    for comp in sorted(nx.connected_components(R), key=lambda s: min(c.pos[n] for n in s)):
        attempts = sorted(comp, key=c.pos.__getitem__)
        waste_nodes = attempts[:-1]
        retry_cost = sum(node_cost(G.nodes[n]) for n in waste_nodes)
        unchanged = len({c.key.get(n) for n in attempts}) == 1 and attempts[0] in c.key
        by_share = total > 0 and retry_cost >= cfg.retry_storm_cost_share * total
        if len(attempts) < cfg.retry_storm_attempts and not (unchanged and by_share):
            continue
        out.append(make_finding(
            G, "churn.retry_storm", attempts, {n: node_cost(G.nodes[n]) for n in waste_nodes},
            tokens=_tokens(G, waste_nodes),
            confidence=0.85 if len(attempts) >= cfg.retry_storm_attempts else 0.75,
            evidence={"attempts": len(attempts), "input_unchanged": unchanged,
                      "retry_share_of_trace_cost": round(retry_cost / total, 4) if total else 0,
                      "thresholds": [cfg.retry_storm_attempts, cfg.retry_storm_cost_share]},
            message=f"{len(attempts)} attempts of `{c.label(attempts[-1])}`: {{usd}} spent on "
            "retries; fix the cause of the failure or cap the retries.",
        ))
    return out


def _rejections(G: nx.DiGraph, c: Calls) -> dict[str, str]:
    """Rejected LLM calls → the rejecting human or failed guardrail node."""
    rej = {n: h for n, h in rejected_nodes(G).items() if G.nodes[n].get("kind") == "llm"}
    for g in c.order:
        a = G.nodes[g]
        if a.get("kind") != "guardrail" or a.get("status") != "error":
            continue
        checked = [u for u in G.predecessors(g) if G.nodes[u].get("kind") == "llm"
                   and _DATA & set(G.edges[u, g].get("kinds") or ())]
        for u in checked:
            rej.setdefault(u, g)
    return rej


def _reprompts_and_overrides(G: nx.DiGraph, c: Calls, cfg: AnalyzerConfig) -> list[Finding]:
    out = []
    rej = _rejections(G, c)
    llms = c.streams["llm"]
    for a, judge in sorted(rej.items(), key=lambda kv: c.pos[kv[0]]):
        later = [b for b in llms if c.pos[b] > c.pos[judge]]
        again, s = None, 0.0
        pa = G.nodes[a].get("prompt")
        for b in later:
            if c.key.get(b) == c.key.get(a) and a in c.key:
                again, s = b, 1.0
                break
            pb = G.nodes[b].get("prompt")
            if isinstance(pa, str) and isinstance(pb, str):
                s = similarity(minhash(shingles(pa)), minhash(shingles(pb)))
                if s >= cfg.reprompt_similarity:
                    again = b
                    break
        cost = {a: node_cost(G.nodes[a])}
        name = c.label(a)
        if again is not None:
            out.append(make_finding(
                G, "churn.reprompt", [a, judge, again], cost, tokens=_tokens(G, [a]),
                confidence=0.8,
                evidence={"rejected_by": judge, "prompt_similarity": round(s, 3),
                          "threshold": cfg.reprompt_similarity},
                message=f"`{name}` was sent again nearly unchanged after its output was "
                "rejected: {usd} wasted; change the prompt or the model before retrying.",
            ))
        elif G.nodes[judge].get("kind") == "human":
            decision = G.nodes[judge].get("decision")
            out.append(make_finding(
                G, "churn.overridden", [a, judge], cost, tokens=_tokens(G, [a]),
                confidence=0.9, evidence={"decision": decision, "reviewer_node": judge},
                message=f"A reviewer chose `{decision}` on the output of `{name}`: {{usd}} "
                "wasted; fix the prompt or route this case to a person first.",
            ))
    return out


def _dead_ends(G: nx.DiGraph, c: Calls) -> list[Finding]:
    if not any(not G.edges[u, v].get("inferred") for u, v in edges_of_kind(G, "uses")):
        return []
    T = nx.DiGraph(edges_of_kind(G, "parent"))
    llms = c.streams["llm"] or [n for n in c.order if G.nodes[n].get("kind") == "llm"]
    final = llms[-1] if llms else None

    def subtree(n: str) -> set[str]:
        return {n} | (nx.descendants(T, n) if n in T else set())

    def consumed(s: set[str]) -> bool:
        return any(v not in s and _DATA & set(k or ())
                   for u in s for _, v, k in G.out_edges(u, data="kinds"))

    out: list[Finding] = []
    for p in c.order:
        branches = [ch for ch in T.successors(p) if G.nodes[ch].get("kind") in ("agent", "chain")] \
            if p in T else []
        if len(branches) < 2:
            continue
        subs = {b: subtree(b) for b in branches}
        used = {b for b in branches if consumed(subs[b])}
        if not used:
            continue
        for b in sorted(set(branches) - used, key=c.pos.__getitem__):
            s = subs[b]
            if final in s or any(G.nodes[n].get("kind") == "outcome" for n in s):
                continue
            nodes = sorted(s, key=c.pos.__getitem__)
            waste = {n: node_cost(G.nodes[n]) for n in nodes if node_cost(G.nodes[n]) > 0}
            if not waste:
                continue
            out.append(make_finding(
                G, "churn.dead_end", nodes, waste, tokens=_tokens(G, nodes), confidence=0.7,
                evidence={"branch": b, "steps": len(nodes), "consumed_siblings": sorted(used)},
                message=f"Branch `{c.label(b)}` ({len(nodes)} steps) produced nothing a later "
                "step used: {usd} wasted; drop the branch or gate it on need.",
            ))
    return out


def analyze(G: nx.DiGraph, c: Calls, config: AnalyzerConfig) -> list[Finding]:
    """Control-flow churn findings (not yet booked once)."""
    return [*_retry_storms(G, c, config), *_reprompts_and_overrides(G, c, config),
            *_dead_ends(G, c)]
