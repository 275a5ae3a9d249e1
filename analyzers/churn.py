"""Churn: repeated, looping and near-duplicate calls (and, via :mod:`analyzers.churn_flow`,
retry storms, re-prompts, overridden output and dead ends).

Heuristics and where they come from (docs/methods.md, "Churn"):

- ``churn.exact_repeat`` / ``churn.tight_loop`` / ``churn.error_loop`` — Gemini CLI's
  LoopDetectionService (hash of tool name + canonical args, consecutive identical calls) and
  OpenHands' StuckDetector (identical action *and* observation; 3 identical action+error). A
  repeat needs the same call key **and** the same result key with no state-changing tool call
  between, so polling whose result changes, re-running tests after an edit and retries with
  changed arguments never match. ≥3 consecutive → tight loop; all errors of one type, ≥3 →
  error loop; otherwise ≥2 → exact repeat. Confidence 0.95 / 0.97 / 0.95.
- ``churn.cycle`` — OpenHands' alternating-pattern rule generalised to periods 2 and 3 over
  (call key, result key) tokens, ≥3 repeats. Confidence 0.9.
- ``churn.near_duplicate`` — same tool (or model), J(args or prompt) ≥ 0.8 and J(result or
  output) ≥ 0.9 on word 3-gram shingles, no state change between. Up to 32 calls of one tool
  are compared pairwise on exact Jaccard (what MinHash estimates, and cheaper at that size);
  larger groups go through MinHash/LSH (:mod:`analyzers.callkeys`). Confidence 0.6 + 0.3 ×
  the lower of the two similarities.

Dollars (docs/analysis.md): a redundant tool call is paid for by the LLM turn that issued it — waste
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

import itertools
import operator
from bisect import bisect_right
from collections import defaultdict
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt

from analyzers import churn_flow
from analyzers.baseline import WorkflowBaseline
from analyzers.callkeys import (
    canonical_args,
    jaccard,
    lsh_pairs,
    minhash,
    minhashes,
    shingle_set,
    shingles,
    similarity,
)
from analyzers.common import book_once, make_finding
from analyzers.config import AnalyzerConfig
from analyzers.findings import Finding
from analyzers.graph import node_cost
from analyzers.view import CallKey, TraceView

__all__ = ["Calls", "analyze", "find"]

EXACT_JACCARD_MAX = 32  # group size up to which pairwise exact Jaccard beats MinHash/LSH


class Calls:
    """The trace's tool and LLM call streams and the positions of state changes."""

    def __init__(self, v: TraceView, config: AnalyzerConfig) -> None:
        self.v = v
        self.changes: list[int] = []  # positions of state-changing tool calls, ascending
        A, pos = v.A, v.pos
        prefixes = config.read_only_prefixes
        for n in v.by_kind.get("tool", ()):
            a = A[n]
            name = a.get("tool_name") or a.get("name") or ""
            if not str(name).lower().startswith(prefixes):
                self.changes.append(pos[n])
        self.streams = v.streams

    def changed_between(self, a: str, b: str, same_key: CallKey) -> bool:
        """A state-changing tool call (other than the repeated call itself) between a and b."""
        changes = self.changes
        if not changes:
            return False
        pos = self.v.pos
        lo, hi = pos[a], pos[b]
        i = bisect_right(changes, lo)
        while i < len(changes) and changes[i] < hi:
            if self.v.keys.get(self.v.order[changes[i]]) != same_key:
                return True
            i += 1
        return False


def _finding(v: TraceView, code: str, occ: list[str], conf: float, ev: dict[str, Any],
             msg: str, waste_from: int = 1) -> Finding:
    """A finding over occurrences ``occ``; those from ``waste_from`` on are waste, each with
    the LLM turn that issued it unless that turn also issued a kept occurrence."""
    issuer_of, A = v.issuer_of, v.A
    keep = set(occ[:waste_from])
    for n in occ[:waste_from]:
        llm = issuer_of(n)
        if llm is not None:
            keep.add(llm)
    waste: dict[str, float] = {}
    for n in occ[waste_from:]:
        waste[n] = node_cost(A[n])
        llm = issuer_of(n)
        if llm is not None and llm not in keep:
            waste[llm] = node_cost(A[llm])
    nodes = sorted({*occ, *waste}, key=v.pos.__getitem__)
    ev = {"call_key": v.key_text(occ[0]), "occurrences": len(occ),
          "counterfactual": "the repeated calls, and the turns that issued only them, not made",
          **ev}
    return make_finding(v.G, code, nodes, waste, tokens=v.tokens(waste), confidence=conf,
                        evidence=ev, message=msg, attrs=v.A)


