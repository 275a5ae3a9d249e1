"""A fixed fixture week (2026-W47) built from fixed inputs, shared by the rendering tests.

Regenerate the expected files after a deliberate change with
``python -m tests.tracestore.digest_fixture`` and review the diff.
"""

from __future__ import annotations

from pathlib import Path

from analyzers.digest import build_digest, top_fix_codes
from analyzers.digest_types import (
    Digest,
    PathStat,
    SimulatedWorkflow,
    SimulationIn,
    WeekAggregates,
    WorkflowSettingIn,
    WorkflowWeek,
)
from analyzers.findings import Finding

EXPECTED = Path(__file__).parent / "expected"
BASE_URL = "https://tracestore.example.com"


def _finding(trace: str, code: str, usd: float, wf: str, msg: str) -> Finding:
    return Finding.create(trace_id=trace, workflow=wf, code=code, node_ids=("n1", "n2"),
                          wasted_tokens=int(usd * 100_000), wasted_cost_usd=usd,
                          savings_usd=usd, confidence=0.9, evidence={}, message=msg)


def fixture_digest() -> Digest:
    current = WeekAggregates(
        spend_usd=412.5, traces=1300,
        daily_spend_usd=(52.0, 61.25, 70.5, 66.0, 58.75, 50.0, 54.0),
        workflows=(WorkflowWeek("support_triage", 250.0, 25_000_000, 1000, 800),
                   WorkflowWeek("claims_processing", 162.5, 6_500_000, 300, 100)),
        priced_kind_calls=4200, unpriced_calls=42, untagged_spend_usd=20.0,
        spend_with_outcome_usd=400.0, overrides=7, override_cost_usd=3.5,
        waste_by_code=(("churn.retry_storm", 30.0), ("bloat.unused_context", 9.5),
                       ("routing.overpowered_model", 2.25), ("churn.dead_end", 1.5)),
    )
    previous = WeekAggregates(
        spend_usd=300.0, traces=1200,
        daily_spend_usd=(40.0, 45.0, 45.0, 42.5, 42.5, 40.0, 45.0),
        workflows=(WorkflowWeek("support_triage", 200.0, 20_000_000, 1000, 800),
                   WorkflowWeek("claims_processing", 100.0, 4_000_000, 200, 100)),
        priced_kind_calls=4000, unpriced_calls=40, untagged_spend_usd=15.0,
        spend_with_outcome_usd=290.0, overrides=5, override_cost_usd=2.0,
        waste_by_code=(("churn.retry_storm", 4.0), ("bloat.unused_context", 10.0)),
    )
    findings = [
        _finding("7a3f00000000000000000000000000a1", "churn.retry_storm", 18.0,
                 "claims_processing", "Cap the claims lookup at 2 retries with backoff."),
        _finding("7a3f00000000000000000000000000a2", "churn.retry_storm", 12.0,
                 "claims_processing", "Cap the claims lookup at 2 retries with backoff."),
        _finding("5b2e00000000000000000000000000b1", "bloat.unused_context", 9.5,
                 "support_triage", "Retrieve 4 documents instead of 10; 6 were never used."),
        _finding("5b2e00000000000000000000000000b2", "routing.overpowered_model", 2.25,
                 "support_triage", "Use gpt-4o-mini for the classify step."),
    ]
    paths = [
        PathStat("claims_processing", "agent:claims > tool:lookup×3 > llm:decide[frontier]",
                 120, 40, 90.0, 30.0, ("7a3f00000000000000000000000000a1",
                                       "7a3f00000000000000000000000000a2")),
        PathStat("support_triage", "agent:triage > retrieval:kb > llm:answer[frontier]",
                 600, 480, 150.0, 9.5, ("5b2e00000000000000000000000000b1",)),
        PathStat("support_triage", "agent:triage > llm:answer[small]", 400, 320, 100.0, 0.0,
                 ("5b2e00000000000000000000000000b9",)),
    ]
    # The simulator's answer with the top 3 codes fixed (retry storm, unused context,
    # overpowered model: 30 + 9.5 + 2.25 dollars), as gather.week_simulation passes it.
    simulation = SimulationIn(
        fix_codes=top_fix_codes(current.waste_by_code), spend_usd=412.5,
        after_spend_usd=370.75, saving_usd=41.75,
        workflows=(SimulatedWorkflow("claims_processing", 162.5, 132.5, 30.0, 1.625, 1.325),
                   SimulatedWorkflow("support_triage", 250.0, 238.25, 11.75, 0.3125,
                                     0.2978125)))
    return build_digest(
        project="acme", week="2026-W47", current=current, previous=previous,
        findings=findings, paths=paths,
        settings=[WorkflowSettingIn("support_triage", 0.5, 4.0),
                  WorkflowSettingIn("claims_processing", 2.0)],
        simulation=simulation,
    )


if __name__ == "__main__":
    from tracestore.digest import render_json, render_markdown

    d = fixture_digest()
    EXPECTED.mkdir(exist_ok=True)
    (EXPECTED / "digest_w47.md").write_text(render_markdown(d, base_url=BASE_URL))
    (EXPECTED / "digest_w47.json").write_bytes(render_json(d))
