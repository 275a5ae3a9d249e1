"""Accuracy and dollars on the independent labelled set (issue 16 item 4; bench/RESULTS.md).

    python -m bench.independent [--seed 11] [--n 25] [--ab-every 4]
    python -m bench.independent --vendor-tie [--ab-every 1]   # the cross-vendor R2 case

Generates ``fixtures/independent/generate.py``'s set, ingests it through the real app
(``POST /api/v1/traces``) into a fresh SQLite store, runs ``POST /api/v1/analyze``, reads
``GET /api/v1/findings`` and matches findings to labels by trace id and node overlap:

- a finding is a true positive of its category when it overlaps a positive pattern of the
  same category; otherwise a false positive (``hard-neg`` when it touches a hard negative's
  nodes);
- recall: positive patterns with at least one matching finding of their category;
- dollar error per category: |booked − expected| / expected, booked being the dollars of every
  finding of the category (false positives included), expected the labels' own genai-prices
  counterfactuals; per code the same over the patterns labelled with that code;
- hard-negative FP rate: hard negatives of a category whose nodes any finding touches.
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from fixtures.independent.generate import generate, vendor_tie

CATEGORIES = ("churn", "bloat", "routing")
TARGETS = {"precision": 0.95, "recall": 0.90, "dollar_error": 0.05, "hn_fp_rate": 0.02}


def findings_for(traces: list[dict[str, Any]], db: Path) -> list[dict[str, Any]]:
    """Ingest ``traces`` into a fresh SQLite store at ``db`` through the app, analyse, and
    return every stored finding."""
    from fastapi.testclient import TestClient

    from tracestore.api.app import create_app
    from tracestore.config import Settings

    out: list[dict[str, Any]] = []
    settings = Settings(database_url=f"sqlite:///{db}", settle_seconds=0, ingest_workers=0)
    with TestClient(create_app(settings)) as client:
        for i in range(0, len(traces), 100):
            r = client.post("/api/v1/traces", json=traces[i:i + 100])
            assert r.status_code < 300 and not r.json()["rejected_traces"], r.text[:2000]
        r = client.post("/api/v1/analyze", json={})
        assert r.status_code == 200, r.text
        cursor: str | None = None
        while True:
            q = "/api/v1/findings?limit=500" + (f"&cursor={cursor}" if cursor else "")
            page = client.get(q).json()
            out += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return out


def score(labels: list[dict[str, Any]], found: list[dict[str, Any]]) -> dict[str, Any]:
    """Per category and per code: precision, recall, dollars and hard-negative FPs."""
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lab in labels:
        by_trace[lab["trace_id"]].append(lab)
    cat: dict[str, dict[str, float]] = {c: defaultdict(float) for c in CATEGORIES}
    code: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    hit: set[int] = set()  # positive patterns (by id) with a matching finding
    neg_hit: set[int] = set()
    misses: list[str] = []
    for f in found:
        c = cat[f["analyzer"]]
        c["found"] += 1
        c["booked_usd"] += f["wasted_cost_usd"]
        code[f["code"]]["found"] += 1
        code[f["code"]]["booked_usd"] += f["wasted_cost_usd"]
        nodes = set(f["node_ids"]) | set(f["evidence"].get("waste_by_node", {}))
        matched = False
        for lab in by_trace.get(f["trace_id"], []):
            if not nodes & set(lab["node_ids"]):
                continue
            if lab["negative"]:
                neg_hit.add(id(lab))
                misses.append(f"FP on hard negative {lab['pattern']}: {f['code']} "
                              f"{f['trace_id']} ${f['wasted_cost_usd']:.6f}")
            elif lab["category"] == f["analyzer"]:
                matched = True
                hit.add(id(lab))
                code[lab["code"]]["matched_usd"] += f["wasted_cost_usd"]
        if matched:
            c["tp"] += 1
            code[f["code"]]["tp"] += 1
        elif not any(id(x) in neg_hit for x in by_trace.get(f["trace_id"], [])):
            misses.append(f"FP {f['code']} {f['trace_id']} {f['node_ids'][:4]} "
                          f"${f['wasted_cost_usd']:.6f}")
    for lab in labels:
        c, k = cat[lab["category"]], code[lab["code"]]
        if lab["negative"]:
            c["negatives"] += 1
            c["neg_fp"] += id(lab) in neg_hit
            continue
        c["positives"] += 1
        c["expected_usd"] += lab["expected_usd"]
        k["positives"] += 1
        k["expected_usd"] += lab["expected_usd"]
        if id(lab) in hit:
            c["recalled"] += 1
            k["recalled"] += 1
        else:
            misses.append(f"missed {lab['pattern']} {lab['trace_id']} {lab['node_ids'][:4]}")
    return {"category": cat, "code": code, "misses": misses, "neg_hit": neg_hit}


def metrics(c: dict[str, float]) -> dict[str, float]:
    return {
        "precision": c["tp"] / c["found"] if c["found"] else 1.0,
        "recall": c["recalled"] / c["positives"] if c["positives"] else 1.0,
        "dollar_error": (abs(c["booked_usd"] - c["expected_usd"]) / c["expected_usd"]
                         if c["expected_usd"] else 0.0),
        "hn_fp_rate": c["neg_fp"] / c["negatives"] if c["negatives"] else 0.0,
    }


def report(s: dict[str, Any]) -> str:
    lines = ["| category | found | tp | precision | positives | recall | expected $ | booked $ "
             "| dollar error | hard neg | hn FP | hn FP rate |", "|" + "---|" * 12]
    for name in CATEGORIES:
        c, m = s["category"][name], metrics(s["category"][name])
        lines.append(
            f"| {name} | {c['found']:.0f} | {c['tp']:.0f} | {m['precision']:.3f} | "
            f"{c['positives']:.0f} | {m['recall']:.3f} | {c['expected_usd']:.6f} | "
            f"{c['booked_usd']:.6f} | {m['dollar_error']:.2%} | {c['negatives']:.0f} | "
            f"{c['neg_fp']:.0f} | {m['hn_fp_rate']:.1%} |")
    lines += ["", "| code | findings | tp | labelled | recalled | expected $ | booked $ (all) "
              "| booked $ on its labels |", "|" + "---|" * 8]
    for name, k in sorted(s["code"].items()):
        lines.append(f"| {name} | {k['found']:.0f} | {k['tp']:.0f} | {k['positives']:.0f} | "
                     f"{k['recalled']:.0f} | {k['expected_usd']:.6f} | {k['booked_usd']:.6f} | "
                     f"{k['matched_usd']:.6f} |")
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for lab in s["labels"]:
        if lab["negative"]:
            kinds[lab["pattern"]][0] += 1
            kinds[lab["pattern"]][1] += id(lab) in s["neg_hit"]
    lines += ["", "hard negatives (pattern: FP/n): " + ", ".join(
        f"{k} {fp}/{n}" for k, (n, fp) in sorted(kinds.items()))]
    return "\n".join(lines)


def run(seed: int = 11, n: int = 25, n_background: int = 40, ab_every: int = 4
        ) -> dict[str, Any]:
    traces, labels = generate(seed, n, n_background, ab_every)
    with tempfile.TemporaryDirectory() as d:
        found = findings_for(traces, Path(d) / "independent.db")
    s = score(labels, found)
    s["traces"], s["labels"] = len(traces), labels
    return s


def main(argv: list[str]) -> None:
    seed, n, ab_every, tie = 11, 25, 4, False
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--seed":
            seed = int(args.pop(0))
        elif a == "--n":
            n = int(args.pop(0))
        elif a == "--ab-every":
            ab_every = int(args.pop(0))
        elif a == "--vendor-tie":
            tie = True
    if tie:
        traces, labels = vendor_tie(ab_every=ab_every)
        with tempfile.TemporaryDirectory() as d:
            found = findings_for(traces, Path(d) / "tie.db")
        for f in found:
            lab = next(x for x in labels if x["trace_id"] == f["trace_id"])
            print(f"{f['code']} {f['trace_id']}: {f['evidence'].get('model')} -> "
                  f"{f['evidence'].get('alternative_model')} ${f['wasted_cost_usd']:.6f}, "
                  f"same-vendor counterfactual ${lab['expected_usd']:.6f}")
        return
    s = run(seed, n, ab_every=ab_every)
    neg = sum(lab["negative"] for lab in s["labels"])
    print(f"seed {seed}: {s['traces']} traces, {len(s['labels'])} patterns, "
          f"{neg} hard negatives ({neg / len(s['labels']):.0%})")
    print(report(s))
    print("targets:", TARGETS)
    for line in s["misses"][:60]:
        print(" ", line)


if __name__ == "__main__":
    main(sys.argv[1:])
