"""Re-pricing stored traces under the current price book.

Prices are fixed when a node is stored, so a price change never rewrites history by itself;
:func:`reprice` is the explicit step that does, and its :class:`RepriceReport` records what
changed (old and new totals, per-model deltas). It touches only the cost columns of nodes
(``cost_usd``, ``price_source``, ``priced``, ``cost_mismatch``) and the roll-ups of their
traces. Used by ``tracestore reprice`` and ``POST /api/v1/reprice``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table as RichTable
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from tracestore.pricing.book import Book
from tracestore.pricing.pricer import PRICED_KINDS, Pricer
from tracestore.store.rollups import recompute_rollups
from tracestore.store.tables import NODE_T, TRACE_T

__all__ = ["ModelDelta", "RepriceReport", "report_table", "reprice"]

_COST_COLS = ("cost_usd", "price_source", "priced", "cost_mismatch")
_CHUNK = 500  # traces per read/update round: bounded memory, few round trips


@dataclass
class ModelDelta:
    """Cost of one model's (or one tool's) nodes before and after."""

    key: str
    nodes: int = 0
    changed: int = 0
    old_cost_usd: float = 0.0
    new_cost_usd: float = 0.0
    old_unpriced: int = 0
    new_unpriced: int = 0

    @property
    def delta_usd(self) -> float:
        return round(self.new_cost_usd - self.old_cost_usd, 12)


@dataclass
class RepriceReport:
    since: float | None
    until: float | None
    dry_run: bool
    traces: int = 0
    nodes: int = 0
    changed_nodes: int = 0
    old_total_usd: float = 0.0
    new_total_usd: float = 0.0
    old_unpriced: int = 0
    new_unpriced: int = 0
    models: list[ModelDelta] = field(default_factory=list)

    @property
    def delta_usd(self) -> float:
        return round(self.new_total_usd - self.old_total_usd, 12)


def _key(row: dict[str, Any]) -> str:
    if row["kind"] in PRICED_KINDS:
        return f"{row['provider'] or '?'}/{row['model'] or '?'}"
    return f"{row['kind']}:{row['tool_name'] or row['name']}"


def _repriced(rows: list[dict[str, Any]], pricer: Pricer, book: Book,
              deltas: dict[str, ModelDelta]) -> list[dict[str, Any]]:
    """Price ``rows`` again (in place), add them to the per-model ``deltas`` and return the
    changes to write (``b_trace_id``, ``b_node_id`` and the cost columns)."""
    changes: list[dict[str, Any]] = []
    for row in rows:
        old = {c: row[c] for c in _COST_COLS}
        pricer.price_row(row, book)
        d = deltas.setdefault(_key(row), ModelDelta(_key(row)))
        d.nodes += 1
        d.old_cost_usd += old["cost_usd"] or 0.0
        d.new_cost_usd += row["cost_usd"] or 0.0
        model_node = row["kind"] in PRICED_KINDS
        d.old_unpriced += model_node and not old["priced"]
        d.new_unpriced += model_node and not row["priced"]
        if any(row[c] != old[c] for c in _COST_COLS):
            d.changed += 1
            changes.append({"b_trace_id": row["trace_id"], "b_node_id": row["node_id"],
                            **{c: row[c] for c in _COST_COLS}})
    return changes


def reprice(
    session: Session, *, project_id: int, pricer: Pricer, since: float | None = None,
    until: float | None = None, dry_run: bool = False,
) -> RepriceReport:
    """Recompute the cost of every node of the traces started in ``[since, until)`` under the
    project's current price book, update changed nodes and their traces' roll-ups (unless
    ``dry_run``), and report the totals. Does not commit."""
    report = RepriceReport(since, until, dry_run)
    t = TRACE_T.c
    conds = [t.project_id == project_id]
    if since is not None:
        conds.append(t.started_at >= since)
    if until is not None:
        conds.append(t.started_at < until)
    trace_ids = list(session.execute(select(t.trace_id).where(*conds)).scalars())
    report.traces = len(trace_ids)
    book = pricer.book(session, project_id)
    deltas: dict[str, ModelDelta] = {}
    n = NODE_T.c
    for i in range(0, len(trace_ids), _CHUNK):
        chunk = trace_ids[i : i + _CHUNK]
        rows = session.execute(
            select(NODE_T).where(n.project_id == project_id, n.trace_id.in_(chunk))
        )
        changes = _repriced([dict(r._mapping) for r in rows], pricer, book, deltas)
        touched = {c["b_trace_id"] for c in changes}
        report.changed_nodes += len(changes)
        if changes and not dry_run:
            session.execute(
                update(NODE_T)
                .where(n.project_id == project_id, n.trace_id == bindparam("b_trace_id"),
                       n.node_id == bindparam("b_node_id"))
                .values({c: bindparam(c) for c in _COST_COLS}),
                changes,
                execution_options={"synchronize_session": False},
            )
            recompute_rollups(session, project_id=project_id, trace_ids=sorted(touched))
    report.models = sorted(deltas.values(), key=lambda d: (-abs(d.delta_usd), d.key))
    for d in report.models:
        report.nodes += d.nodes
        report.old_total_usd += d.old_cost_usd
        report.new_total_usd += d.new_cost_usd
        report.old_unpriced += d.old_unpriced
        report.new_unpriced += d.new_unpriced
    report.old_total_usd = round(report.old_total_usd, 12)
    report.new_total_usd = round(report.new_total_usd, 12)
    return report


def report_table(report: RepriceReport) -> RichTable:
    """The per-model deltas as a rich table (models whose cost or price changed)."""
    title = (
        f"{'dry run: ' if report.dry_run else ''}{report.traces} traces, {report.nodes} nodes, "
        f"{report.changed_nodes} re-priced"
    )
    table = RichTable(title=title)
    for name, justify in (("model / step", "left"), ("nodes", "right"), ("changed", "right"),
                          ("old USD", "right"), ("new USD", "right"), ("delta USD", "right"),
                          ("unpriced old→new", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for d in report.models:
        if d.changed:
            table.add_row(d.key, str(d.nodes), str(d.changed), f"{d.old_cost_usd:.6f}",
                          f"{d.new_cost_usd:.6f}", f"{d.delta_usd:+.6f}",
                          f"{d.old_unpriced}→{d.new_unpriced}")
    table.add_row("total", str(report.nodes), str(report.changed_nodes),
                  f"{report.old_total_usd:.6f}", f"{report.new_total_usd:.6f}",
                  f"{report.delta_usd:+.6f}", f"{report.old_unpriced}→{report.new_unpriced}",
                  style="bold")
    return table
