"""The demo generator: deterministic, valid, its labels true of the data, the W47 change
present; and ``tracestore demo`` reports what the store really holds."""

from __future__ import annotations

import itertools
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tracestore.cli.main import cli
from tracestore.demo import DEMO_END, DEMO_START, W47_START, DemoData
from tracestore.demo.run import demo_summary, dump_demo, generate_demo_traces
from tracestore.schemas import OutcomeIn, TraceIn
from tracestore.store.engine import make_engine, session_scope
from tracestore.store.tables import Node, Outcome, Trace

FRONTIER = {"gpt-4o", "claude-sonnet-4-20250514"}


@pytest.fixture(scope="module")
def data() -> DemoData:
    return generate_demo_traces(seed=7)


@pytest.fixture(scope="module")
def by_trace(data: DemoData) -> dict[str, dict[str, Any]]:
    return {t["trace_id"]: t for t in data.traces}


def _nodes(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["node_id"]: n for n in trace["nodes"]}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = [p.read_bytes() for p in dump_demo(tmp_path / "a", seed=3, n=120)]
    b = [p.read_bytes() for p in dump_demo(tmp_path / "b", seed=3, n=120)]
    c = [p.read_bytes() for p in dump_demo(tmp_path / "c", seed=4, n=120)]
    assert a == b
    assert a[0] != c[0] and a[2] != c[2]


def test_every_trace_and_outcome_validates(data: DemoData) -> None:
    assert 2000 <= len(data.traces) < 2010
    for t in data.traces:
        TraceIn.model_validate(t)
        assert DEMO_START <= t["nodes"][0]["start"] < DEMO_END
        assert len({n["node_id"] for n in t["nodes"]}) == len(t["nodes"])
    for o in data.outcomes:
        OutcomeIn.model_validate(o)
    assert len({t["trace_id"] for t in data.traces}) == len(data.traces)
    assert {t["workflow"] for t in data.traces} == {"support_triage", "claims_processing",
                                                    "code_review"}
    # Labels live apart from the traces.
    assert not any("label" in key for t in data.traces for key in t)


def test_tasks_with_several_traces_and_late_outcomes(data: DemoData) -> None:
    per_task: dict[str, int] = defaultdict(int)
    for t in data.traces:
        per_task[t["task_id"]] += 1
    multi = [k for k, v in per_task.items() if v > 1]
    assert len(multi) > 100
    assert any(k.startswith("TICKET") for k in multi) and any(k.startswith("CLM") for k in multi)
    inline = sum(1 for t in data.traces for n in t["nodes"] if n["kind"] == "outcome")
    late = len(data.outcomes)
    assert 0.15 < late / (late + inline) < 0.25  # LATE_OUTCOME_RATE = 0.20
    assert any("value_usd" in o for o in data.outcomes)
    assert {o["status"] for o in data.outcomes} >= {"success", "failure"}
    models = {(n.get("provider"), n.get("model")) for t in data.traces for n in t["nodes"]
              if n["kind"] == "llm"}
    assert {("openai", "gpt-4o-mini"), ("openai", "o3-mini"),
            ("anthropic", "claude-3-5-haiku-20241022")} <= models
    assert any(n.get("cache_read_tokens") for t in data.traces for n in t["nodes"])
    assert any(n.get("cache_write_tokens") for t in data.traces for n in t["nodes"])


