"""Detection per finding code, for ``bench/RESULTS.md`` (accuracy, not speed).

    python -m bench.detection labelled            # fixtures/labelled.py, seed 7
    python -m bench.detection demo STORE LABELS   # a demo store and its `--dump` labels.json

``labelled``: per code, traces where the code was injected and found (tp), found but not
injected (fp), injected but not found (fn), with the booked dollars; node-level precision
and recall per analyzer; hard-negative patterns whose trace got a finding on an unlabelled
node. ``demo``: per label of the demo generator (written separately from the analyzers),
positives whose nodes carry waste booked under the same code or under any code, and hard
negatives whose nodes carry any waste.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session


def labelled() -> None:
    from analyzers.run import AnalyzerConfig, analyze_trace, collect_samples, compute_baselines
    from fixtures.labelled import PRICES, generate

    data = generate(seed=7)
    baselines = compute_baselines(s for x in data for s in collect_samples(x.graph))
    cfg = AnalyzerConfig(price_table=PRICES)
    codes: dict[str, Counter[str]] = defaultdict(Counter)
    usd: dict[str, float] = defaultdict(float)
    nodes: dict[str, Counter[str]] = defaultdict(Counter)
    neg_n: Counter[str] = Counter()
    neg_fp: Counter[str] = Counter()
    for x in data:
        G = x.graph
        found = analyze_trace(G, baseline=baselines.get(G.graph["workflow"]), config=cfg)
        seen = {f.code for f in found}
        for f in found:
            usd[f.code] += f.wasted_cost_usd
        for code in seen | set(x.positives):
            codes[code]["tp" if code in seen and code in x.positives
                        else "fp" if code in seen else "fn"] += 1
        booked = {n: f.analyzer for f in found for n in f.evidence["waste_by_node"]}
        for n, a in booked.items():
            nodes[a]["tp" if x.labels.get(n, ("",))[0] == a else "fp"] += 1
        for n, (a, _) in x.labels.items():
            nodes[a]["fn"] += booked.get(n) != a
        for neg in x.negatives:
            neg_n[neg] += 1
            neg_fp[neg] += any(n not in x.labels for n in booked)
    print(f"{'code':34s} {'tp':>4s} {'fp':>4s} {'fn':>4s} {'prec':>6s} {'recall':>6s} {'$':>8s}")
    for code in sorted(codes):
        k = codes[code]
        print(f"{code:34s} {k['tp']:4d} {k['fp']:4d} {k['fn']:4d} "
              f"{k['tp'] / max(1, k['tp'] + k['fp']):6.3f} "
              f"{k['tp'] / max(1, k['tp'] + k['fn']):6.3f} {usd[code]:8.4f}")
    for a, k in sorted(nodes.items()):
        print(f"node-level {a:8s} tp {k['tp']} fp {k['fp']} fn {k['fn']}")
    print("hard negatives flagged:", {k: f"{neg_fp[k]}/{neg_n[k]}" for k in sorted(neg_n)})


def demo(url: str, labels_path: str) -> None:
    from tracestore.store.engine import make_engine
    from tracestore.store.tables import FINDING_T

    with open(labels_path) as fh:
        labels: list[dict[str, Any]] = json.load(fh)["labels"]
    booked: dict[str, dict[str, str]] = defaultdict(dict)
    engine = make_engine(url)
    with Session(engine) as s:
        for r in s.execute(select(FINDING_T.c.trace_id, FINDING_T.c.code, FINDING_T.c.evidence)):
            ev = r.evidence if isinstance(r.evidence, dict) else json.loads(r.evidence)
            for n in ev.get("waste_by_node", {}):
                booked[r.trace_id][n] = r.code
    engine.dispose()
    c: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for lab in labels:
        b = booked.get(lab["trace_id"], {})
        found = {b[n] for n in lab["node_ids"] if n in b}
        k = c[(lab["code"], f"negative: {lab['note']}" if lab["negative"] else "positive")]
        k["n"] += 1
        k["same"] += lab["code"] in found
        k["any"] += bool(found)
    for (code, kind), k in sorted(c.items()):
        if kind == "positive":
            print(f"{code:34s} positives {k['n']:4d}: as this code {k['same']:4d}, "
                  f"any code {k['any']:4d}")
        else:
            print(f"{code:34s} {kind} {k['n']:4d}: flagged {k['any']:4d}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["labelled"]:
        labelled()
    elif sys.argv[1:2] == ["demo"] and len(sys.argv) == 4:
        demo(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
