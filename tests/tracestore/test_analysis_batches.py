"""The analysis runtime's fast paths against their plain counterparts, on every backend:
graphs from the batched raw-cursor loader against graphs built trace by trace from
SQLAlchemy rows, and the summaries a run writes (from the findings it just stored, in
memory) against summaries recomputed from the store."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tracestore.analysis import Window, default_suite
from tracestore.analysis.run import analyze_window, compute_corpus_baselines
from tracestore.config import Settings
from tracestore.demo.run import run_demo
from tracestore.reports.summaries import summarize_traces, summary_row
from tracestore.store.engine import make_engine
from tracestore.store.graph import build_trace_graph
from tracestore.store.jsontext import json_text
from tracestore.store.load import NODE_BOOKKEEPING, iter_trace_graphs, select_trace_ids
from tracestore.store.read import load_trace_rows
from tracestore.store.tables import TraceSummary

NOW = 1_800_000_000.0


@pytest.fixture
def demo_url(db_url: str) -> str:
    """A store with ~150 seeded demo traces (retries, reviews, documents, late outcomes)."""
    run_demo(Settings(database_url=db_url), seed=11, n=150, echo=lambda _: None)
    return db_url


def test_batched_graphs_equal_graphs_built_trace_by_trace(demo_url: str) -> None:
    engine = make_engine(demo_url)
    try:
        with Session(engine) as s:
            ids = select_trace_ids(s, project_id=1, window=Window())
            assert len(ids) >= 150
            batched = list(iter_trace_graphs(s, project_id=1, trace_ids=ids, batch_size=40))
            assert [lt.trace_id for lt in batched] == ids
            for lt in batched:
                trace, nodes, edges = load_trace_rows(s, project_id=1, trace_id=lt.trace_id)
                ref = build_trace_graph(trace, nodes, edges)
                G = lt.graph
                assert lt.user_id == trace["user_id"]
                assert lt.updated_at == trace["updated_at"]
                assert {k: v for k, v in G.graph.items() if k != "outcome_status"} == ref.graph
                # The batched loader leaves None values out (dict.get reads them the same)
                # and the bookkeeping columns outside the graph contract (see below).
                assert list(G.nodes) == list(ref.nodes)
                for v in G.nodes:
                    want = {k: x for k, x in ref.nodes[v].items()
                            if x is not None and k not in NODE_BOOKKEEPING}
                    assert list(G.nodes[v].items()) == list(want.items())
                    assert [type(x) for x in G.nodes[v].values()] == \
                        [type(x) for x in want.values()]
                assert list(G.edges(data=True)) == list(ref.edges(data=True))
                assert {v: list(G.pred[v]) for v in G} == {v: list(ref.pred[v]) for v in ref}
    finally:
        engine.dispose()


# Text that JSON must escape or could mistake for something else, and integers at the bounds
# the schemas allow: the SQLite loader reads text and integer columns packed in one JSON
# array per row (tracestore.store.load._packable) and must give back the same values.
_AWKWARD = ["", "null", "[1, 2]", "12", "1e5", 'quo"te \\ back\\slash', "tab\tnl\ncr\r",
            "ctl \x01\x1f \x7f", "é ü 中文 \u2028 \u2029 😀", " lead and trail "]


def test_loader_reads_awkward_values_as_stored(db_url: str) -> None:
    from tracestore.ingest.pipeline import Writer, project_id_for
    from tracestore.store.engine import create_schema

    engine = make_engine(db_url)
    try:
        create_schema(engine)
        pid = project_id_for(engine, "default")
        t0 = 1_794_819_600.0  # stored times lie in 2000-2099 (docs/limits.md)
        nodes: list[dict[str, Any]] = [{"node_id": "root", "kind": "agent", "name": "root",
                                        "start": t0 + 1.0}]
        for i, txt in enumerate(_AWKWARD):
            nodes.append({
                "node_id": f"n{i} {txt}", "parent_id": "root", "kind": "llm", "name": txt,
                "step": txt, "model": txt or "m", "provider": "openai", "prompt": txt,
                "output": txt, "finish_reason": txt, "input_tokens": 10**8 - i,
                "output_tokens": i, "reasoning_tokens": 0, "start": t0 + 2.0 + i / 3,
                "end": t0 + 2.1 + i / 2, "attributes": {"k": txt},
            })
            nodes.append({"node_id": f"t{i}", "parent_id": "root", "kind": "tool",
                          "name": "tool", "tool_name": txt, "args": {"q": txt},
                          "result": txt, "tool_call_id": txt, "start": t0 + 3.0 + i / 9})
        trace = {"trace_id": "awkward", "workflow": "w", "nodes": nodes}
        Writer(engine, Settings(database_url=db_url)).ingest_native(pid, [trace]) \
            .raise_if_rejected()
        with Session(engine) as s:
            (lt,) = iter_trace_graphs(s, project_id=pid, trace_ids=["awkward"])
            trace_row, node_rows, edge_rows = load_trace_rows(s, project_id=pid,
                                                              trace_id="awkward")
        ref = build_trace_graph(trace_row, node_rows, edge_rows)
        assert list(lt.graph.nodes) == list(ref.nodes)
        for v in ref.nodes:
            want = {k: x for k, x in ref.nodes[v].items()
                    if x is not None and k not in NODE_BOOKKEEPING}
            got = lt.graph.nodes[v]
            assert list(got.items()) == list(want.items())
            assert [type(x) for x in got.values()] == [type(x) for x in want.values()]
        assert {lt.graph.nodes[f"n{i} {t}"]["prompt"] for i, t in enumerate(_AWKWARD)} \
            == set(_AWKWARD)
    finally:
        engine.dispose()


def test_bookkeeping_columns_change_no_finding_sample_or_summary(demo_url: str) -> None:
    """The batched loader leaves :data:`NODE_BOOKKEEPING` out of the graphs: with every one
    of those columns set (and varied) on the stored nodes, the analyzers' samples and
    findings and the summaries from the loader's graphs equal those from full-row graphs."""
    engine = make_engine(demo_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "UPDATE nodes SET source_kind = 'test:' || kind, price_source = 'book:' || name,"
                " reported_cost_usd = COALESCE(cost_usd, 0) * 2 + LENGTH(node_id),"
                " cost_mismatch = (LENGTH(node_id) % 2 = 0)"))
        suite = default_suite()
        baselines, priced = compute_corpus_baselines(engine, project_id=1, window=Window(),
                                                     suite=suite)
        with Session(engine) as s:
            ids = select_trace_ids(s, project_id=1, window=Window())
            loaded = list(iter_trace_graphs(s, project_id=1, trace_ids=ids))
            findings = 0
            for lt in loaded:
                trace, nodes, edges = load_trace_rows(s, project_id=1, trace_id=lt.trace_id)
                assert {n[k] is not None for n in nodes for k in NODE_BOOKKEEPING} == {True}
                ref = build_trace_graph(trace, nodes, edges)
                if "outcome_status" in lt.graph.graph:
                    ref.graph["outcome_status"] = lt.graph.graph["outcome_status"]
                assert suite.collect_samples(lt.graph) == suite.collect_samples(ref)
                got = priced.analyze(lt.graph, baselines)
                assert got == priced.analyze(ref, baselines)
                findings += len(got)
                trow = {**ref.graph, "user_id": trace["user_id"]}
                assert summary_row(1, lt.graph, trow, got, NOW) == \
                    summary_row(1, ref, trow, got, NOW)
            assert findings > 0
    finally:
        engine.dispose()