def _repeated(stream: list[str], ks: list[CallKey]) -> list[str]:
    """Calls of ``stream`` (in order, with their call identities ``ks``) whose call key
    occurs more than once in it: the only ones a cycle or a repeat can hold, so the only ones
    whose results are looked up."""
    if len(set(ks)) == len(ks):
        return []
    counts: dict[CallKey, int] = {}
    for k in ks:
        counts[k] = counts.get(k, 0) + 1
    return [n for n, k in zip(stream, ks, strict=True) if counts[k] > 1]


def _cycles(v: TraceView, c: Calls, cfg: AnalyzerConfig, repeated: dict[str, list[str]],
            stream_keys: dict[str, list[CallKey]], out: list[Finding]) -> set[str]:
    claimed: set[str] = set()
    result = v.result
    for kind, stream in c.streams.items():
        rep = set(repeated[kind])
        if not rep or len(stream) < 2 * cfg.cycle_min_repeats:
            continue  # no call key twice (or too few calls): no cycle
        # a cycle of period p starts where a key recurs p calls later: the only places to look
        ks = stream_keys[kind]
        starts = sorted({*itertools.compress(range(len(ks)), map(operator.eq, ks, ks[2:])),
                         *itertools.compress(range(len(ks)), map(operator.eq, ks, ks[3:]))})
        if not starts:
            continue
        # A call whose key occurs once can be equal to no other token, so its result is never
        # compared: a unique stand-in (not None) gives the same cycles when a cycle needs ≥ 2
        # repeats (a window holding such a call cannot repeat twice).
        full = cfg.cycle_min_repeats < 2
        tok = [(k, result(n) if full or n in rep else (n,))
               for n, k in zip(stream, ks, strict=True)]
        i = 0
        for start in starts:
            if start < i:
                continue  # inside a cycle found before
            i = start
            for p in (2, 3):
                # i + p < len(tok) is implied when cycle_min_repeats >= 2, not when it is 1
                if i + p >= len(tok) or i + p * cfg.cycle_min_repeats > len(tok) \
                        or tok[i + p] != tok[i] \
                        or len(set(tok[i:i + p])) < 2 or any(t[1] is None for t in tok[i:i + p]):
                    continue
                j = i + p
                while j < len(tok) and tok[j] == tok[j - p]:
                    j += 1
                reps = (j - i) // p
                if reps >= cfg.cycle_min_repeats:
                    seg = stream[i:i + reps * p]
                    names = [v.label(n) for n in seg[:p]]
                    out.append(_finding(
                        v, "churn.cycle", seg, 0.9,
                        {"period": p, "repeats": reps, "pattern": names},
                        f"A {p}-step cycle ({' → '.join(names)}) repeated {reps} times with the "
                        "same results: {usd} wasted; break out after the first round.",
                        waste_from=p))
                    claimed.update(seg)
                    i += reps * p
                    break
    return claimed


def _repeats(v: TraceView, c: Calls, cfg: AnalyzerConfig, claimed: set[str],
             repeated: dict[str, list[str]], out: list[Finding]) -> None:
    keys, result = v.keys, v.result
    for kind, stream in c.streams.items():
        rep = repeated[kind]
        if not rep:
            continue  # every call key once: nothing repeats
        idx: dict[str, int] = {}  # stream positions, filled when a repeat is classified
        groups: dict[CallKey, list[str]] = defaultdict(list)
        for n in rep:
            if n not in claimed:
                groups[keys[n]].append(n)
        for key, occ in groups.items():
            if len(occ) < 2:
                continue
            # split where the state changed, then by result
            segs: list[list[str]] = [[occ[0]]]
            for prev, n in itertools.pairwise(occ):
                if c.changed_between(prev, n, key):
                    segs.append([n])
                else:
                    segs[-1].append(n)
            for seg in segs:
                if len(seg) < 2:
                    continue
                by_res: dict[str | None, list[str]] = defaultdict(list)
                for n in seg:
                    by_res[result(n)].append(n)
                for res, same in by_res.items():
                    if res is not None and len(same) > 1:
                        if not idx:
                            idx.update(zip(stream, range(len(stream)), strict=True))
                        if res.startswith("error:"):
                            later = [n for n in seg if v.pos[n] > v.pos[same[-1]]]
                            _error_loop(v, cfg, same, res, any(map(v.result_ok, later)), out)
                        else:
                            _classify(v, cfg, same, idx, out)


