"""The pure digest: lever split, sections, edge weeks and the maturity ladder, on hand-built
aggregates (no database)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from analyzers.digest import build_digest, lever_split, previous_week, week_bounds
from analyzers.digest_types import PathStat, WeekAggregates, WorkflowSettingIn, WorkflowWeek
from analyzers.findings import Finding


def _f(trace: str, code: str, usd: float, wf: str = "support", msg: str = "fix it") -> Finding:
    return Finding.create(trace_id=trace, workflow=wf, code=code, node_ids=("n1",),
                          wasted_tokens=100, wasted_cost_usd=usd, savings_usd=usd,
                          confidence=0.9, evidence={}, message=msg)


def _week(spend: float, *wfs: WorkflowWeek, **kw: object) -> WeekAggregates:
    base = dict(spend_usd=spend, traces=sum(w.attempts for w in wfs), workflows=wfs,
                priced_kind_calls=100, unpriced_calls=0, untagged_spend_usd=0.0,
                spend_with_outcome_usd=spend, daily_spend_usd=(spend / 7,) * 7)
    base.update(kw)
    return WeekAggregates(**base)  # type: ignore[arg-type]


def test_week_bounds_and_previous_week() -> None:
    assert week_bounds("2026-W47")[:2] == ("2026-11-16", "2026-11-22")
    assert previous_week("2026-W47") == "2026-W46"
    assert previous_week("2021-W01") == "2020-W53"
    for bad in ("2026-47", "2026-W54", "W47", "2026-W00"):
        with pytest.raises(ValueError):
            week_bounds(bad)


@pytest.mark.parametrize("lever,change", [
    (0, dict(cost_usd=20.0, tokens=1000)),            # price per token doubled
    (1, dict(cost_usd=20.0, tokens=2000)),            # twice the tokens per attempt
    (2, dict(cost_usd=30.0, tokens=3000, attempts=30)),  # three attempts per outcome
])
def test_lever_split_names_the_lever_and_sums_to_the_change(lever: int,
                                                            change: dict[str, float]) -> None:
    before = WorkflowWeek("w", cost_usd=10.0, tokens=1000, attempts=10, outcomes=10)
    after = WorkflowWeek("w", **{**dict(cost_usd=10.0, tokens=1000, attempts=10, outcomes=10),
                                 **change})  # type: ignore[arg-type]
    s = lever_split(after, before)
    assert s is not None
    parts = (s.cost_per_token, s.tokens_per_attempt, s.attempts_per_outcome)
    assert s.dominant == ("cost_per_token", "tokens_per_attempt", "attempts_per_outcome")[lever]
    total = after.cost_usd / after.outcomes - before.cost_usd / before.outcomes
    assert math.isclose(sum(parts), total, abs_tol=1e-5)
    assert [i for i, p in enumerate(parts) if abs(p) > 1e-9] == [lever]


def test_mixed_change_parts_sum_exactly() -> None:
    a = WorkflowWeek("w", cost_usd=13.7, tokens=91_000, attempts=37, outcomes=29)
    b = WorkflowWeek("w", cost_usd=21.3, tokens=160_500, attempts=51, outcomes=33)
    s = lever_split(b, a)
    assert s is not None
    total = 21.3 / 33 - 13.7 / 29
    assert math.isclose(s.cost_per_token + s.tokens_per_attempt + s.attempts_per_outcome,
                        total, abs_tol=3e-6)
    assert lever_split(b, WorkflowWeek("w", 1.0, 10, 1, 0)) is None


def test_sections_rank_and_sum() -> None:
    cur = _week(100.0, WorkflowWeek("support", 60.0, 600_000, 60, 50),
                WorkflowWeek("claims", 40.0, 400_000, 40, 10))
    prev = _week(80.0, WorkflowWeek("support", 50.0, 500_000, 50, 50),
                 WorkflowWeek("claims", 30.0, 300_000, 30, 10))
    findings = [_f("t1", "churn.retry_storm", 5.0, "claims", "Cap retries at 2."),
                _f("t2", "churn.retry_storm", 3.0, "claims"),
                _f("t3", "bloat.unused_context", 4.0)]
    paths = [PathStat("claims", f"sig{i}", 10, 5, 10.0, float(i), (f"t{i}",)) for i in range(12)]
    cur = replace(cur, waste_by_code=(("churn.retry_storm", 8.0), ("bloat.unused_context", 4.0)))
    prev = replace(prev, waste_by_code=(("bloat.unused_context", 1.0),))
    d = build_digest(project="p", week="2026-W47", current=cur, previous=prev,
                     findings=findings, paths=paths,
                     settings=[WorkflowSettingIn("claims", 5.0, 20.0)])
    assert d.headline.spend_usd == 100.0 and d.headline.change_usd == 20.0
    assert d.headline.change_pct == 25.0 and d.headline.outcomes == 60
    assert d.headline.waste_usd == 12.0 and d.headline.waste_pct == 12.0
    assert [w.workflow for w in d.workflows] == ["support", "claims"]
    claims = d.workflows[1]
    assert claims.cost_per_outcome_usd == 4.0 and claims.previous_cost_per_outcome_usd == 3.0
    assert claims.levers is not None and claims.levers.dominant == "attempts_per_outcome"
    assert claims.savings_vs_baseline_usd == 10.0  # (5 - 4) × 10 outcomes
    assert claims.value_per_dollar == 5.0  # 10 × $20 / $40
    assert len(d.paths) == 10 and d.paths[0].signature == "sig11"  # sig0 wastes nothing
    top = d.findings[0]
    assert (top.code, top.count, top.wasted_usd, top.fix) == ("churn.retry_storm", 2, 8.0,
                                                              "Cap retries at 2.")
    assert top.example_trace_ids == ("t1", "t2")
    by_code = {c.code: c for c in d.waste_by_code}
    assert by_code["bloat.unused_context"].change_usd == 3.0
    assert by_code["churn.retry_storm"].count == 2 and d.waste_by_code[0].code == \
        "churn.retry_storm"
    assert d.maturity.rung == "Unit-economic"  # waste 12% > 10%


def test_empty_week_is_blind_and_says_so() -> None:
    d = build_digest(project="p", week="2026-W47", current=WeekAggregates(),
                     previous=WeekAggregates(), findings=())
    assert d.headline.spend_usd == 0 and d.headline.change_pct is None
    assert d.headline.cost_per_outcome_usd is None and d.workflows == ()
    assert d.maturity.rung == "Blind" and "No traces" in d.notes[0]


def test_no_outcomes_week() -> None:
    cur = _week(10.0, WorkflowWeek("support", 10.0, 1000, 5, 0), spend_with_outcome_usd=0.0)
    d = build_digest(project="p", week="2026-W47", current=cur, previous=WeekAggregates(),
                     findings=())
    w = d.workflows[0]
    assert w.cost_per_outcome_usd is None and w.levers is None and "undefined" in w.note
    assert d.maturity.rung == "Attributed"
    assert any("No successful outcomes" in n for n in d.notes)


def test_only_unpriced_models_week() -> None:
    cur = _week(0.0, WorkflowWeek("support", 0.0, 5000, 5, 5), priced_kind_calls=5,
                unpriced_calls=5, spend_with_outcome_usd=0.0)
    d = build_digest(project="p", week="2026-W47", current=cur, previous=WeekAggregates(),
                     findings=())
    assert d.coverage.unpriced_share == 1.0 and d.headline.spend_usd == 0.0
    assert d.maturity.rung == "Blind" and "100% of model calls have no known price" in \
        d.maturity.reasons[-1]
    assert any("5 of 5 model calls have no known price" in n for n in d.notes)


@pytest.mark.parametrize("kw,rung", [
    (dict(unpriced_calls=6), "Blind"),
    (dict(unpriced_calls=5, untagged_spend_usd=21.0), "Metered"),
    (dict(untagged_spend_usd=20.0, spend_with_outcome_usd=79.0), "Attributed"),
    (dict(), "Optimized"),
])
def test_maturity_thresholds(kw: dict[str, object], rung: str) -> None:
    cur = _week(100.0, WorkflowWeek("support", 100.0, 10_000, 10, 10),
                waste_by_code=(("churn.dead_end", 10.0),), **kw)
    d = build_digest(project="p", week="2026-W47", current=cur, previous=WeekAggregates(),
                     findings=[_f("t1", "churn.dead_end", 10.0)],
                     settings=[WorkflowSettingIn("support", 10.0)])
    assert d.maturity.rung == rung, d.maturity.reasons


def test_optimized_needs_a_met_baseline() -> None:
    cur = _week(100.0, WorkflowWeek("support", 100.0, 10_000, 10, 10))
    for settings, rung in (([], "Unit-economic"), ([WorkflowSettingIn("support", 9.99)],
                                                   "Unit-economic")):
        d = build_digest(project="p", week="2026-W47", current=cur, previous=WeekAggregates(),
                         findings=(), settings=settings)
        assert d.maturity.rung == rung
