"""Sums of stored dollar amounts that cannot overflow.

Each dollar summand is clamped to ±``USD_CAP`` before summing. Ingest bounds every value far
below it (docs/limits.md), so stored sums are unchanged; a value stored before those bounds (two
outcomes of 1.7e308 overflowed PostgreSQL's double precision sum, a 500 for every report of the
project) can no longer make a sum overflow or reach a report as inf. The reports
(:mod:`tracestore.reports.queries`) and the stored pages' fingerprints
(:mod:`tracestore.store.stored`) both sum through here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func

__all__ = ["USD_CAP", "clamp_usd", "usd_sum"]

USD_CAP = 1e15


def clamp_usd(col: Any) -> Any:
    """``col`` clamped to ±``USD_CAP`` (NULL stays NULL)."""
    return case((col > USD_CAP, USD_CAP), (col < -USD_CAP, -USD_CAP), else_=col)


def usd_sum(col: Any) -> Any:
    """``SUM(col)`` over dollar amounts, each clamped to ±``USD_CAP`` (NULLs stay NULL)."""
    return func.sum(clamp_usd(col))