def _error_advice(err: str, recovered: bool) -> str:
    """Advice that fits the evidence: a transient error (timeout, connection, rate limit) or
    one an identical later call got past is not a deterministic error."""
    if recovered:
        return ("an identical call succeeded later, so the error is intermittent: back off "
                "with jitter and cap the retries instead of retrying at once")
    if churn_flow.is_transient(err):
        return ("the error is transient: back off with jitter and cap the retries, or check "
                "the dependency's health")
    return "stop retrying a deterministic error: fix the input or the call first"


def _error_loop(v: TraceView, cfg: AnalyzerConfig, same: list[str], res: str,
                recovered: bool, out: list[Finding]) -> None:
    n = len(same)
    if n < cfg.error_loop_min:
        return
    err = res.split(":", 1)[1] or "error"
    transient = churn_flow.is_transient(err)
    out.append(_finding(v, "churn.error_loop", same, 0.95,
                        {"error_type": err, "transient": transient,
                         "later_identical_call_succeeded": recovered,
                         "counterfactual": "the repeated failing calls not made"},
                        f"`{v.label(same[0])}` failed {n} times the same way ({err}) with the "
                        f"same input: {{usd}} wasted; {_error_advice(err, recovered)}."))


def _classify(v: TraceView, cfg: AnalyzerConfig, same: list[str],
              idx: dict[str, int], out: list[Finding]) -> None:
    name = v.label(same[0])
    n = len(same)
    run = best = 1
    for a, b in itertools.pairwise(same):
        run = run + 1 if idx[b] == idx[a] + 1 else 1
        best = max(best, run)
    if best >= cfg.tight_loop_min:
        out.append(_finding(v, "churn.tight_loop", same, 0.97, {"consecutive": best},
                            f"`{name}` was called {n} times in a row with the same input and "
                            "result: {usd} wasted; stop after the first call or add loop "
                            "detection."))
    elif n >= cfg.exact_repeat_min:
        out.append(_finding(v, "churn.exact_repeat", same, 0.95, {},
                            f"{n} identical calls to `{name}` with the same input and result "
                            "and nothing changed between: {usd} wasted; cache the result or "
                            "stop after the first."))


def _text(v: TraceView, n: str, which: str) -> str | None:
    a = v.A[n]
    if a.get("kind") == "tool":
        if which == "in":
            return v.canonical_args.get(n)
        x = a.get("result")
        return x if isinstance(x, str) else (canonical_args(x) if x is not None else None)
    x = a.get("prompt") if which == "in" else a.get("output")
    return x if isinstance(x, str) and x else None


def _similar_pairs(v: TraceView, kind: str, group: list[str], cfg: AnalyzerConfig,
                   ) -> list[tuple[int, int, float]]:
    """(i, j, min similarity) of pairs with near-identical input and output (calls of
    ``kind`` that all have an input text)."""
    found = []
    if kind == "tool":
        ins: list[str] = list(map(v.canonical_args.__getitem__, group))
    else:
        A = v.A
        ins = [A[n]["prompt"] for n in group]
    outs: dict[int, str] = {}

    def out_text(k: int) -> str:
        if k not in outs:
            outs[k] = _text(v, group[k], "out") or ""
        return outs[k]

    if len(group) <= EXACT_JACCARD_MAX:
        si = [shingle_set(t) for t in ins]
        sizes = list(map(len, si))
        t_args = cfg.near_dup_args
        so: dict[int, frozenset[str]] = {}
        for i in range(len(group)):
            a = sizes[i]
            for j in range(i + 1, len(group)):
                b = sizes[j]
                # J ≤ min/max: cannot pass (min and max of two ints by one comparison)
                if (b if b < a else a) < t_args * (b if b > a else a):
                    continue
                s_in = jaccard(si[i], si[j])
                if s_in >= cfg.near_dup_args:
                    for k in (i, j):
                        if k not in so:
                            so[k] = shingle_set(out_text(k))
                    s_out = jaccard(so[i], so[j])
                    if s_out >= cfg.near_dup_result:
                        found.append((i, j, min(s_in, s_out)))
        return found
    sig = minhashes([shingles(t) for t in ins])
    out_sig: dict[int, npt.NDArray[np.uint64]] = {}
    for i, j in lsh_pairs(sig):
        s_in = similarity(sig[i], sig[j])
        if s_in >= cfg.near_dup_args:
            for k in (i, j):
                if k not in out_sig:
                    out_sig[k] = minhash(shingles(out_text(k)))
            s_out = similarity(out_sig[i], out_sig[j])
            if s_out >= cfg.near_dup_result:
                found.append((i, j, min(s_in, s_out)))
    return found


def _root(parent: list[int], i: int) -> int:
    """Union-find root."""
    while parent[i] != i:
        i = parent[i]
    return i


