"""Helpers shared by the analyzers: prices, the issuing LLM turn, findings and booking.

Booking (docs/analysis.md, "Finding codes"): each finding carries
``evidence["waste_by_node"]``; :func:`book_once`
walks findings from the most precise rule to the least (:data:`PRIORITY`) and books each
node's waste at most up to its cost, so a trace's booked waste never exceeds its cost.

>>> fmt_usd(0.0421), fmt_usd(0.000012)
('$0.0421', '$0.000012')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from analyzers.baseline import OUTPUT_INPUT_RATIO, Rates, WorkflowBaseline
from analyzers.config import AnalyzerConfig
from analyzers.findings import Finding
from analyzers.graph import node_cost

__all__ = [
    "PRIORITY",
    "book_once",
    "fmt_usd",
    "input_rate",
    "issuing_llm",
    "make_finding",
    "price_usage",
    "rates_for",
]

# Most precise first: exact hashing rules, then explicit human/retry signals, then
# similarity, structure, token accounting, and corpus-statistical routing last.
PRIORITY = (
    "churn.error_loop", "churn.tight_loop", "churn.exact_repeat", "churn.cycle",
    "churn.retry_storm", "churn.reprompt", "churn.overridden", "churn.near_duplicate",
    "routing.wasted_escalation", "churn.dead_end", "bloat.cache_miss", "bloat.over_retrieval",
    "bloat.unused_context", "bloat.oversized_prompt", "bloat.history_growth",
    "routing.reasoning_overkill", "routing.cheaper_model_sufficient",
    "routing.overpowered_model",
)
_RANK = {c: i for i, c in enumerate(PRIORITY)}
_EPS = 1e-12


def fmt_usd(x: float) -> str:
    """Dollars for messages: 4 decimals, 6 below a hundredth of a cent."""
    return f"${x:,.4f}" if x >= 0.0001 else f"${x:.6f}"


def _table_rates(model: str, table: Mapping[str, Mapping[str, float]]) -> Rates | None:
    m = model.lower().rsplit("/", 1)[-1]
    best = None
    for key in table:
        k = key.lower()
        if m.startswith(k) and (best is None or len(k) > len(best)):
            best = key
    if best is None:
        return None
    p = table[best]
    cr, cw = p.get("cache_read_mtok"), p.get("cache_write_mtok")
    return Rates(
        input=p["input_mtok"] / 1e6, output=p["output_mtok"] / 1e6,
        cache_read=cr / 1e6 if cr is not None else None,
        cache_write=cw / 1e6 if cw is not None else None,
    )


def _observed_rates(model: str, baseline: WorkflowBaseline) -> Rates | None:
    r = baseline.model_rates.get(model)
    if r is not None:
        return r
    # "claude-3-5-haiku" names the dated "claude-3-5-haiku-20241022" seen in the corpus
    m = model.lower().rsplit("/", 1)[-1]
    seen = sorted(k for k in baseline.model_rates if k.lower().startswith(m))
    return baseline.model_rates[seen[-1]] if seen else None


def _fill(message: str, usd: str) -> str:
    """``message`` with its ``{usd}`` field filled."""
    return message.format(usd=usd)


def rates_for(model: str | None, *, baseline: WorkflowBaseline | None,
              config: AnalyzerConfig) -> Rates | None:
    """Per-token rates of ``model``: the config's price table (longest matching model-name
    prefix), else the rates observed in this workflow's corpus, else None."""
    if not model:
        return None
    r = _table_rates(model, config.price_table)
    if r is not None or baseline is None:
        return r
    return _observed_rates(model, baseline)


def price_usage(r: Rates, a: dict[str, Any], *, drop_reasoning: bool = False) -> float:
    """What node ``a``'s token usage would cost at rates ``r`` (cache reads at the cache rate
    when ``r`` has one; reasoning tokens left out when ``drop_reasoning``)."""
    inp = int(a.get("input_tokens") or 0)
    out = int(a.get("output_tokens") or 0)
    if drop_reasoning:
        out = max(0, out - int(a.get("reasoning_tokens") or 0))
    cr = min(inp, int(a.get("cache_read_tokens") or 0)) if r.cache_read is not None else 0
    return (inp - cr) * r.input + cr * (r.cache_read or 0.0) + out * r.output


def input_rate(a: dict[str, Any], *, baseline: WorkflowBaseline | None,
               config: AnalyzerConfig) -> float:
    """USD per uncached input token of the call ``a``; without a known rate, derived from the
    call's own cost with output at 4x input (see ``baseline.OUTPUT_INPUT_RATIO``)."""
    r = rates_for(a.get("model"), baseline=baseline, config=config)
    if r is not None:
        return r.input
    denom = int(a.get("input_tokens") or 0) + OUTPUT_INPUT_RATIO * int(a.get("output_tokens") or 0)
    return node_cost(a) / denom if denom else 0.0