def _summaries(url: str) -> dict[str, dict[str, Any]]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            rows = s.execute(select(TraceSummary)).scalars().all()
            return {r.trace_id: {k: v for k, v in r.model_dump().items()
                                 if k != "summarized_at"} for r in rows}
    finally:
        engine.dispose()


def test_summaries_of_a_run_equal_summaries_recomputed_from_the_store(demo_url: str) -> None:
    engine = make_engine(demo_url)
    try:
        counts = analyze_window(engine, project_id=1, window=Window(), suite=default_suite(),
                                baseline_days=28, now=NOW)
        assert counts.traces >= 150 and counts.findings > 0
        written = _summaries(demo_url)
        assert len(written) == counts.traces
        assert sum(r["waste_usd"] > 0 for r in written.values()) > 0
        assert sum(r["task_attempts"] > 1 for r in written.values()) > 0
        # Re-read the stored findings and graphs, as the API's summary refresh does.
        with Session(engine) as s, s.begin():
            ids = select_trace_ids(s, project_id=1, window=Window())
            assert summarize_traces(s, project_id=1, trace_ids=ids, now=NOW) == counts.traces
    finally:
        engine.dispose()
    assert _summaries(demo_url) == written


@pytest.mark.parametrize(("value", "want"), [
    ({"waste_by_node": {"a": 0.1, "b": 1e-300}, "n": [1, 2.5, "x", True]}, None),
    ([], None), ({}, None), (None, None), ("text", None), (2**70, None),
    ({"nested": {"v": None}}, None), ({1: "int key", "big": 2**64}, {"1": "int key", "big": 2**64}),
    ({"ratio": math.nan}, {"ratio": None}), ([math.inf, -math.inf], [None, None]),
    ({1: [math.nan, 2**70]}, {"1": [None, 2**70]}),
])
def test_json_text_writes_values_with_non_finite_floats_as_null(value: Any, want: Any) -> None:
    """One encoder for every JSON column (tracestore.store.jsontext): the values read back
    are the values written, except NaN and +-inf, which are stored as null on every path
    (orjson's and the stdlib fallback's)."""
    got = json.loads(json_text(value))
    assert got == (value if want is None else want)


