"""Context bloat: tokens a call paid for and did not need.

Heuristics and sources (docs/methods.md, "Context bloat"):

- ``bloat.over_retrieval`` (B1) and ``bloat.unused_context`` (B2): whether a retrieved
  document was used is decided by the cascade of docs/methods.md — explicit ``uses`` edges naming
  the document, its id cited in the answer, or lexical containment (share of the answer's word
  3-grams found in the document, RAGBench-style utilisation) ≥ 0.05. k ≥ 10 with under 20% used
  is over-retrieval (confidence 0.85 with explicit uses, 0.7 lexical only); otherwise unused
  documents that are ≥ 30% of the prompt and ≥ 2,000 tokens are unused context (0.8 / 0.65).
  Lexical use misses paraphrase, so lexical-only findings carry the lower confidence.
- ``bloat.history_growth`` (B3): one conversation's input tokens never drop (no compaction)
  over ≥ 8 turns and grow ≥ 3x. Tokens beyond the first prompt plus the last 5 turns' growth
  are stale (SWE-agent's ``LastNObservations`` keeps 5; AgentDiet's "expired" output).
  Confidence 0.7.
- ``bloat.oversized_prompt`` (B5): robust z-score ``(x − median)/(1.4826·MAD)`` > 3.5 against
  the same step's corpus norm (≥ 20 samples) and x > 1.5 × median; the tokens above the median
  are waste. A step that is long on every run has a long median and never fires. Conf. 0.8.
- ``bloat.cache_miss`` (B6): a call sharing a ≥ 1,024-token prompt prefix with the previous
  call to the same model within the 5-minute cache window, with no cached tokens. Waste: the
  prefix at (input − cache-read) rate, less the cache-write premium on a chain's first miss.
  Confidence 0.75.

Dollars (docs/analysis.md): unneeded tokens priced at the consuming call's uncached input rate.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

import networkx as nx

from analyzers.baseline import WorkflowBaseline, own_step_key
from analyzers.callkeys import shingle_set
from analyzers.common import book_once, input_rate, make_finding, rates_for
from analyzers.config import AnalyzerConfig
from analyzers.findings import Finding
from analyzers.view import TraceView

__all__ = ["analyze", "find"]

MAD_SCALE = 1.4826  # MAD → standard deviation under normality (modified z-score)


def _consumers(v: TraceView, r: str) -> tuple[list[str], set[str], bool]:
    """LLM calls consuming retrieval ``r``, document ids they name, and whether any
    ``uses`` edge was explicit."""
    cons: list[str] = []
    named: set[str] = set()
    explicit = False
    A = v.A
    for w, kinds in v.out_kinds.get(r, ()):
        if "uses" in kinds and A[w].get("kind") == "llm":
            cons.append(w)
            d = v.G.succ[r][w]  # the edge's data
            named.update(d.get("doc_ids") or ())
            explicit = explicit or not d.get("inferred")
    if not cons:
        parent = A[r].get("parent_id")
        for n in v.order[v.pos[r] + 1:]:
            a = A[n]
            if a.get("kind") == "llm" and a.get("parent_id") in (parent, r):
                cons.append(n)
                break
    if len(cons) > 1:
        cons.sort(key=v.pos.__getitem__)
    return cons, named, explicit


def _doc_tokens(d: dict[str, Any], cpt: float) -> float | None:
    if d.get("tokens") is not None:
        return float(d["tokens"])
    if isinstance(d.get("content"), str):
        return len(d["content"]) / cpt
    return None


def _rate(a: dict[str, Any], baseline: WorkflowBaseline | None,
          cfg: AnalyzerConfig) -> tuple[float, dict[str, object]]:
    """The consuming call's uncached input rate (:func:`analyzers.common.input_rate`) and the
    evidence that lets a person recompute it: USD per million tokens and where it came from
    (the price book's table, rates fitted on the workflow's corpus, or the call's own cost
    with output at 4x input)."""
    rate = input_rate(a, baseline=baseline, config=cfg)
    if rates_for(a.get("model"), baseline=None, config=cfg) is not None:
        source = "price_book"
    elif rates_for(a.get("model"), baseline=baseline, config=cfg) is not None:
        source = "corpus_fit"
    else:
        source = "call_cost_output_4x_input"
    return rate, {"input_rate_per_mtok": rate * 1e6, "rate_source": source}


def _doc_hits(docs: list[dict[str, Any]], texts: list[str], named: set[str],
              cfg: AnalyzerConfig) -> list[bool]:
    """Whether each document was used: explicitly named by a ``uses`` edge, its id cited in an
    answer, or the answer's word 3-grams contained in its content (the docs/methods.md cascade)."""
    ids = [str(d.get("id")) for d in docs]
    # explicitly used, or the id cited in an answer (most documents are settled here)
    if not texts:  # explicit uses only (settled in C)
        hits = list(map(named.__contains__, ids))
    elif len(texts) == 1:
        t0 = texts[0]
        hits = [did in named or did in t0 for did in ids]
    else:
        hits = [did in named or any(did in t for t in texts) for did in ids]
    if texts and not all(hits):
        # lexical containment of the answer's word 3-grams in the document's content
        ans: list[frozenset[str]] | None = None
        for i, d in enumerate(docs):
            if not hits[i] and isinstance(d.get("content"), str):
                if ans is None:
                    ans = [shingle_set(t) for t in texts]
                ds = shingle_set(d["content"])
                hits[i] = any(len(s & ds) / max(len(s), 1) >= cfg.containment for s in ans)
    return hits


