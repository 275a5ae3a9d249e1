"""Churn: repeated, looping and near-duplicate calls (and, via :mod:`analyzers.churn_flow`,
retry storms, re-prompts, overridden output and dead ends).

Heuristics and where they come from (methods §2 and §6.1):

- ``churn.exact_repeat`` / ``churn.tight_loop`` / ``churn.error_loop`` — Gemini CLI's
  LoopDetectionService (hash of tool name + canonical args, consecutive identical calls) and
  OpenHands' StuckDetector (identical action *and* observation; 3 identical action+error). A
  repeat needs the same call key **and** the same result key with no state-changing tool call
  between, so polling whose result changes, re-running tests after an edit and retries with
  changed arguments never match. ≥3 consecutive → tight loop; all errors of one type, ≥3 →
  error loop; otherwise ≥2 → exact repeat. Confidence 0.95 / 0.97 / 0.95.
- ``churn.cycle`` — OpenHands' alternating-pattern rule generalised to periods 2 and 3 over
  (call key, result key) tokens, ≥3 repeats. Confidence 0.9.
- ``churn.near_duplicate`` — MinHash/LSH (:mod:`analyzers.callkeys`): same tool (or model),
  J(args or prompt) ≥ 0.8 and J(result or output) ≥ 0.9, no state change between. Confidence
  0.6 + 0.3 × the lower of the two similarities.

Dollars (DESIGN §5): a redundant tool call is paid for by the LLM turn that issued it — waste
is that turn's cost plus the tool's own; a duplicate LLM call costs its full price. The first
occurrence is never waste.

>>> from analyzers.config import AnalyzerConfig
>>> import networkx as nx
>>> G = nx.DiGraph(trace_id="t", workflow="w")
>>> for i in range(3):
...     G.add_node(f"l{i}", kind="llm", order=2 * i, cost_usd=0.01, parent_id="r")
...     G.add_node(f"t{i}", kind="tool", order=2 * i + 1, tool_name="search_kb",
...                args={"q": "refund"}, result="policy text", cost_usd=0.0, parent_id="r")
>>> [(f.code, f.node_ids, round(f.wasted_cost_usd, 2))
...  for f in analyze(G, baseline=None, config=AnalyzerConfig())]
[('churn.tight_loop', ('t0', 'l1', 't1', 'l2', 't2'), 0.02)]
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import networkx as nx

from analyzers import churn_flow
from analyzers.baseline import WorkflowBaseline
from analyzers.callkeys import call_key, canonical_args, lsh_pairs, minhash, result_key, shingles
from analyzers.callkeys import similarity
from analyzers.common import book_once, issuing_llm, make_finding
from analyzers.config import AnalyzerConfig
from analyzers.findings import Finding
from analyzers.graph import nodes_in_order

__all__ = ["analyze", "Calls"]


class Calls:
    """The trace's tool and LLM calls in order, with their keys and the state changes."""

    def __init__(self, G: nx.DiGraph, config: AnalyzerConfig) -> None:
        self.G = G
        self.order = nodes_in_order(G)
        self.pos = {n: i for i, n in enumerate(self.order)}
        self.key: dict[str, str] = {}
        self.result: dict[str, str | None] = {}
        self.streams: dict[str, list[str]] = {"tool": [], "llm": []}
        self.changes: list[int] = []  # positions of state-changing tool calls
        for n in self.order:
            a = G.nodes[n]
            kind = a.get("kind")
            if kind == "tool" and not str(a.get("tool_name") or a.get("name") or "").lower(
            ).startswith(config.read_only_prefixes):
                self.changes.append(self.pos[n])
            if kind not in ("tool", "llm"):
                continue
            k = call_key(a)
            if k is None:
                continue
            self.key[n] = k
            self.result[n] = result_key(a)
            self.streams[str(kind)].append(n)

    def changed_between(self, a: str, b: str, same_key: str) -> bool:
        """A state-changing tool call (other than the repeated call itself) between a and b."""
        lo, hi = self.pos[a], self.pos[b]
        return any(lo < p < hi and self.key.get(self.order[p]) != same_key for p in self.changes)

    def waste_of(self, n: str, keep_issuers: set[str]) -> dict[str, float]:
        """Waste of a redundant call: its cost, plus its issuing LLM turn for a tool call."""
        from analyzers.graph import node_cost

        out = {n: node_cost(self.G.nodes[n])}
        if self.G.nodes[n].get("kind") == "tool":
            llm = issuing_llm(self.G, n, self.order, self.pos)
            if llm is not None and llm not in keep_issuers:
                out[llm] = node_cost(self.G.nodes[llm])
        return out

    def label(self, n: str) -> str:
        a = self.G.nodes[n]
        return str(a.get("tool_name") or a.get("model") or a.get("name") or n)