def _near_dup_groups(v: TraceView, kind: str, stream: list[str], claimed: set[str]
                     ) -> dict[str, list[str]]:
    """Calls of one stream with an input and an output text and a result that is not an
    error, by label (tool name or model): the candidates of near-duplicate pairs."""
    A, canon = v.A, v.canonical_args
    # (the conditions of _text and TraceView.result_ok, inlined: most calls fail one)
    groups: dict[str, list[str]] = {}
    if kind == "tool":  # a result first (most calls settle here), then the rest
        cands = [n for n in stream if A[n].get("result") is not None]
    else:  # a non-empty output
        cands = [n for n in stream if A[n].get("output")]
    for n in cands:
        if n in claimed:
            continue
        a = A[n]
        if a.get("status") == "error":
            continue
        if kind == "tool":
            r = a.get("result")
            if (isinstance(r, str) and not r) or n not in canon:
                continue
        else:
            p, o = a.get("prompt"), a.get("output")
            if not (isinstance(p, str) and p and isinstance(o, str)):
                continue
        name = str(a.get("tool_name") or a.get("model") or a.get("name") or n)
        if name in groups:
            groups[name].append(n)
        else:
            groups[name] = [n]
    return groups


def _near_dup_clusters(v: TraceView, c: Calls, kind: str, group: list[str],
                       cfg: AnalyzerConfig, rejected: dict[str, dict[str, str]]
                       ) -> list[tuple[list[str], float]]:
    """Clusters (union-find over similar pairs) of near-identical calls in ``group``, each
    with its lowest similarity; a call redone after its output was rejected is a re-prompt,
    not a duplicate, and a state change between two calls parts them."""
    keys = v.keys
    parent = list(range(len(group)))
    sims: dict[int, float] = {}
    for i, j, s in _similar_pairs(v, kind, group, cfg):
        x, y = group[i], group[j]
        if not rejected:  # the rejected calls, looked up once a pair is similar
            rejected[""] = churn_flow.rejections(v)
        if keys[x] == keys[y] or x in rejected[""] or c.changed_between(x, y, ""):
            continue
        parent[_root(parent, j)] = _root(parent, i)
        sims[j] = min(sims.get(j, 1.0), s)
    if not sims:
        return []
    clusters: dict[int, list[int]] = defaultdict(list)
    for i in range(len(group)):
        clusters[_root(parent, i)].append(i)
    return [([group[i] for i in sorted(members)], min(sims.get(i, 1.0) for i in members))
            for members in clusters.values() if len(members) >= 2]


def _near_dups(v: TraceView, c: Calls, cfg: AnalyzerConfig, claimed: set[str],
               out: list[Finding]) -> None:
    rejected: dict[str, dict[str, str]] = {}  # "" -> the rejected calls, when first needed
    for kind, stream in c.streams.items():
        for group in _near_dup_groups(v, kind, stream, claimed).values():
            if len(group) < 2:
                continue
            for occ, s in _near_dup_clusters(v, c, kind, group, cfg, rejected):
                out.append(_finding(v, "churn.near_duplicate", occ, 0.6 + 0.3 * s,
                                    {"min_similarity": round(s, 3),
                                     "thresholds": [cfg.near_dup_args, cfg.near_dup_result]},
                                    f"{len(occ)} near-identical calls to `{v.label(occ[0])}` "
                                    "returned near-identical results: {usd} wasted; reuse the "
                                    "first result."))


def analyze(G: nx.DiGraph[str], *, baseline: WorkflowBaseline | None, config: AnalyzerConfig,
            view: TraceView | None = None) -> list[Finding]:
    """All churn findings of one trace, each node's waste booked once."""
    v = view or TraceView(G)
    return book_once(G, find(v, baseline=baseline, config=config), attrs=v.A)


def find(v: TraceView, *, baseline: WorkflowBaseline | None,
         config: AnalyzerConfig) -> list[Finding]:
    """Churn findings before booking (:func:`analyzers.run.analyze_trace` books once)."""
    c = Calls(v, config)
    out: list[Finding] = []
    # each stream's call identities, in stream order: read once for _repeated and _cycles
    getkey = v.keys.__getitem__
    stream_keys = {kind: list(map(getkey, stream)) for kind, stream in c.streams.items()}
    repeated = {kind: _repeated(stream, stream_keys[kind])
                for kind, stream in c.streams.items()}
    claimed = _cycles(v, c, config, repeated, stream_keys, out)
    _repeats(v, c, config, claimed, repeated, out)
    flagged = claimed | {n for f in out for n in f.node_ids}
    _near_dups(v, c, config, flagged, out)
    out.extend(churn_flow.analyze(v, c, config))
    return out