def _unused_tokens(docs: list[dict[str, Any]], unused: list[int],
                   cfg: AnalyzerConfig) -> int | None:
    """Tokens of the unused documents (from their content's length where not given), or
    None when a size is unknown."""
    given = [docs[i].get("tokens") for i in unused]
    if None in given:
        sizes = [_doc_tokens(docs[i], cfg.chars_per_token) for i in unused]
        if None in sizes:
            return None
    else:
        sizes = [float(t) for t in given if t is not None]
    return round(sum(filter(None, sizes)))  # no None here; zeros add nothing


def _retrieval_code(k: int, used: list[int], unused: list[int], tokens: int,
                    consumer_input: int, explicit: bool, cfg: AnalyzerConfig
                    ) -> tuple[str, float, list[float], str] | None:
    """(code, confidence, thresholds, message) of a retrieval with unused documents."""
    if k >= cfg.over_retrieval_min_k and len(used) / k < cfg.over_retrieval_used_share:
        return ("bloat.over_retrieval", 0.85 if explicit else 0.7,
                [cfg.over_retrieval_min_k, cfg.over_retrieval_used_share],
                f"Retrieved {k} documents and used {len(used)}: {{usd}} of prompt tokens "
                f"wasted; retrieve top {max(used) + 1 if used else 1} instead.")
    if tokens >= cfg.unused_context_min_tokens and \
            tokens >= cfg.unused_context_share * consumer_input:
        return ("bloat.unused_context", 0.8 if explicit else 0.65,
                [cfg.unused_context_share, cfg.unused_context_min_tokens],
                f"{len(unused)} retrieved documents ({tokens} tokens) were never used: "
                "{usd} wasted; filter or rerank before the call.")
    return None


def _retrieval(v: TraceView, cfg: AnalyzerConfig, baseline: WorkflowBaseline | None,
               out: list[Finding]) -> None:
    G, A = v.G, v.A
    rs = v.by_kind.get("retrieval", []) + v.by_kind.get("rerank", [])
    if len(rs) > 1:
        rs.sort(key=v.pos.__getitem__)
    for r in rs:
        docs = A[r].get("documents") or []
        if not docs:
            continue
        cons, named, explicit = _consumers(v, r)
        if not cons:
            continue
        texts = [t for t in (A[c].get("output") for c in cons) if isinstance(t, str) and t]
        if not explicit and not texts:
            continue  # no evidence either way
        hits = _doc_hits(docs, texts, named, cfg)
        if all(hits):
            continue
        used = list(itertools.compress(range(len(hits)), hits))
        unused = [i for i, hit in enumerate(hits) if not hit]
        tokens = _unused_tokens(docs, unused, cfg)
        c = cons[0]
        ca = A[c]
        rule = None if tokens is None else _retrieval_code(
            len(docs), used, unused, tokens, int(ca.get("input_tokens") or 0), explicit, cfg)
        if rule is None or tokens is None:
            continue
        code, conf, thresholds, msg = rule
        rate, rate_ev = _rate(ca, baseline, cfg)
        ev = {"retrieved": len(docs), "used": len(used), "used_ranks": [i + 1 for i in used],
              "unused_tokens": tokens, "unused_doc_ids": [str(docs[i].get("id")) for i in unused],
              "consumer": c, "explicit_uses": explicit,
              "consumer_input_tokens": int(ca.get("input_tokens") or 0), **rate_ev,
              "counterfactual": "the consumer's prompt without the unused documents",
              "thresholds": thresholds}
        out.append(make_finding(G, code, [r, c], {c: tokens * rate}, tokens=tokens,
                                confidence=conf, evidence=ev, message=msg, attrs=A))