def _finding(c: Calls, code: str, occ: list[str], conf: float, ev: dict[str, Any],
             msg: str, waste_from: int = 1) -> Finding:
    """A finding over occurrences ``occ``; those from ``waste_from`` on are waste (with their
    issuing LLM turns, unless a kept occurrence was issued by the same turn)."""
    keep = set(occ[:waste_from])
    for n in occ[:waste_from]:
        if c.G.nodes[n].get("kind") == "tool":
            llm = issuing_llm(c.G, n, c.order, c.pos)
            if llm:
                keep.add(llm)
    waste: dict[str, float] = {}
    for n in occ[waste_from:]:
        waste.update(c.waste_of(n, keep))
    nodes = sorted({*occ, *waste}, key=c.pos.__getitem__)
    tokens = sum(int(c.G.nodes[n].get("input_tokens") or 0)
                 + int(c.G.nodes[n].get("output_tokens") or 0) for n in waste)
    ev = {"call_key": c.key[occ[0]], "occurrences": len(occ), **ev}
    return make_finding(c.G, code, nodes, waste, tokens=tokens, confidence=conf, evidence=ev,
                        message=msg)


def _cycles(c: Calls, cfg: AnalyzerConfig, out: list[Finding]) -> set[str]:
    claimed: set[str] = set()
    for stream in c.streams.values():
        tok = [(c.key[n], c.result[n]) for n in stream]
        i = 0
        while i < len(tok):
            hit = False
            for p in (2, 3):
                if i + p * cfg.cycle_min_repeats > len(tok) or len(set(tok[i:i + p])) < 2 \
                        or any(t[1] is None for t in tok[i:i + p]):
                    continue
                j = i + p
                while j < len(tok) and tok[j] == tok[j - p]:
                    j += 1
                reps = (j - i) // p
                if reps >= cfg.cycle_min_repeats:
                    seg = stream[i:i + reps * p]
                    names = [c.label(n) for n in seg[:p]]
                    f = _finding(c, "churn.cycle", seg, 0.9,
                                 {"period": p, "repeats": reps, "pattern": names},
                                 f"A {p}-step cycle ({' → '.join(names)}) repeated {reps} times "
                                 "with the same results: {usd} wasted; break out after the "
                                 "first round.", waste_from=p)
                    out.append(f)
                    claimed.update(seg)
                    i += reps * p
                    hit = True
                    break
            if not hit:
                i += 1
    return claimed


def _repeats(c: Calls, cfg: AnalyzerConfig, claimed: set[str], out: list[Finding]) -> None:
    for stream in c.streams.values():
        idx = {n: i for i, n in enumerate(stream)}
        groups: dict[str, list[str]] = defaultdict(list)
        for n in stream:
            if n not in claimed:
                groups[c.key[n]].append(n)
        for key, occ in groups.items():
            if len(occ) < 2:
                continue
            # split where the state changed, then by result
            segs: list[list[str]] = [[occ[0]]]
            for prev, n in zip(occ, occ[1:]):
                if c.changed_between(prev, n, key):
                    segs.append([n])
                else:
                    segs[-1].append(n)
            for seg in segs:
                by_res: dict[str | None, list[str]] = defaultdict(list)
                for n in seg:
                    by_res[c.result[n]].append(n)
                for res, same in by_res.items():
                    if res is not None:
                        _classify(c, cfg, same, res, idx, out)


