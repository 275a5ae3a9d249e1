"""Waste by finding code as rows (``trace_waste``): what a summary's ``waste_by_code`` holds,
one row a code, with the summary's trace-level columns the reports filter and group on.
:mod:`tracestore.reports.summaries` writes them with every summary; :func:`backfill_waste`
fills the table from the summaries of a store made before it existed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, tuple_

from tracestore.store.tables import SUMMARY_T, WASTE_T

__all__ = ["WASTE_COLS", "backfill_waste", "waste_rows"]

WASTE_COLS = tuple(c.name for c in WASTE_T.columns)
# The summary columns a row copies (trace level: the task refresh never sets them).
_COPIED = tuple(c for c in WASTE_COLS if c not in ("code", "wasted_usd"))
# Summaries read per batch by the backfill.
_BATCH = 5000


def waste_rows(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The ``trace_waste`` rows of a ``trace_summaries`` row (its ``waste_by_code``), in
    :data:`WASTE_COLS` order: none unless the trace's ``waste_usd > 0``.

    >>> waste_rows({"project_id": 1, "trace_id": "t", "waste_usd": 0.5,
    ...             "waste_by_code": {"retry_loop": 0.5}})[0][:4]
    (1, 't', 'retry_loop', 0.5)
    >>> waste_rows({"project_id": 1, "trace_id": "t", "waste_usd": 0.0,
    ...             "waste_by_code": {"retry_loop": 0.0}})
    []
    """
    if not (summary.get("waste_usd") or 0.0) > 0:
        return []
    row = {k: summary.get(k) for k in _COPIED}
    return [tuple({**row, "code": code, "wasted_usd": float(usd or 0.0)}[c] for c in WASTE_COLS)
            for code, usd in sorted((summary.get("waste_by_code") or {}).items())]


def backfill_waste(conn: Connection) -> int:
    """Fill ``trace_waste`` from every wasteful summary's ``waste_by_code`` (a store made
    before the table existed), :data:`_BATCH` summaries at a time in key order. Returns the
    rows written."""
    s = SUMMARY_T.c
    stmt = (select(*(s[c] for c in (*_COPIED, "waste_usd", "waste_by_code")))
            .where(s.waste_usd > 0).order_by(s.project_id, s.trace_id).limit(_BATCH))
    n, after = 0, None
    while True:
        page = stmt if after is None else stmt.where(tuple_(s.project_id, s.trace_id) > after)
        rows = [dict(r) for r in conn.execute(page).mappings()]
        if not rows:
            return n
        out = [dict(zip(WASTE_COLS, t, strict=True)) for r in rows for t in waste_rows(r)]
        if out:
            conn.execute(insert(WASTE_T), out)
        n += len(out)
        after = tuple_(rows[-1]["project_id"], rows[-1]["trace_id"])