def _history(v: TraceView, cfg: AnalyzerConfig, baseline: WorkflowBaseline | None,
             out: list[Finding]) -> None:
    G, A, llms = v.G, v.A, v.by_kind["llm"]
    if len(llms) < cfg.history_min_turns:
        return
    parents = [A[n].get("parent_id") for n in llms]
    convs: dict[Any, list[str]]
    if parents.count(parents[0]) == len(parents):
        convs = {parents[0]: llms}  # one conversation (settled in C)
    else:
        convs = defaultdict(list)
        for n, p in zip(llms, parents, strict=True):
            convs[p].append(n)
    for turns in convs.values():
        if len(turns) < cfg.history_min_turns:
            continue
        # the ends first: most conversations fail here without reading every turn
        x0 = int(A[turns[0]].get("input_tokens") or 0)
        if x0 <= 0 or int(A[turns[-1]].get("input_tokens") or 0) < \
                cfg.history_growth_ratio * x0:
            continue
        x = [int(A[n].get("input_tokens") or 0) for n in turns]
        if any(b < a for a, b in itertools.pairwise(x)):
            continue
        K = cfg.history_keep_turns
        waste, tokens = {}, 0
        stale_by_turn: dict[str, int] = {}
        rates: dict[str, float] = {}
        source = ""
        for i in range(K, len(turns)):
            stale = x[i - K] - x[0]
            if stale > 0:
                rate, rate_ev = _rate(v.A[turns[i]], baseline, cfg)
                waste[turns[i]] = stale * rate
                stale_by_turn[turns[i]] = stale
                rates[turns[i]] = rate * 1e6
                source = str(rate_ev["rate_source"])
                tokens += stale
        if not waste:
            continue
        out.append(make_finding(
            G, "bloat.history_growth", turns, waste, attrs=v.A, tokens=tokens, confidence=0.7,
            evidence={"turns": len(turns), "first_input_tokens": x[0],
                      "last_input_tokens": x[-1], "stale_tokens": tokens, "keep_turns": K,
                      "stale_tokens_by_turn": stale_by_turn,
                      "input_rate_per_mtok_by_turn": rates, "rate_source": source,
                      "counterfactual": f"each turn's prompt without history older than the "
                      f"last {K} turns' growth (the first prompt kept)",
                      "thresholds": [cfg.history_min_turns, cfg.history_growth_ratio]},
            message=f"Input grew from {x[0]} to {x[-1]} tokens over {len(turns)} turns with no "
            f"compaction: {{usd}} on stale history; keep the last {K} turns or summarise.",
        ))


def _oversize_candidates(v: TraceView, cfg: AnalyzerConfig, baseline: WorkflowBaseline
                         ) -> tuple[list[str], Mapping[str, str]]:
    """LLM calls whose prompt could be oversized for any step, with their step keys."""
    least = min((s.median_input for s in baseline.steps.values()
                 if s.n >= cfg.oversize_min_samples), default=None)
    if least is None:
        return [], {}  # no step with enough samples for a norm
    A, llms = v.A, v.by_kind["llm"]
    # A prompt at most oversize_ratio × the least step median is not oversized whatever its
    # step (a rule that fires needs x > ratio × its step's median ≥ ratio × least): only the
    # calls above that are candidates, and without any the step keys are not needed.
    bound = cfg.oversize_ratio * least
    given = [A[n].get("input_tokens", 0) for n in llms]
    if all(map(isinstance, given, itertools.repeat(int))):
        if max(given) <= bound:
            return [], {}
        cands = [n for n, x in zip(llms, given, strict=True) if x > bound]
    else:
        cands = [n for n in llms if int(A[n].get("input_tokens") or 0) > bound]
    # A candidate's step key usually does not depend on its siblings (an explicit step or a
    # specific span name, :func:`analyzers.baseline.own_step_key`); only when one does are the
    # step keys of the whole trace computed.
    own = [own_step_key(A[n]) for n in cands]
    known = [k for k in own if k is not None]
    keys = dict(zip(cands, known, strict=True)) if len(known) == len(own) else v.steps
    return cands, keys