def issuing_llm(G: nx.DiGraph[str], tool: str, order: list[str], pos: dict[str, int]) -> str | None:
    """The LLM turn that decided to call ``tool``: a ``tool_call`` edge, else the latest
    earlier LLM call under the same parent, else an LLM parent."""
    for u in G.predecessors(tool):
        kinds = G.succ[u][tool].get("kinds") or ()
        if "tool_call" in kinds and G.nodes[u].get("kind") == "llm":
            return str(u)
    parent = G.nodes[tool].get("parent_id")
    for i in range(pos[tool] - 1, -1, -1):
        a = G.nodes[order[i]]
        if a.get("kind") == "llm" and a.get("parent_id") == parent:
            return order[i]
    if parent is not None and parent in G and G.nodes[parent].get("kind") == "llm":
        return str(parent)
    return None


def make_finding(
    G: nx.DiGraph[str], code: str, node_ids: Iterable[str], waste_by_node: dict[str, float], *,
    tokens: int, confidence: float, evidence: dict[str, Any], message: str,
    savings: float | None = None, attrs: Mapping[str, dict[str, Any]] | None = None,
) -> Finding:
    """A finding whose waste is the sum of ``waste_by_node`` (each capped at the node's cost);
    ``message`` may use ``{usd}`` for the dollar figure. ``attrs``: the graph's node
    attributes by id, when the caller has them at hand (:attr:`TraceView.A`)."""
    nodes = G.nodes if attrs is None else attrs
    capped: dict[str, float] = {}
    unpriced: list[str] = []
    for n, w in waste_by_node.items():
        c = nodes[n].get("cost_usd")
        if c is None:
            unpriced.append(n)
            cost = 0.0
        else:
            cost = float(c)
        w = float(w)
        capped[n] = cost if cost < w else w  # min(w, cost) without the builtin's call
    total = sum(capped.values())
    ev = dict(evidence)
    # a zero (an unpriced node's capped waste) rounds to itself, sign included: kept as is
    ev["waste_by_node"] = {n: round(w, 9) for n, w in capped.items()}
    if unpriced:
        # detected waste on steps nobody priced: shown, never as a silent $0
        ev["unpriced_nodes"] = unpriced
    graph = G.graph
    trace_id, workflow = str(graph.get("trace_id") or ""), graph.get("workflow")
    confidence = round(confidence, 3)
    if total <= _EPS and unpriced:
        return Finding.create(
            trace_id=trace_id, workflow=workflow,
            code=code, node_ids=tuple(node_ids), wasted_tokens=tokens, wasted_cost_usd=0.0,
            savings_usd=0.0, confidence=confidence, evidence=ev,
            message=_fill(message, "an unpriced amount"))
    return Finding.create(
        trace_id=trace_id, workflow=workflow,
        code=code, node_ids=tuple(node_ids), wasted_tokens=tokens, wasted_cost_usd=total,
        savings_usd=total if savings is None else min(savings, total),
        confidence=confidence, evidence=ev, message=_fill(message, fmt_usd(total)),
    )


def book_once(G: nx.DiGraph[str], findings: Iterable[Finding], *,
              attrs: Mapping[str, dict[str, Any]] | None = None) -> list[Finding]:
    """Book each node's waste once, most precise rule first; findings left with no waste are
    dropped, partly overlapped ones shrink. Result sorted by first node's order, then code.
    ``attrs``: the graph's node attributes by id, when the caller has them at hand."""
    booked: dict[str, float] = {}
    claimed: set[str] = set()  # nodes a kept finding claimed, priced or not
    out: list[Finding] = []
    findings = list(findings)
    if not findings:
        return out
    nodes = G.nodes if attrs is None else attrs
    for f in sorted(findings, key=lambda f: (_RANK[f.code], -f.wasted_cost_usd, f.id)):
        claims: dict[str, float] = f.evidence.get("waste_by_node", {})
        kept: dict[str, float] = {}
        for n, w in claims.items():
            room = node_cost(nodes[n]) - booked.get(n, 0.0)
            # min(w, max(room, 0.0)) without two builtin calls per node (the same operands
            # compared the same way, so NaN and signed zeros come out as before)
            room = 0.0 if room < 0.0 else room
            take = room if room < w else w
            if take > _EPS:
                kept[n] = take
        total = sum(kept.values())
        if total <= _EPS:
            if not (f.wasted_cost_usd <= _EPS
                    and set(f.evidence.get("unpriced_nodes", ())) - claimed):
                continue  # wholly booked by a more precise rule
            claimed.update(claims)
            out.append(f)  # an unpriced finding: nothing to book
            continue
        claimed.update(claims)
        for n, w in kept.items():
            booked[n] = booked.get(n, 0.0) + w
        if abs(total - f.wasted_cost_usd) > _EPS:
            share = total / f.wasted_cost_usd if f.wasted_cost_usd else 0.0
            ev = dict(f.evidence)
            ev["waste_by_node"] = {n: round(w, 9) for n, w in kept.items()}
            ev["overlap_booked_elsewhere_usd"] = round(f.wasted_cost_usd - total, 9)
            f = dataclasses.replace(
                f, wasted_cost_usd=total, savings_usd=min(f.savings_usd, total),
                wasted_tokens=round(f.wasted_tokens * share), evidence=ev,
                message=f.message.replace(fmt_usd(f.wasted_cost_usd), fmt_usd(total), 1),
            )
        out.append(f)
    if len(out) > 1:
        # a list, not a generator, under min(): no generator frame resumed per node
        out.sort(key=lambda f: (min([nodes[n].get("order", 0) for n in f.node_ids], default=0),
                                f.code, f.id))
    return out
