"""Replay of span attribute sets captured by other projects (fixtures/otlp_corpus/README.md)
through the OTLP mapping and pricing; each case's expectations come from the source project's
own test or spec example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tracestore.ingest.otlp import spans_to_traces
from tracestore.ingest.otlp.decode import Span
from tracestore.ingest.write import node_row
from tracestore.pricing.pricer import Pricer
from tracestore.schemas import NodeIn, TraceIn

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "otlp_corpus"
TRACE = "2cce18f7e8cd065a0b4e634eef728391"
T0 = 1_746_026_930.0  # 2025-04-30T15:28:50Z, the Langfuse cases' start


def _cases() -> list[Any]:
    out = []
    for path in sorted(CORPUS.glob("*.json")):
        doc = json.loads(path.read_text())
        src = doc["source"]
        assert src["repo"] and src["path"] and len(src["commit"]) == 40, path
        out += [pytest.param(c, id=f"{path.stem}:{i}") for i, c in enumerate(doc["cases"])]
    return out


def _span(s: dict[str, Any], i: int) -> Span:
    events = tuple((name, T0, attrs) for name, attrs in s.get("events", ()))
    return Span(TRACE, s.get("span_id", f"{i + 1:016x}"), None, s["name"], 1, T0 + i, T0 + i + 1,
                dict(s["attributes"]), events=events, scope=s.get("scope", ""))


def _check(node: NodeIn, want: dict[str, Any]) -> None:
    row = node_row(1, TRACE, node, 100_000)
    Pricer().price_rows([row])
    for key, value in want.items():
        if key == "priced":
            assert (row["cost_usd"] is not None) == value, (node.model, row["cost_usd"])
        elif key == "prompt_contains":
            assert node.prompt is not None and value in node.prompt, node.prompt
        elif key.startswith("trace."):
            continue
        else:
            assert getattr(node, key) == value, (key, getattr(node, key), value)


def _trace(spans: list[dict[str, Any]]) -> TraceIn:
    traces, rejected = spans_to_traces([_span(s, i) for i, s in enumerate(spans)])
    assert rejected == [] and len(traces) == 1
    return traces[0]


@pytest.mark.parametrize("case", _cases())
def test_corpus_case(case: dict[str, Any]) -> None:
    if "spans" in case:
        t = _trace(case["spans"])
        nodes = {n.node_id: n for n in t.nodes}
        for node_id, want in case["expect_nodes"].items():
            _check(nodes[node_id], want)
        assert sorted([e.src, e.dst, e.kind] for e in t.edges) == sorted(case["expect_edges"])
        return
    span = case["span"]
    if "add_for_replay" in case:  # fixtures/otlp_corpus/README.md: usage-only spans
        span = {**span, "attributes": {**span["attributes"], **case["add_for_replay"]}}
    t = _trace([span])
    assert len(t.nodes) == 1
    _check(t.nodes[0], case["expect"])
    for key, value in case["expect"].items():
        if key.startswith("trace."):
            assert getattr(t, key.removeprefix("trace.")) == value, key


def test_the_corpus_is_not_empty_and_every_source_is_listed() -> None:
    readme = (CORPUS / "README.md").read_text()
    files = sorted(CORPUS.glob("*.json"))
    assert len(files) >= 2 and len(_cases()) >= 15
    for path in files:
        src = json.loads(path.read_text())["source"]
        assert path.name in readme and src["commit"] in readme and src["path"] in readme