def _explained(v: TraceView, out: list[Finding], baseline: WorkflowBaseline | None,
               cfg: AnalyzerConfig) -> dict[str, int]:
    """Prompt tokens other rules already booked (unused documents, stale history), by node:
    the oversized rule runs on what is left of the prompt."""
    explained: dict[str, int] = defaultdict(int)
    for f in out:
        if f.code != "bloat.cache_miss":
            for m, usd in f.evidence["waste_by_node"].items():
                rate = input_rate(v.A[m], baseline=baseline, config=cfg)
                explained[m] += round(usd / rate) if rate > 0 else 0
    return explained


def _oversized(v: TraceView, cfg: AnalyzerConfig, baseline: WorkflowBaseline | None,
               out: list[Finding]) -> None:
    if baseline is None or not baseline.steps or not v.by_kind.get("llm"):
        return
    cands, keys = _oversize_candidates(v, cfg, baseline)
    G, A = v.G, v.A
    steps = baseline.steps
    explained: dict[str, int] | None = None
    # turns of a growing conversation: the stale-history counterfactual (history_growth) is
    # the more specific one, so the step median does not claim their tokens as well
    growing = {m for f in out if f.code == "bloat.history_growth" for m in f.node_ids}
    for n in cands:
        if n in growing:
            continue
        a = A[n]
        norm = steps.get(keys[n])
        if norm is None or norm.n < cfg.oversize_min_samples:
            continue
        x = int(a.get("input_tokens") or 0)
        med = norm.median_input
        if x <= cfg.oversize_ratio * med:
            continue  # fails before other rules' tokens are taken off (they only lower x)
        if explained is None:
            explained = _explained(v, out, baseline, cfg)
        x -= explained.get(n, 0)
        z = (x - med) / (MAD_SCALE * norm.mad_input) if norm.mad_input > 0 else (
            float("inf") if x > med else 0.0)
        if z <= cfg.oversize_z or x <= cfg.oversize_ratio * med:
            continue
        extra = round(x - med)
        rate, rate_ev = _rate(a, baseline, cfg)
        out.append(make_finding(
            G, "bloat.oversized_prompt", [n], {n: extra * rate}, attrs=v.A, tokens=extra,
            confidence=0.8,
            evidence={"step": keys[n], "input_tokens": x + explained.get(n, 0),
                      "tokens_above_median": extra, **rate_ev,
                      "counterfactual": "the prompt cut to the step's median size",
                      "tokens_booked_by_other_rules": explained.get(n, 0), "step_median": med,
                      "step_mad": norm.mad_input, "samples": norm.n,
                      "robust_z": round(z, 2) if z != float("inf") else "inf",
                      "thresholds": [cfg.oversize_z, cfg.oversize_ratio]},
            message=f"The prompt of step `{keys[n]}` had {x} input tokens"
            + (f" besides {explained[n]} already booked as unused context or stale history"
               if explained.get(n) else "")
            + f" against a median of {med:.0f}: {{usd}} wasted; trim what this run added.",
        ))


