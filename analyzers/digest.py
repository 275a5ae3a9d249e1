"""Build the weekly churn digest (docs/digest.md) from one week's aggregates and findings.

Pure: aggregates and findings in, a frozen :class:`Digest` out. The week is an argument —
nothing here reads the clock, the database or the network. Renderers (Markdown, JSON, HTML)
live in :mod:`tracestore.digest`.

Cost per successful outcome is the product of three levers (docs/analysis.md)::

    cost/outcome = cost/token × tokens/attempt × attempts/outcome

and its week-over-week change is split between them with the log-mean Divisia index (LMDI-I,
Ang 2004), whose parts sum exactly to the change.

>>> week_bounds("2026-W47")
('2026-11-16', '2026-11-22', 1794787200.0, 1795392000.0)
>>> previous_week("2026-W01")
'2025-W52'
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from analyzers.digest_types import (
    MONEY_DP,
    CodeWaste,
    Coverage,
    Digest,
    FindingGroup,
    Headline,
    LeverSplit,
    Maturity,
    PathDigest,
    PathStat,
    Savings,
    SavingsWorkflow,
    SimulationIn,
    WeekAggregates,
    WorkflowDigest,
    WorkflowSettingIn,
    WorkflowWeek,
)
from analyzers.maturity import assess
from analyzers.unit_economics import Levers, levers, lmdi

__all__ = ["EXAMPLES", "SAVINGS_CODES", "TOP_N", "FindingLike", "build_digest", "group_findings",
           "lever_split",
           "previous_week", "rank_finding_groups", "top_fix_codes", "week_bounds", "week_of"]

# The issue asks for the top 10 wasteful paths and findings: what fits one chat message.
TOP_N = 10
# Example trace ids per path or finding group: enough to click through, short enough to read.
EXAMPLES = 3
# "What the top fixes would have saved": the fixes of the week's 3 costliest finding codes.
SAVINGS_CODES = 3
_WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")


def week_bounds(week: str) -> tuple[str, str, float, float]:
    """ISO week → (first day, last day, start epoch, end epoch) in UTC; ``ValueError`` if bad."""
    m = _WEEK_RE.match(week)
    if not m:
        raise ValueError(f"week must look like 2026-W47, got {week!r}")
    try:
        monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    except ValueError as exc:
        raise ValueError(f"{week!r} is not an ISO week: {exc}") from None
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC).timestamp()
    return (monday.isoformat(), (monday + timedelta(days=6)).isoformat(), start, start + 7 * 86400)


def week_of(ts: float) -> str:
    """The ISO week (UTC) containing epoch time ``ts``.

    >>> week_of(1795424400.0)  # Monday 2026-11-23 09:00 UTC
    '2026-W48'
    """
    year, num, _ = datetime.fromtimestamp(ts, UTC).isocalendar()
    return f"{year}-W{num:02d}"


def previous_week(week: str) -> str:
    """The ISO week before ``week``."""
    monday = date.fromisoformat(week_bounds(week)[0]) - timedelta(days=7)
    year, num, _ = monday.isocalendar()
    return f"{year}-W{num:02d}"


def _m(x: float) -> float:
    return round(x, MONEY_DP)


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _levers(w: WorkflowWeek) -> Levers:
    return levers(cost=w.cost_usd, tokens=w.tokens, attempts=w.attempts, outcomes=w.outcomes)


def lever_split(current: WorkflowWeek, previous: WorkflowWeek) -> LeverSplit | None:
    """The LMDI split of :func:`analyzers.unit_economics.lmdi`, rounded, with the dominant
    lever named; ``None`` when either week has no defined decomposition.

    >>> a = WorkflowWeek("w", cost_usd=10.0, tokens=1000, attempts=10, outcomes=10)
    >>> b = WorkflowWeek("w", cost_usd=20.0, tokens=2000, attempts=10, outcomes=10)
    >>> s = lever_split(b, a); round(s.tokens_per_attempt, 6), s.dominant
    (1.0, 'tokens_per_attempt')
    """
    split = lmdi(_levers(previous), _levers(current))
    if split is None:
        return None
    p = split.parts
    return LeverSplit(cost_per_token=_m(p["cost_per_token"]),
                      tokens_per_attempt=_m(p["tokens_per_attempt"]),
                      attempts_per_outcome=_m(p["attempts_per_outcome"]), dominant=split.dominant)


def _workflow(cur: WorkflowWeek, prev: WorkflowWeek | None,
              setting: WorkflowSettingIn | None) -> WorkflowDigest:
    cpo = cur.cost_per_outcome
    prev_cpo = prev.cost_per_outcome if prev else None
    levers = lever_split(cur, prev) if prev else None
    now = _levers(cur).factors() if cur.outcomes else None
    baseline = setting.baseline_cost_per_outcome_usd if setting else None
    value = setting.outcome_value_usd if setting else None
    outcome_value = cur.value_usd or (value * cur.outcomes if value else 0.0)
    if cur.outcomes == 0:
        note = "no successful outcomes this week: cost per outcome is undefined"
    elif prev is None or prev_cpo is None:
        note = "no comparable previous week"
    elif levers is not None:
        note = f"driven by {levers.dominant.replace('_', ' ')}"
    else:
        note = ""
    return WorkflowDigest(
        workflow=cur.workflow, spend_usd=_m(cur.cost_usd), attempts=cur.attempts,
        outcomes=cur.outcomes,
        cost_per_outcome_usd=_m(cpo) if cpo is not None else None,
        previous_cost_per_outcome_usd=_m(prev_cpo) if prev_cpo is not None else None,
        change_usd=_m(cpo - prev_cpo) if cpo is not None and prev_cpo is not None else None,
        cost_per_token_usd=round(now[0], 12) if now else None,
        tokens_per_attempt=round(now[1], 2) if now else None,
        attempts_per_outcome=round(now[2], 4) if now else None,
        levers=levers,
        baseline_cost_per_outcome_usd=baseline,
        savings_vs_baseline_usd=(_m((baseline - cpo) * cur.outcomes)
                                 if baseline is not None and cpo is not None else None),
        value_per_dollar=(round(outcome_value / cur.cost_usd, 4)
                          if outcome_value and cur.cost_usd else None),
        note=note,
    )


def _paths(paths: Iterable[PathStat]) -> tuple[PathDigest, ...]:
    ranked = sorted(paths, key=lambda p: (-p.waste_usd, -p.cost_usd, p.workflow, p.signature))
    return tuple(
        PathDigest(
            workflow=p.workflow, signature=p.signature, traces=p.traces,
            success_rate=_share(p.successes, p.traces if p.decided is None else p.decided),
            cost_usd=_m(p.cost_usd),
            waste_usd=_m(p.waste_usd),
            cost_per_outcome_usd=_m(p.cost_usd / p.successes) if p.successes else None,
            example_trace_ids=tuple(p.example_trace_ids[:EXAMPLES]),
        )
        for p in ranked[:TOP_N] if p.waste_usd > 0
    )


class FindingLike(Protocol):
    """What the grouping reads of a finding (:class:`analyzers.findings.Finding` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def trace_id(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def workflow(self) -> str | None: ...
    @property
    def wasted_cost_usd(self) -> float: ...
    @property
    def savings_usd(self) -> float: ...
    @property
    def message(self) -> str: ...


def group_findings(findings: Iterable[FindingLike]) -> tuple[FindingGroup, ...]:
    """Findings grouped by code and workflow (no workflow and ``""`` are one group), sums not
    rounded (added costliest first), in no particular order: ``fix`` is the message of the
    group's costliest finding (ties by trace id, then id), the examples its first
    :data:`EXAMPLES` distinct traces in that order."""
    groups: dict[tuple[str, str], list[FindingLike]] = defaultdict(list)
    for f in findings:
        groups[(f.code, f.workflow or "")].append(f)
    out = []
    for (code, workflow), fs in groups.items():
        fs.sort(key=lambda f: (-f.wasted_cost_usd, f.trace_id, f.id))
        out.append(FindingGroup(
            code=code, workflow=workflow or None, count=len(fs),
            wasted_usd=sum(f.wasted_cost_usd for f in fs),
            savings_usd=sum(f.savings_usd for f in fs), fix=fs[0].message,
            example_trace_ids=tuple(dict.fromkeys(f.trace_id for f in fs))[:EXAMPLES],
        ))
    return tuple(out)


def rank_finding_groups(groups: Iterable[FindingGroup]) -> list[FindingGroup]:
    """Groups with their dollars rounded, costliest first (ties by code, then workflow)."""
    out = [replace(g, wasted_usd=_m(g.wasted_usd), savings_usd=_m(g.savings_usd))
           for g in groups]
    out.sort(key=lambda g: (-g.wasted_usd, g.code, g.workflow or ""))
    return out


def _by_code(current: WeekAggregates, previous: WeekAggregates,
             groups: Sequence[FindingGroup]) -> tuple[CodeWaste, ...]:
    now, before = dict(current.waste_by_code), dict(previous.waste_by_code)
    count: dict[str, int] = defaultdict(int)
    for g in groups:
        count[g.code] += g.count
    rows = [CodeWaste(c, _m(now.get(c, 0.0)), _m(before.get(c, 0.0)),
                      _m(now.get(c, 0.0) - before.get(c, 0.0)), count[c])
            for c in set(now) | set(before)]
    return tuple(sorted(rows, key=lambda r: (-r.wasted_usd, -r.previous_wasted_usd, r.code)))


def top_fix_codes(waste_by_code: Iterable[tuple[str, float]],
                  n: int = SAVINGS_CODES) -> tuple[str, ...]:
    """The ``n`` finding codes with the most booked waste this week (ties by code name),
    leaving out codes with none: the fixes the digest's savings section simulates.

    >>> top_fix_codes([("a", 1.0), ("b", 5.0), ("c", 0.0), ("d", 5.0), ("e", 2.0)])
    ('b', 'd', 'e')
    """
    ranked = sorted(((c, usd) for c, usd in waste_by_code if usd > 0),
                    key=lambda r: (-r[1], r[0]))
    return tuple(c for c, _ in ranked[:n])


def _savings(sim: SimulationIn | None) -> Savings | None:
    """The savings section from the simulator's answer, rounded like the rest of the digest;
    workflows by saving, largest first."""
    if sim is None or not sim.fix_codes:
        return None
    rows = sorted(sim.workflows, key=lambda w: (-w.saving_usd, w.workflow))
    return Savings(
        fix_codes=sim.fix_codes, spend_usd=_m(sim.spend_usd),
        after_spend_usd=_m(sim.after_spend_usd), saving_usd=_m(sim.saving_usd),
        saving_pct=(round(sim.saving_usd / sim.spend_usd * 100, 1) if sim.spend_usd
                    else None),
        workflows=tuple(SavingsWorkflow(
            workflow=w.workflow, spend_usd=_m(w.spend_usd), after_spend_usd=_m(w.after_spend_usd),
            saving_usd=_m(w.saving_usd),
            cost_per_outcome_usd=(_m(w.cost_per_outcome_usd)
                                  if w.cost_per_outcome_usd is not None else None),
            after_cost_per_outcome_usd=(_m(w.after_cost_per_outcome_usd)
                                        if w.after_cost_per_outcome_usd is not None else None))
            for w in rows),
        risks=sim.risks,
    )


def _headline(current: WeekAggregates, previous: WeekAggregates) -> Headline:
    outcomes = sum(w.outcomes for w in current.workflows)
    waste = sum(usd for _, usd in current.waste_by_code)
    spend = current.spend_usd
    return Headline(
        spend_usd=_m(spend), previous_spend_usd=_m(previous.spend_usd),
        change_usd=_m(spend - previous.spend_usd),
        change_pct=(round((spend - previous.spend_usd) / previous.spend_usd * 100, 1)
                    if previous.spend_usd else None),
        traces=current.traces, outcomes=outcomes,
        cost_per_outcome_usd=_m(spend / outcomes) if outcomes else None,
        waste_usd=_m(waste), waste_pct=round(waste / spend * 100, 1) if spend else None,
    )


def _coverage(current: WeekAggregates) -> Coverage:
    spend = current.spend_usd
    return Coverage(
        unpriced_calls=current.unpriced_calls, priced_kind_calls=current.priced_kind_calls,
        unpriced_share=_share(current.unpriced_calls, current.priced_kind_calls),
        untagged_spend_usd=_m(current.untagged_spend_usd),
        untagged_share=_share(current.untagged_spend_usd, spend),
        outcome_spend_share=_share(current.spend_with_outcome_usd, spend),
    )


def _maturity(current: WeekAggregates, coverage: Coverage,
              workflows: Sequence[WorkflowDigest]) -> Maturity:
    waste = sum(usd for _, usd in current.waste_by_code)
    with_baseline = [w for w in workflows if w.baseline_cost_per_outcome_usd is not None]
    return assess(
        traces=current.traces, priced_kind_calls=current.priced_kind_calls,
        unpriced_share=coverage.unpriced_share, untagged_share=coverage.untagged_share,
        outcome_spend_share=coverage.outcome_spend_share,
        workflows_with_outcomes=sum(1 for w in workflows if w.outcomes),
        waste_share=_share(waste, current.spend_usd), baselines_set=len(with_baseline),
        over_baseline=[w.workflow for w in with_baseline
                       if w.cost_per_outcome_usd is None
                       or w.cost_per_outcome_usd > (w.baseline_cost_per_outcome_usd or 0.0)],
    )


def _notes(week: str, current: WeekAggregates, outcomes: int) -> tuple[str, ...]:
    notes: list[str] = []
    if current.traces == 0:
        notes.append(f"No traces were recorded in {week}.")
    elif outcomes == 0:
        notes.append("No successful outcomes were recorded: cost per outcome is undefined.")
    if current.unpriced_calls:
        notes.append(f"{current.unpriced_calls} of {current.priced_kind_calls} model calls have "
                     "no known price; spend excludes them (never counted as $0).")
    return tuple(notes)


def _workflows(current: WeekAggregates, previous: WeekAggregates,
               settings: Iterable[WorkflowSettingIn]) -> tuple[WorkflowDigest, ...]:
    by_name = {s.name: s for s in settings}
    prev_wf = {w.workflow: w for w in previous.workflows}
    return tuple(_workflow(w, prev_wf.get(w.workflow), by_name.get(w.workflow))
                 for w in sorted(current.workflows, key=lambda w: (-w.cost_usd, w.workflow)))


def build_digest(
    *,
    project: str,
    week: str,
    current: WeekAggregates,
    previous: WeekAggregates,
    findings: Iterable[FindingLike] = (),
    finding_groups: Sequence[FindingGroup] | None = None,
    paths: Iterable[PathStat] = (),
    settings: Iterable[WorkflowSettingIn] = (),
    simulation: SimulationIn | None = None,
) -> Digest:
    """Assemble the digest of ``week`` (``"2026-W47"``) for ``project``.

    Waste totals come from the aggregates (attribution's booked waste per code); ``findings``
    (the week's stored findings), or their ``finding_groups`` (:func:`group_findings`) when
    given, the top-findings section and the count per code;
    ``simulation`` (the simulator run with the fixes of :func:`top_fix_codes`) the savings.

    >>> d = build_digest(project="p", week="2026-W47", current=WeekAggregates(),
    ...                  previous=WeekAggregates(), findings=())
    >>> d.maturity.rung, d.notes[0]
    ('Blind', 'No traces were recorded in 2026-W47.')
    """
    first, last, _, _ = week_bounds(week)
    groups = group_findings(findings) if finding_groups is None else tuple(finding_groups)
    workflows = _workflows(current, previous, settings)
    headline = _headline(current, previous)
    coverage = _coverage(current)
    return Digest(
        project=project, week=week, week_start=first, week_end=last,
        previous_week=previous_week(week), headline=headline,
        daily_spend_usd=tuple(_m(x) for x in current.daily_spend_usd),
        workflows=workflows, paths=_paths(paths),
        findings=tuple(rank_finding_groups(groups)[:TOP_N]),
        waste_by_code=_by_code(current, previous, groups),
        overrides=current.overrides, override_cost_usd=_m(current.override_cost_usd),
        coverage=coverage, maturity=_maturity(current, coverage, workflows),
        notes=_notes(week, current, headline.outcomes), savings=_savings(simulation),
    )
