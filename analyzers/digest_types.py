"""The weekly digest's value types: what :func:`analyzers.digest.build_digest` takes and returns.

Inputs are plain aggregates the storage side computes for one ISO week (``WeekAggregates``,
``WorkflowWeek``, ``PathStat``) plus :class:`analyzers.findings.Finding` values; the output is a
``Digest``, frozen all the way down so renderers cannot change it. Money is USD, rounded to
micro-dollars (``MONEY_DP``) so rendered files are byte-stable across platforms.

>>> WorkflowWeek(workflow="w", cost_usd=2.0, tokens=1000, attempts=4, outcomes=2).cost_per_outcome
1.0
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LEVERS",
    "MONEY_DP",
    "CodeWaste",
    "Coverage",
    "Digest",
    "FindingGroup",
    "Headline",
    "LeverSplit",
    "Maturity",
    "PathDigest",
    "PathStat",
    "Savings",
    "SavingsRisk",
    "SavingsWorkflow",
    "SimulatedWorkflow",
    "SimulationIn",
    "WeekAggregates",
    "WorkflowDigest",
    "WorkflowSettingIn",
    "WorkflowWeek",
]

# Micro-dollars: finer than any per-call price genai-prices lists, coarse enough for stable text.
MONEY_DP = 6

# The three levers of cost per outcome (docs/analysis.md): their product is cost per successful
# outcome.
LEVERS = ("cost_per_token", "tokens_per_attempt", "attempts_per_outcome")


@dataclass(frozen=True)
class WorkflowWeek:
    """One workflow's unit economics in one week. An *attempt* is a trace; an *outcome* is a
    successful business outcome of a task the workflow served."""

    workflow: str
    cost_usd: float
    tokens: int
    attempts: int
    outcomes: int
    value_usd: float = 0.0

    @property
    def cost_per_outcome(self) -> float | None:
        return self.cost_usd / self.outcomes if self.outcomes else None


@dataclass(frozen=True)
class WeekAggregates:
    """Everything the digest needs about one week of one project, apart from findings."""

    spend_usd: float = 0.0
    traces: int = 0
    # Spend of each UTC day, Monday first (7 values for a full week).
    daily_spend_usd: tuple[float, ...] = ()
    workflows: tuple[WorkflowWeek, ...] = ()
    # Calls of priced kinds (llm, embedding, …) and how many of them had no known price.
    priced_kind_calls: int = 0
    unpriced_calls: int = 0
    # Spend of traces with no team (the allocation key, docs/data-model.md).
    untagged_spend_usd: float = 0.0
    # Spend of traces whose task has any recorded outcome (success or not).
    spend_with_outcome_usd: float = 0.0
    # Model output a human rejected, edited or overrode: count and its cost.
    overrides: int = 0
    override_cost_usd: float = 0.0
    # Waste booked per finding code by attribution: exactly the findings' waste (never more
    # than a node's cost; off-path cost no finding explains is not waste), as (code, USD).
    waste_by_code: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class PathStat:
    """One path signature of one workflow in the week (docs/analysis.md, "Paths")."""

    workflow: str
    signature: str
    traces: int
    successes: int
    cost_usd: float
    waste_usd: float
    example_trace_ids: tuple[str, ...] = ()
    # Traces whose task has any outcome: the success rate's denominator (None = all traces).
    decided: int | None = None


@dataclass(frozen=True)
class WorkflowSettingIn:
    """A workflow's reference numbers: the baseline cost per outcome (e.g. the BPO price paid
    to a business-process outsourcer for the same outcome) and the value of one outcome."""

    name: str
    baseline_cost_per_outcome_usd: float | None = None
    outcome_value_usd: float | None = None


@dataclass(frozen=True)
class SimulatedWorkflow:
    """One workflow's spend and cost per successful outcome before and after a simulated
    scenario (``POST /api/v1/simulate``'s per-workflow blocks)."""

    workflow: str
    spend_usd: float
    after_spend_usd: float
    saving_usd: float
    cost_per_outcome_usd: float | None
    after_cost_per_outcome_usd: float | None


@dataclass(frozen=True)
class SavingsRisk:
    """An outcome the scenario might change (the simulator's ``risks``)."""

    workflow: str | None
    step: str | None
    to_model: str
    reason: str


@dataclass(frozen=True)
class SimulationIn:
    """The simulator's answer for the week with the fixes of ``fix_codes`` applied."""

    fix_codes: tuple[str, ...]
    spend_usd: float
    after_spend_usd: float
    saving_usd: float
    workflows: tuple[SimulatedWorkflow, ...] = ()
    risks: tuple[SavingsRisk, ...] = ()


@dataclass(frozen=True)
class Headline:
    spend_usd: float
    previous_spend_usd: float
    change_usd: float
    change_pct: float | None
    traces: int
    outcomes: int
    cost_per_outcome_usd: float | None
    waste_usd: float
    waste_pct: float | None


@dataclass(frozen=True)
class LeverSplit:
    """How much of the change in cost per outcome each lever explains (LMDI; sums to total)."""

    cost_per_token: float
    tokens_per_attempt: float
    attempts_per_outcome: float
    dominant: str


@dataclass(frozen=True)
class WorkflowDigest:
    workflow: str
    spend_usd: float
    attempts: int
    outcomes: int
    cost_per_outcome_usd: float | None
    previous_cost_per_outcome_usd: float | None
    change_usd: float | None
    cost_per_token_usd: float | None
    tokens_per_attempt: float | None
    attempts_per_outcome: float | None
    levers: LeverSplit | None
    baseline_cost_per_outcome_usd: float | None
    savings_vs_baseline_usd: float | None
    value_per_dollar: float | None
    note: str


@dataclass(frozen=True)
class PathDigest:
    workflow: str
    signature: str
    traces: int
    success_rate: float | None
    cost_usd: float
    waste_usd: float
    cost_per_outcome_usd: float | None
    example_trace_ids: tuple[str, ...]


@dataclass(frozen=True)
class FindingGroup:
    """Findings of one code in one workflow; ``fix`` is the largest one's message."""

    code: str
    workflow: str | None
    count: int
    wasted_usd: float
    savings_usd: float
    fix: str
    example_trace_ids: tuple[str, ...]


@dataclass(frozen=True)
class CodeWaste:
    code: str
    wasted_usd: float
    previous_wasted_usd: float
    change_usd: float
    count: int


@dataclass(frozen=True)
class Coverage:
    unpriced_calls: int
    priced_kind_calls: int
    unpriced_share: float | None
    untagged_spend_usd: float
    untagged_share: float | None
    outcome_spend_share: float | None


@dataclass(frozen=True)
class Maturity:
    rung: str
    level: int
    reasons: tuple[str, ...]
    next_step: str


@dataclass(frozen=True)
class SavingsWorkflow:
    workflow: str
    spend_usd: float
    after_spend_usd: float
    saving_usd: float
    cost_per_outcome_usd: float | None
    after_cost_per_outcome_usd: float | None


@dataclass(frozen=True)
class Savings:
    """What the fixes of the week's top finding codes would have saved (docs/digest.md)."""

    fix_codes: tuple[str, ...]
    spend_usd: float
    after_spend_usd: float
    saving_usd: float
    saving_pct: float | None
    workflows: tuple[SavingsWorkflow, ...]
    risks: tuple[SavingsRisk, ...]


@dataclass(frozen=True)
class Digest:
    """The weekly churn digest of one project (docs/digest.md)."""

    project: str
    week: str
    week_start: str
    week_end: str
    previous_week: str
    headline: Headline
    daily_spend_usd: tuple[float, ...]
    workflows: tuple[WorkflowDigest, ...]
    paths: tuple[PathDigest, ...]
    findings: tuple[FindingGroup, ...]
    waste_by_code: tuple[CodeWaste, ...]
    overrides: int
    override_cost_usd: float
    coverage: Coverage
    maturity: Maturity
    notes: tuple[str, ...]
    # The fixes of the week's top codes, re-priced by the savings simulator; None when the
    # week booked no waste (nothing to save) or the simulation was not run.
    savings: Savings | None = None