def _check_label(lab: Any, trace: dict[str, Any], medians: dict[str, float]) -> None:
    nodes = _nodes(trace)
    ns = [nodes[i] for i in lab.node_ids]  # every labelled node exists in its trace
    code = lab.code
    tools = [n for n in trace["nodes"] if n["kind"] == "tool"]
    if code == "churn.exact_repeat":
        if lab.negative:
            assert ns[0]["tool_name"] == ns[1]["tool_name"] and ns[0]["args"] != ns[1]["args"]
            return
        tool, caller = ns
        assert {"src": caller["node_id"], "dst": tool["node_id"], "kind": "tool_call"} in trace[
            "edges"]
        earlier = [t for t in tools if t["start"] < tool["start"]
                   and t["tool_name"] == tool["tool_name"]]
        assert any(t["args"] == tool["args"] and t["result"] == tool["result"] for t in earlier)
    elif code == "churn.tight_loop":
        seq = [t["node_id"] for t in tools]
        i = seq.index(ns[0]["node_id"])
        if lab.negative:  # results change, or an edit sits between the runs
            between = seq[i:seq.index(ns[-1]["node_id"])]
            assert len({str(n["result"]) for n in ns}) == len(ns) or any(
                nodes[b]["tool_name"] == "edit_file" for b in between)
            return
        assert len(ns) >= 3 and seq[i:i + len(ns)] == list(lab.node_ids)  # in a row
        assert all(n["args"] == ns[0]["args"] and n["result"] == ns[0]["result"] for n in ns)
    elif code == "churn.error_loop":
        assert len(ns) >= 3
        assert all(n["status"] == "error" and n["error_type"] == ns[0]["error_type"]
                   and n["args"] == ns[0]["args"] for n in ns)
    elif code == "churn.cycle":
        args = [str(n["args"]) for n in ns]
        assert len(ns) == 6 and args[0] != args[1] and args == args[:2] * 3
    elif code == "churn.retry_storm":
        assert all(b.get("retry_of") == a["node_id"] for a, b in itertools.pairwise(ns))
        if lab.negative:
            assert ns[0]["args"] != ns[1]["args"]
            return
        assert len(ns) >= 4 and all(n["status"] == "error" for n in ns[:-1])
        assert ns[-1]["status"] == "ok"
    elif code == "churn.overridden":
        llm, human = ns
        assert human["kind"] == "human" and human["review_target"] == llm["node_id"]
        assert human["decision"] in ("reject", "override")
    elif code == "churn.reprompt":
        first, review, again = ns
        assert review["decision"] == "reject" and review["review_target"] == first["node_id"]
        assert again["prompt"].startswith(first["prompt"]) and again["start"] > review["end"]
    elif code == "churn.dead_end":
        branch = set(lab.node_ids)
        assert all(set(n.get("uses") or ()) & branch == set() for n in trace["nodes"]
                   if n["node_id"] not in branch)
    elif code == "bloat.over_retrieval":
        ret, _, final = ns
        docs = {d["id"] for d in ret["documents"]}
        assert len(docs) >= 10 and len(docs & set(final["uses"])) <= 1
    elif code == "bloat.oversized_prompt":
        assert ns[0]["input_tokens"] > 2 * medians[ns[0]["step"]]
    elif code == "bloat.history_growth":
        ins = [n["input_tokens"] for n in ns]
        assert len(ns) >= 10 and ins == sorted(ins) and len(set(ins)) == len(ins)
        assert not any(n["name"] == "compact_history" for n in trace["nodes"])
    elif code == "routing.overpowered_model":
        assert ns[0]["model"] in FRONTIER and ns[0]["output_tokens"] <= 5
    elif code == "routing.reasoning_overkill":
        assert ns[0]["model"] == "o3-mini" and ns[0].get("reasoning_tokens", 0) <= 32
    else:
        raise AssertionError(f"no check for label code {code}")


def test_labelled_patterns_are_really_in_the_data(
    data: DemoData, by_trace: dict[str, dict[str, Any]]
) -> None:
    steps: dict[str, list[int]] = defaultdict(list)
    for t in data.traces:
        for n in t["nodes"]:
            if n["kind"] == "llm" and n.get("step"):
                steps[n["step"]].append(n["input_tokens"])
    medians = {k: statistics.median(v) for k, v in steps.items()}
    counts: dict[tuple[str, bool], int] = defaultdict(int)
    for lab in data.labels:
        _check_label(lab, by_trace[lab.trace_id], medians)
        counts[(lab.code, lab.negative)] += 1
    for key in [("churn.exact_repeat", False), ("churn.exact_repeat", True),
                ("churn.tight_loop", False), ("churn.tight_loop", True), ("churn.cycle", False),
                ("churn.error_loop", False), ("churn.retry_storm", False),
                ("churn.retry_storm", True), ("churn.reprompt", False),
                ("churn.overridden", False), ("churn.dead_end", False),
                ("bloat.over_retrieval", False), ("bloat.oversized_prompt", False),
                ("bloat.history_growth", False), ("routing.overpowered_model", False),
                ("routing.reasoning_overkill", False)]:
        assert counts[key] >= 10, (key, counts[key])
    # Documented rates hold: over-retrieval is injected into 12 % of support traces.
    support = sum(1 for t in data.traces if t["workflow"] == "support_triage")
    assert 0.08 < counts[("bloat.over_retrieval", False)] / support < 0.16