def _classify(c: Calls, cfg: AnalyzerConfig, same: list[str], res: str, idx: dict[str, int],
              out: list[Finding]) -> None:
    name = c.label(same[0])
    n = len(same)
    if res.startswith("error:"):
        if n >= cfg.error_loop_min:
            err = res.split(":", 1)[1] or "error"
            out.append(_finding(c, "churn.error_loop", same, 0.95, {"error_type": err},
                                f"`{name}` failed {n} times the same way ({err}) with the same "
                                "input: {usd} wasted; stop retrying a deterministic error."))
        return
    run = best = 1
    for a, b in zip(same, same[1:]):
        run = run + 1 if idx[b] == idx[a] + 1 else 1
        best = max(best, run)
    if best >= cfg.tight_loop_min:
        out.append(_finding(c, "churn.tight_loop", same, 0.97, {"consecutive": best},
                            f"`{name}` was called {n} times in a row with the same input and "
                            "result: {usd} wasted; stop after the first call or add loop "
                            "detection."))
    elif n >= cfg.exact_repeat_min:
        out.append(_finding(c, "churn.exact_repeat", same, 0.95, {},
                            f"{n} identical calls to `{name}` with the same input and result "
                            "and nothing changed between: {usd} wasted; cache the result or "
                            "stop after the first."))


def _text(a: dict[str, Any], which: str) -> str | None:
    if a.get("kind") == "tool":
        v = a.get("args") if which == "in" else a.get("result")
        return canonical_args(v) if v is not None else None
    v = a.get("prompt") if which == "in" else a.get("output")
    return v if isinstance(v, str) else None


def _near_dups(c: Calls, cfg: AnalyzerConfig, claimed: set[str], out: list[Finding]) -> None:
    for stream in c.streams.values():
        cand = [n for n in stream if n not in claimed and c.result[n]
                and not str(c.result[n]).startswith("error:")
                and _text(c.G.nodes[n], "in") and _text(c.G.nodes[n], "out")]
        if len(cand) < 2:
            continue
        sig_in = [minhash(shingles(_text(c.G.nodes[n], "in") or "")) for n in cand]
        parent = list(range(len(cand)))
        sims: dict[int, float] = {}

        def root(i: int) -> int:
            while parent[i] != i:
                i = parent[i]
            return i

        for i, j in lsh_pairs(sig_in):
            a, b = cand[i], cand[j]
            if c.key[a] == c.key[b] or c.label(a) != c.label(b):
                continue
            s_in = similarity(sig_in[i], sig_in[j])
            if s_in < cfg.near_dup_args or c.changed_between(a, b, ""):
                continue
            s_out = similarity(minhash(shingles(_text(c.G.nodes[a], "out") or "")),
                               minhash(shingles(_text(c.G.nodes[b], "out") or "")))
            if s_out >= cfg.near_dup_result:
                parent[root(j)] = root(i)
                sims[j] = min(sims.get(j, 1.0), s_in, s_out)
        clusters: dict[int, list[int]] = defaultdict(list)
        for i in range(len(cand)):
            clusters[root(i)].append(i)
        for members in clusters.values():
            if len(members) < 2:
                continue
            occ = [cand[i] for i in sorted(members)]
            s = min(sims.get(i, 1.0) for i in members)
            out.append(_finding(c, "churn.near_duplicate", occ, 0.6 + 0.3 * s,
                                {"min_similarity": round(s, 3),
                                 "thresholds": [cfg.near_dup_args, cfg.near_dup_result]},
                                f"{len(occ)} near-identical calls to `{c.label(occ[0])}` "
                                "returned near-identical results: {usd} wasted; reuse the "
                                "first result."))


def analyze(G: nx.DiGraph, *, baseline: WorkflowBaseline | None,
            config: AnalyzerConfig) -> list[Finding]:
    """All churn findings of one trace, each node's waste booked once."""
    c = Calls(G, config)
    out: list[Finding] = []
    claimed = _cycles(c, config, out)
    _repeats(c, config, claimed, out)
    flagged = claimed | {n for f in out for n in f.node_ids}
    _near_dups(c, config, flagged, out)
    out.extend(churn_flow.analyze(G, c, config))
    return book_once(G, out)