def _common_prefix(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # binary search on slice equality (C-speed comparisons)
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _cache_pairs(v: TraceView, cfg: AnalyzerConfig) -> Iterator[tuple[str, str, int]]:
    """(previous call, call, shared prefix tokens) of calls to one model within the cache
    window that share a cacheable prompt prefix and read nothing from the cache."""
    A = v.A
    llms = v.by_kind.get("llm", ())
    floor = cfg.cache_min_prefix_tokens * cfg.chars_per_token
    if len(llms) < 2:
        return
    for b in llms[1:]:
        p = A[b].get("prompt")
        if isinstance(p, str) and len(p) >= floor:
            break
    else:
        return  # no later call with a prompt long enough to share a cacheable prefix
    last: dict[str, str] = {}
    for b in llms:
        bb = A[b]
        model = bb.get("model")
        if not model or not isinstance(bb.get("prompt"), str):
            continue
        a = last.get(model)
        last[model] = b
        if a is None or int(bb.get("cache_read_tokens") or 0) > 0 or len(bb["prompt"]) < floor:
            continue
        aa = A[a]
        t_a, t_b = aa.get("end") or aa.get("start"), bb.get("start")
        if t_a is None or t_b is None or t_b - t_a > cfg.cache_ttl_seconds:
            continue
        chars = _common_prefix(aa["prompt"], bb["prompt"])
        # text-length estimate, capped by the billed input (prompt text may be a part of it)
        prefix = int(min(int(bb.get("input_tokens") or 0), chars / cfg.chars_per_token))
        if prefix >= cfg.cache_min_prefix_tokens:
            yield a, b, prefix


def _cache(v: TraceView, cfg: AnalyzerConfig, baseline: WorkflowBaseline | None,
           out: list[Finding]) -> None:
    A = v.A
    # tokens a history_growth finding already prices as stale (not to be sent at all, the
    # more specific counterfactual): the cache rule prices only the rest of the prefix
    stale: dict[str, int] = {}
    for f in out:
        if f.code == "bloat.history_growth":
            stale.update(f.evidence["stale_tokens_by_turn"])
    missed: set[str] = set()
    for a, b, shared in _cache_pairs(v, cfg):
        model = A[b].get("model")
        prefix = shared - stale.get(b, 0)
        first = a not in missed
        missed.add(b)
        if prefix < cfg.cache_min_prefix_tokens:
            continue
        r = rates_for(model, baseline=baseline, config=cfg)
        rin = input_rate(A[b], baseline=baseline, config=cfg)
        rcr = r.cache_read if r is not None and r.cache_read is not None else \
            rin * cfg.cache_read_multiplier
        premium = 0.0
        if first and r is not None and r.cache_write is not None:
            premium = prefix * max(0.0, r.cache_write - rin)
        usd = prefix * (rin - rcr) - premium
        if usd <= 0:
            continue
        gap = round(A[b]["start"] - (A[a].get("end") or A[a].get("start")), 3)
        out.append(make_finding(
            v.G, "bloat.cache_miss", [a, b], {b: usd}, attrs=A, tokens=prefix, confidence=0.75,
            evidence={"shared_prefix_tokens": shared, "stale_history_tokens": shared - prefix,
                      "priced_prefix_tokens": prefix, "gap_seconds": gap,
                      "cache_read_tokens": 0, "input_rate_per_mtok": rin * 1e6,
                      "cache_read_rate_per_mtok": rcr * 1e6, "cache_write_premium_usd": premium,
                      "counterfactual": "the shared prefix read from the cache",
                      "thresholds": [cfg.cache_min_prefix_tokens, cfg.cache_ttl_seconds]},
            message=f"{prefix} prompt tokens shared with the previous `{model}` call were "
            "billed uncached: {usd} wasted; put the static part first and enable caching.",
        ))


def analyze(G: nx.DiGraph[str], *, baseline: WorkflowBaseline | None, config: AnalyzerConfig,
            view: TraceView | None = None) -> list[Finding]:
    """All bloat findings of one trace, each node's waste booked once."""
    v = view or TraceView(G)
    return book_once(G, find(v, baseline=baseline, config=config), attrs=v.A)


def find(v: TraceView, *, baseline: WorkflowBaseline | None,
         config: AnalyzerConfig) -> list[Finding]:
    """Bloat findings before booking (:func:`analyzers.run.analyze_trace` books once)."""
    out: list[Finding] = []
    _retrieval(v, config, baseline, out)
    _history(v, config, baseline, out)
    _cache(v, config, baseline, out)
    _oversized(v, config, baseline, out)
    return out