def _week(t: dict[str, Any]) -> str:
    return "W47" if t["nodes"][0]["start"] >= W47_START else "W46"


def test_w47_change_is_in_the_data(data: DemoData) -> None:
    assert {c["workflow"]: c["lever"] for c in data.change} == {
        "support_triage": "tokens_per_attempt", "claims_processing": "attempts_per_outcome"}
    retrieved: dict[str, list[int]] = defaultdict(list)
    for t in data.traces:
        if t["workflow"] == "support_triage":
            retrieved[_week(t)].append(sum(d.get("tokens", 0) for n in t["nodes"]
                                           if n["kind"] == "retrieval" for d in n["documents"]))
    ratio = statistics.mean(retrieved["W47"]) / statistics.mean(retrieved["W46"])
    assert ratio == pytest.approx(2.0, abs=0.2)
    traces: dict[str, int] = defaultdict(int)
    tasks: dict[str, set[str]] = defaultdict(set)
    for t in data.traces:
        if t["workflow"] == "claims_processing":
            traces[_week(t)] += 1
            tasks[_week(t)].add(t["task_id"])
    attempts = {w: traces[w] / len(tasks[w]) for w in ("W46", "W47")}
    assert attempts["W46"] < 1.2 and attempts["W47"] > attempts["W46"] + 0.25


def test_cli_demo_summary_equals_the_database(db_url: str) -> None:
    r = CliRunner().invoke(cli, ["demo", "--no-serve", "--database-url", db_url,
                                 "--traces", "120", "--seed", "5"])
    assert r.exit_code == 0, r.output
    m = re.search(r"store holds (\d+) traces, (\d+) nodes, (\d+) outcomes; spend \$([\d.]+)",
                  r.output)
    assert m, r.output
    rows = {m2[0]: (int(m2[1]), int(m2[2]), float(m2[4])) for m2 in re.findall(
        r"^(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)$", r.output, re.M)}
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            n_traces, n_nodes, cost = s.execute(
                select(func.count(), func.sum(Trace.node_count), func.sum(Trace.cost_usd))
            ).one()
            assert s.execute(select(func.count()).select_from(Node)).scalar_one() == n_nodes
            n_out = s.execute(select(func.count()).select_from(Outcome)).scalar_one()
            per = dict(s.execute(select(Trace.workflow, func.sum(Trace.cost_usd))
                                 .group_by(Trace.workflow)).all())
            per_n = dict(s.execute(select(Trace.workflow, func.count())
                                   .group_by(Trace.workflow)).all())
            summary = demo_summary(s, 1)
    finally:
        engine.dispose()
    assert (int(m[1]), int(m[2]), int(m[3])) == (n_traces, n_nodes, n_out)
    assert n_traces >= 120 and float(m[4]) == pytest.approx(cost, abs=5e-5) and cost > 0
    assert set(rows) == set(per) == {"support_triage", "claims_processing", "code_review"}
    for wf, (n, _, spend) in rows.items():
        assert n == per_n[wf] and spend == pytest.approx(per[wf], abs=5e-5)
    assert summary["traces"] == n_traces


def test_dump_then_ingest_gives_the_same_store(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "dump"
    r = runner.invoke(cli, ["demo", "--dump", str(out), "--traces", "80", "--seed", "2"])
    assert r.exit_code == 0, r.output
    url = f"sqlite:///{tmp_path / 'x.db'}"
    r = runner.invoke(cli, ["ingest", "--database-url", url, str(out / "traces.jsonl.gz")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["ingest", "--outcomes", "--database-url", url,
                            str(out / "outcomes.jsonl")])
    assert r.exit_code == 0, r.output
    data = generate_demo_traces(seed=2, n=80)
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            summary = demo_summary(s, 1)
    finally:
        engine.dispose()
    inline = sum(1 for t in data.traces for n in t["nodes"] if n["kind"] == "outcome")
    assert summary["traces"] == len(data.traces)
    assert summary["nodes"] == sum(len(t["nodes"]) for t in data.traces)
    assert summary["outcomes"] == inline + len(data.outcomes)
