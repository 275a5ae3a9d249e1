"""FOCUS export (GET /api/v1/export/focus and `tracestore export focus`): columns against the
FOCUS 1.3 spec, values reconciled with /attribution, CSV formula escaping; both backends."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
from click.testing import CliRunner
from fastapi.testclient import TestClient

from tracestore.api import create_app
from tracestore.cli.main import cli
from tracestore.config import Settings
from tracestore.reports.focus import ALLOCATION_METHOD_ID, COLUMNS, FOCUS_COLUMNS

# Column IDs of the FOCUS 1.3 cost and usage dataset (FinOps-Open-Cost-and-Usage-Spec/
# FOCUS_Spec, specification/datasets/cost_and_usage/columns/*.md, "Column ID" sections):
# the ones this export writes must be among them, spelled exactly.
SPEC_1_3 = {
    "AllocatedMethodDetails", "AllocatedMethodId", "AllocatedResourceId",
    "AllocatedResourceName", "AllocatedTags", "AvailabilityZone", "BilledCost",
    "BillingAccountId", "BillingAccountName", "BillingAccountType", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "CapacityReservationId",
    "CapacityReservationStatus", "ChargeCategory", "ChargeClass", "ChargeDescription",
    "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory",
    "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit",
    "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice",
    "PricingCategory", "PricingCurrency", "PricingQuantity", "PricingUnit", "ProviderName",
    "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceCategory", "ServiceName", "ServiceSubcategory", "SkuId", "SkuMeter",
    "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName", "SubAccountType", "Tags",
}
# FOCUS requires these in every dataset (feature level Mandatory, 1.3).
MANDATORY = {"BilledCost", "BillingCurrency", "ChargeCategory", "ChargeClass",
             "ChargeDescription", "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost",
             "EffectiveCost", "ListCost", "ServiceCategory", "ServiceName"}

T0 = 1794787200  # 2026-11-16T00:00:00Z


def _trace(tid: str, workflow: str) -> dict[str, object]:
    llm = {"kind": "llm", "provider": "openai", "name": "draft"}
    return {"trace_id": tid, "workflow": workflow, "team": "support", "nodes": [
        {**llm, "node_id": "a", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100,
         "start": T0 + 10, "end": T0 + 11},
        {**llm, "node_id": "b", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100,
         "start": T0 + 12, "end": T0 + 13},
        {**llm, "node_id": "c", "model": "gpt-4o-mini", "input_tokens": 500,
         "output_tokens": 50, "start": T0 + 14, "end": T0 + 15},
        {"node_id": "t", "kind": "tool", "name": "search", "tool_name": "search",
         "args": {"q": 1}, "start": T0 + 16, "end": T0 + 17}],
        "outcome": {"status": "success"}}


def test_focus_export_columns_values_and_escaping(db_url: str, tmp_path: Path) -> None:
    assert set(FOCUS_COLUMNS) <= SPEC_1_3 and set(FOCUS_COLUMNS) >= MANDATORY
    assert all(c.startswith("x_") for c in COLUMNS[len(FOCUS_COLUMNS):])
    window = {"since": T0, "until": T0 + 7 * 86400}
    with TestClient(create_app(Settings(database_url=db_url, settle_seconds=0))) as c:
        for tid, wf in (("t1", "support_triage"), ("t2", "=HYPERLINK(\"http://x\")")):
            assert c.post("/api/v1/traces", json=_trace(tid, wf)).status_code == 200
        assert c.post("/api/v1/analyze", json={}).status_code == 200
        r = c.get("/api/v1/export/focus", params={**window, "format": "jsonl"})
        assert r.status_code == 200 and r.headers["x-focus-version"] == "1.3"
        rows = [orjson.loads(line) for line in r.text.splitlines()]
        text = c.get("/api/v1/export/focus", params=window).text
        report = c.get("/api/v1/attribution", params=window).json()
        assert c.get("/api/v1/export/focus", params={"format": "xml"}).status_code == 422
    assert [list(row) for row in rows] == [list(COLUMNS)] * len(rows)
    assert {(r["ResourceId"], r["SkuId"]) for r in rows} == {
        (t, m) for t in ("t1", "t2") for m in ("gpt-4o", "gpt-4o-mini")}
    big = next(r for r in rows if r["ResourceId"] == "t1" and r["SkuId"] == "gpt-4o")
    assert big["ConsumedQuantity"] == 2200 and big["ConsumedUnit"] == "Tokens"
    assert big["ProviderName"] == "openai" and big["AllocatedMethodId"] == ALLOCATION_METHOD_ID
    assert big["Tags"] == {"workflow": "support_triage", "team": "support", "outcome": "success"}
    assert big["ChargePeriodStart"] == "2026-11-16T00:00:10Z"
    spend = sum(g["spend_usd"] for g in report["groups"])
    waste = sum(sum(g["waste_usd"].values()) for g in report["groups"])
    assert abs(sum(r["EffectiveCost"] for r in rows) - spend) < 1e-9
    assert abs(sum(r["x_WasteCost"] for r in rows) - waste) < 1e-9
    assert all(abs(r["x_WasteCost"] + r["x_ProductiveCost"] - r["BilledCost"]) < 1e-12
               for r in rows)
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == len(rows) and list(table[0]) == list(COLUMNS)
    evil = {r["ResourceName"] for r in table if r["ResourceId"] == "t2"}
    assert evil == {"'=HYPERLINK(\"http://x\")"}  # a spreadsheet shows it, never runs it
    out = tmp_path / "focus.jsonl"
    res = CliRunner().invoke(cli, ["export", "focus", "--database-url", db_url, "--since",
                                   "2026-11-16", "--format", "jsonl", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert [orjson.loads(x) for x in out.read_bytes().splitlines()] == rows
