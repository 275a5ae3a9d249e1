"""Per-trace summaries (``trace_summaries``): attribution precomputed once per analysis.

:func:`summarize_traces` runs after a batch of traces is analysed (the analysis runtime's
post-analysis step): it loads their graphs and stored findings, runs the pure
:func:`analyzers.attribution.attribute_trace` and :func:`analyzers.paths.path_signature`, and
upserts one row per trace. :func:`refresh_tasks` keeps the task-level columns (attempt index,
the task's outcome, which attempt it is counted on) in step; it reads only the ``traces`` and
``outcomes`` tables, so a late outcome (``POST /api/v1/outcomes``) refreshes the summaries of
its task's traces without re-reading any node. Reports (:mod:`tracestore.reports.economics`) read
only this table. Neither function commits.

Which attempt an outcome is counted on: the trace that carried it (outcome node or
``trace_id`` on the posted outcome) when that trace belongs to the task, else the task's last
trace by start time (the attempt that finished the task).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import networkx as nx
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from analyzers.attribution import FindingLike, attribute_trace
from analyzers.graph import MODEL_KINDS
from analyzers.paths import path_signature
from tracestore.store.engine import fetch_in, update_per_trace, upsert
from tracestore.store.jsontext import json_text
from tracestore.store.tables import (
    FINDING_T,
    OUTCOME_T,
    SUMMARY_T,
    TRACE_T,
    WASTE_T,
)
from tracestore.store.waste import WASTE_COLS, waste_rows

__all__ = [
    "StoredFinding", "iso_week", "refresh_tasks", "summarize_loaded",
    "summarize_traces", "summary_row", "write_summaries",
]


# Ids per IN (...) list: far below SQLite's 32,766 bound parameters (3.32+).
_CHUNK = 500


def iso_week(ts: float | None) -> str | None:
    """The ISO 8601 week of an epoch time (UTC).

    >>> iso_week(1794819600.0)  # Monday 2026-11-16
    '2026-W47'
    """
    if ts is None:
        return None
    y, w, _ = datetime.fromtimestamp(ts, UTC).isocalendar()
    return f"{y}-W{w:02d}"


class StoredFinding(NamedTuple):
    """A finding as the summaries read it back from its stored row (all attribution needs).
    A named tuple: the analysis run makes one per finding it stores."""

    code: str
    node_ids: tuple[str, ...]
    wasted_cost_usd: float
    evidence: dict[str, Any]


def summary_row(project_id: int, G: nx.DiGraph[str], trace: dict[str, Any],
                findings: Iterable[FindingLike], now: float) -> dict[str, Any]:
    """One ``trace_summaries`` row (task-level columns at their single-attempt defaults)."""
    att = attribute_trace(G, findings)
    by_analyzer = att.waste_by_analyzer
    tokens = model_calls = unpriced = 0
    model_cost: dict[str, float] = {}
    for _, a in G.nodes(data=True):
        if a.get("kind") not in MODEL_KINDS:
            continue
        model_calls += 1
        tokens += int(a.get("input_tokens") or 0) + int(a.get("output_tokens") or 0)
        unpriced += not a.get("priced")
        model = a.get("model")
        if model:
            c = a.get("cost_usd")  # analyzers.graph.node_cost
            model_cost[model] = model_cost.get(model, 0.0) + (float(c) if c is not None else 0.0)
    primary = max(model_cost, key=lambda m: (model_cost[m], m)) if model_cost else None
    started = trace.get("started_at")
    return {
        "project_id": project_id,
        "trace_id": trace["trace_id"],
        "workflow": trace.get("workflow"),
        "team": trace.get("team"),
        "feature": trace.get("feature"),
        "user_id": trace.get("user_id"),
        "task_id": trace.get("task_id") or trace["trace_id"],
        "week": iso_week(started),
        "started_at": started,
        "cost_usd": att.cost_usd,
        "tokens": tokens,
        "model_calls": model_calls,
        "unpriced_count": unpriced,
        "productive_usd": att.productive_usd,
        "waste_usd": att.waste_total_usd,
        "waste_churn_usd": by_analyzer.get("churn", 0.0),
        "waste_bloat_usd": by_analyzer.get("bloat", 0.0),
        "waste_routing_usd": by_analyzer.get("routing", 0.0),
        "waste_by_code": dict(att.waste_usd),
        "path_signature": path_signature(G, att.path),
        "primary_model": primary,
        "models": sorted(model_cost),
        "attempt_index": 1,
        "task_attempts": 1,
        "outcome_status": None,
        "outcome_here": False,
        "outcome_value_usd": None,
        "summarized_at": now,
    }


def _findings(session: Session, project_id: int,
              trace_ids: Sequence[str]) -> dict[str, list[StoredFinding]]:
    f = FINDING_T.c
    out: dict[str, list[StoredFinding]] = {}
    rows = session.execute(
        select(f.trace_id, f.code, f.node_ids, f.wasted_cost_usd, f.evidence)
        .where(f.project_id == project_id, f.trace_id.in_(list(trace_ids)))
        .order_by(f.trace_id, f.id)
    )
    for tid, code, node_ids, wasted, evidence in rows:
        out.setdefault(tid, []).append(StoredFinding(
            code, tuple(node_ids or ()), wasted or 0.0, evidence or {}))
    return out


def summarize_traces(session: Session, *, project_id: int, trace_ids: Sequence[str],
                     now: float | None = None) -> int:
    """(Re)compute the summaries of ``trace_ids`` from the store and refresh their tasks.
    Returns the number of rows written (missing traces are skipped). The analysis run, which
    has the graphs in memory, calls :func:`summarize_loaded` instead."""
    # Imported here: the analysis runtime calls this module after storing findings.
    from tracestore.store.load import iter_trace_graphs

    now = time.time() if now is None else now
    items: list[tuple[str, nx.DiGraph[str], str | None, Sequence[FindingLike]]] = []
    ids = list(dict.fromkeys(trace_ids))
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        found = _findings(session, project_id, chunk)
        items.extend((lt.trace_id, lt.graph, lt.user_id, found.get(lt.trace_id, ()))
                     for lt in iter_trace_graphs(session, project_id=project_id,
                                                 trace_ids=chunk))
    return summarize_loaded(session, project_id=project_id, items=items, now=now)


_SUMMARY_COLS = tuple(c.name for c in SUMMARY_T.columns)
_TASK_COLS = ("attempt_index", "task_attempts", "outcome_status", "outcome_here",
              "outcome_value_usd")


def summarize_loaded(
    session: Session, *, project_id: int,
    items: Sequence[tuple[str, nx.DiGraph[str], str | None, Sequence[FindingLike]]], now: float,
) -> int:
    """Write the summaries of traces already in memory: ``(trace id, graph, user id, its
    stored findings in id order)`` each, with their task-level columns, and refresh the
    task-level columns of the other summarised traces of their tasks (what
    :func:`refresh_tasks` does, without writing the batch's own rows twice). Returns the
    number of rows written."""
    rows = [summary_row(project_id, G, {**G.graph, "user_id": user_id}, findings, now)
            for _tid, G, user_id, findings in items]
    return write_summaries(session, project_id=project_id, rows=rows)


def write_summaries(session: Session, *, project_id: int, rows: list[dict[str, Any]]) -> int:
    """Upsert :func:`summary_row` rows with their task-level columns filled in, and refresh
    the task-level columns of the other summarised traces of their tasks. Returns the number
    of rows written."""
    tasks = _task_columns(session, project_id, {r["task_id"] for r in rows})
    by_trace = {p["b_trace_id"]: p for p in tasks}
    for r in rows:
        p = by_trace.pop(r["trace_id"], None)
        if p is not None:
            for k in _TASK_COLS:
                r[k] = p[k]
    get = operator.itemgetter(*_SUMMARY_COLS)
    upsert(session, SUMMARY_T, [get(r) for r in rows], columns=_SUMMARY_COLS,
           keys=("project_id", "trace_id"), encode_json=json_text)
    _write_waste(session, project_id, rows)
    # Rows of this batch written once; the other attempts of the batch's tasks updated.
    update_per_trace(session, SUMMARY_T, [p for p in tasks if p["b_trace_id"] in by_trace],
                     project_id=project_id)
    return len(rows)


def _write_waste(session: Session, project_id: int, rows: Sequence[dict[str, Any]]) -> None:
    """Replace the ``trace_waste`` rows of the summaries ``rows`` (their codes may differ)."""
    ids = [r["trace_id"] for r in rows]
    w = WASTE_T.c
    for i in range(0, len(ids), _CHUNK):
        session.execute(delete(WASTE_T).where(w.project_id == project_id,
                                              w.trace_id.in_(ids[i : i + _CHUNK])))
    out = [t for r in rows for t in waste_rows(r)]
    upsert(session, WASTE_T, out, columns=WASTE_COLS, keys=("project_id", "trace_id", "code"))


def refresh_tasks(session: Session, *, project_id: int, task_ids: Iterable[str]) -> int:
    """Recompute the task-level columns of every summarised trace of ``task_ids``: attempt
    index (by start time over all the task's stored traces), attempts, the task's outcome and
    the attempt it is counted on. Returns the number of summary rows updated."""
    params = _task_columns(session, project_id, task_ids)
    update_per_trace(session, SUMMARY_T, params, project_id=project_id)
    return len(params)


def _task_columns(session: Session, project_id: int,
                  task_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The task-level columns of every stored trace of ``task_ids`` (``b_trace_id`` and
    :data:`_TASK_COLS`): two queries per 500 tasks."""
    tasks = sorted({t for t in task_ids if t})
    params: list[dict[str, Any]] = []
    # Plain text and float columns, read on the driver's cursor (no result processing).
    attempts_sql = (f"SELECT trace_id, task_id, started_at FROM {TRACE_T.name} "
                    "WHERE project_id = {mark} AND task_id IN ({marks})")
    outcomes_sql = (f"SELECT task_id, status, value_usd, trace_id "
                    f"FROM {OUTCOME_T.name} WHERE project_id = {{mark}} "
                    "AND task_id IN ({marks})")
    for i in range(0, len(tasks), _CHUNK):
        chunk = tasks[i : i + _CHUNK]
        attempts: dict[str, list[tuple[float, str]]] = {}
        for tid, task, started in fetch_in(session, attempts_sql, project_id, chunk):
            attempts.setdefault(task, []).append((started if started is not None else 0.0, tid))
        outcomes = {r[0]: r for r in fetch_in(session, outcomes_sql, project_id, chunk)}
        for task, runs in attempts.items():
            runs.sort()
            order = [tid for _, tid in runs]
            out = outcomes.get(task)
            counted = status = value = None
            if out is not None:
                _, status, value, out_trace = out
                counted = out_trace if out_trace in order else order[-1]
            for idx, tid in enumerate(order, start=1):
                params.append({
                    "b_trace_id": tid,
                    "attempt_index": idx,
                    "task_attempts": len(order),
                    "outcome_status": status,
                    "outcome_here": tid == counted,
                    "outcome_value_usd": value,
                })
    return params