def test_graph_equals_one_built_by_add_node_and_add_edge() -> None:
    """build_trace_graph merges edges (kinds, inferred, document ids) before handing them to
    networkx: the graph equals one made by add_node/add_edge calls in the same order, down
    to each node's successor and predecessor order."""
    import networkx as nx

    from tracestore.store.graph import build_trace_graph

    trace = {"trace_id": "t", "workflow": "w", "cost_usd": 0.5}
    nodes: list[dict[str, Any]] = [{"node_id": "r", "kind": "retrieval", "start": 1.0,
              "documents": [{"id": "d1"}, {"id": "d2"}]},
             {"node_id": "l", "kind": "llm", "parent_id": "r", "start": 2.0, "uses": ["d2"]},
             {"node_id": "x", "kind": "tool", "parent_id": "l", "retry_of": "l"},
             {"node_id": "y", "kind": "tool", "parent_id": "r", "start": 0.5}]
    edges = [{"src": "r", "dst": "x", "kind": "link", "inferred": True},
             {"src": "y", "dst": "x", "kind": "link", "inferred": False}]
    G = build_trace_graph(trace, [dict(n) for n in nodes], edges)
    want: nx.DiGraph[str] = nx.DiGraph(trace_id="t", workflow="w", task_id="t", team=None,
                                       feature=None, started_at=None, cost_usd=0.5)
    for i, n in enumerate([nodes[3], nodes[0], nodes[1], nodes[2]]):
        want.add_node(n["node_id"], **{k: v for k, v in n.items() if k != "node_id"},
                      order=i)
    want.add_edge("r", "y", kinds=("parent",), inferred=False)
    want.add_edge("r", "l", kinds=("parent", "uses"), inferred=False, doc_ids=("d2",))
    want.add_edge("l", "x", kinds=("parent", "retry_of"), inferred=False)
    want.add_edge("r", "x", kinds=("link",), inferred=True)
    want.add_edge("y", "x", kinds=("link",), inferred=False)
    assert G.graph == want.graph and list(G.graph) == list(want.graph)
    assert list(G.nodes(data=True)) == list(want.nodes(data=True))
    assert [list(a.items()) for _, a in G.nodes(data=True)] == [
        list(a.items()) for _, a in want.nodes(data=True)]
    assert list(G.edges(data=True)) == list(want.edges(data=True))
    for v in G:
        assert list(G.predecessors(v)) == list(want.predecessors(v))
        assert list(G.successors(v)) == list(want.successors(v))
    assert list(G.predecessors("x")) == ["l", "r", "y"]
