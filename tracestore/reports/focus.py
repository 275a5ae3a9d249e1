"""FOCUS export: cost rows in the FinOps Open Cost and Usage Specification's column names
(FOCUS 1.3, cost and usage dataset), as CSV or JSON Lines (docs/export.md).

One row per trace and model (provider, model) in the window, from the stored nodes:
``ConsumedQuantity`` is the tokens of that model's calls in the trace, the cost columns their
stored cost, ``ResourceId`` the trace, ``SkuId`` the model. Tool, retrieval and other nodes with
a cost (per-call prices from the price book) form a row of their own kind. The trace's booked
waste (its findings, as in every report) and productive cost are split over its rows in
proportion to their cost; that split is the row's allocation method, named in
``AllocatedMethodId`` and described in ``AllocatedMethodDetails`` on every row.

>>> ALLOCATION_METHOD_ID
'tracestore-waste-by-cost-share/1'
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, and_, case, func, select
from sqlalchemy.orm import Session

from tracestore.reports.queries import trace_conds
from tracestore.schemas import MODEL_KINDS
from tracestore.store.partitions import window_months
from tracestore.store.tables import NODE_T, SUMMARY_T, TRACE_T

__all__ = ["ALLOCATION_METHOD_ID", "COLUMNS", "FOCUS_VERSION", "FocusQuery", "focus_rows",
           "write_csv", "write_jsonl"]

FOCUS_VERSION = "1.3"
ALLOCATION_METHOD_ID = "tracestore-waste-by-cost-share/1"
# Short on purpose (it is on every row); docs/export.md says it in full.
ALLOCATION_METHOD_DETAILS = {"Version": 1, "Waste": "findings of the trace",
                             "Split": "proportional to row cost"}
# The FOCUS columns written, in order (FOCUS 1.3 column IDs), then tracestore's own x_ columns.
FOCUS_COLUMNS = (
    "BilledCost", "BillingCurrency", "ChargeCategory", "ChargeClass", "ChargeDescription",
    "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "ConsumedQuantity",
    "ConsumedUnit", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost",
    "PricingCategory", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName",
    "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName",
    "ServiceSubcategory", "SkuId", "SkuMeter", "Tags", "AllocatedMethodId",
    "AllocatedMethodDetails", "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags",
)
EXTRA_COLUMNS = ("x_ProductiveCost", "x_WasteCost", "x_TaskId", "x_OutcomeStatus",
                 "x_UnpricedCalls")
COLUMNS = FOCUS_COLUMNS + EXTRA_COLUMNS
_CHUNK = 2000  # rows fetched at a time: the export streams, its memory does not grow


@dataclass(frozen=True)
class FocusQuery:
    project_id: int
    since: float | None = None
    until: float | None = None
    workflow: str | None = None
    team: str | None = None
    feature: str | None = None


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _statement(session: Session, q: FocusQuery) -> Any:
    t, n, s = TRACE_T.c, NODE_T.c, SUMMARY_T.c
    conds = trace_conds(q.project_id, q.since, q.until, {
        "workflow": q.workflow or None, "team": q.team or None, "feature": q.feature or None})
    return (
        select(t.trace_id, t.workflow, t.team, t.feature, t.task_id, t.started_at, t.ended_at,
               t.cost_usd.label("trace_cost"), s.waste_usd, s.outcome_status, n.kind,
               n.provider, n.model, func.count().label("calls"),
               func.sum(n.input_tokens + n.output_tokens).label("tokens"),
               func.sum(func.coalesce(n.cost_usd, 0.0)).label("cost"),
               func.sum(func.coalesce(n.reported_cost_usd, 0.0)).label("reported"),
               func.sum(case((and_(n.kind.in_(MODEL_KINDS), n.priced.is_(False)), 1), else_=0))
               .label("unpriced"))
        .join(NODE_T, and_(n.project_id == t.project_id, n.trace_id == t.trace_id))
        .outerjoin(SUMMARY_T, and_(s.project_id == t.project_id, s.trace_id == t.trace_id))
        .where(*conds, window_months(session, conds, n.trace_month),
               (n.cost_usd > 0) | n.model.is_not(None))
        .group_by(t.trace_id, t.workflow, t.team, t.feature, t.task_id, t.started_at,
                  t.ended_at, t.cost_usd, s.waste_usd, s.outcome_status, n.kind, n.provider,
                  n.model)
        .order_by(t.started_at, t.trace_id, n.kind, n.provider, n.model)
    )


def _row(m: Any) -> dict[str, Any]:
    cost = float(m.cost or 0.0)
    trace_cost = float(m.trace_cost or 0.0)
    share = cost / trace_cost if trace_cost > 0 else 0.0
    waste = min(float(m.waste_usd or 0.0) * share, cost)
    is_model = m.model is not None
    tags = {"workflow": m.workflow, "team": m.team, "feature": m.feature,
            "outcome": m.outcome_status}
    return {
        "BilledCost": cost, "BillingCurrency": "USD", "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeDescription": f"{m.calls} {m.kind} call(s) to {m.model or m.kind} in trace "
                             f"{m.trace_id}",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": _iso(m.ended_at if m.ended_at is not None else m.started_at),
        "ChargePeriodStart": _iso(m.started_at),
        "ConsumedQuantity": int(m.tokens or 0) if is_model else int(m.calls),
        "ConsumedUnit": "Tokens" if is_model else "Calls",
        "ContractedCost": cost, "EffectiveCost": cost,
        "InvoiceIssuerName": m.provider, "ListCost": cost,
        "PricingCategory": "Standard",
        "PricingQuantity": int(m.tokens or 0) if is_model else int(m.calls),
        "PricingUnit": "Tokens" if is_model else "Calls",
        "ProviderName": m.provider, "PublisherName": m.provider,
        "ResourceId": m.trace_id, "ResourceName": m.workflow, "ResourceType": "Agent trace",
        "ServiceCategory": "AI and Machine Learning", "ServiceName": m.provider or m.kind,
        "ServiceSubcategory": "Generative AI" if is_model else "Other (AI and Machine Learning)",
        "SkuId": m.model or m.kind, "SkuMeter": "Tokens" if is_model else "Calls",
        "Tags": {k: v for k, v in tags.items() if v is not None},
        "AllocatedMethodId": ALLOCATION_METHOD_ID,
        "AllocatedMethodDetails": ALLOCATION_METHOD_DETAILS,
        "AllocatedResourceId": m.trace_id, "AllocatedResourceName": m.workflow,
        "AllocatedTags": {k: v for k, v in tags.items() if v is not None},
        "x_ProductiveCost": cost - waste, "x_WasteCost": waste, "x_TaskId": m.task_id,
        "x_OutcomeStatus": m.outcome_status, "x_UnpricedCalls": int(m.unpriced or 0),
    }


def focus_rows(engine: Engine, q: FocusQuery) -> Iterator[dict[str, Any]]:
    """The export's rows, streamed in start-time order (one short read transaction)."""
    with Session(engine) as session:
        result = session.execute(_statement(session, q).execution_options(yield_per=_CHUNK))
        for m in result:
            yield _row(m)


# A cell a spreadsheet would run as a formula (OWASP "CSV injection") is written with a
# leading apostrophe; producer strings (workflow, team, trace ids) reach these files verbatim.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """CSV with a header row of :data:`COLUMNS`; JSON-valued columns as JSON text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i, row in enumerate(rows, 1):
        writer.writerow([_cell(row[c]) for c in COLUMNS])
        if i % 500 == 0:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode()


def write_jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """One JSON object per line, keys in :data:`COLUMNS` order."""
    for row in rows:
        yield orjson.dumps({c: row[c] for c in COLUMNS}) + b"\n"
