"""Alert rules: their wire shape, what each measures and the pure firing decision.

>>> r = AlertRuleIn(name="budget", kind="spend_over_budget", threshold=100.0)
>>> decide(r, value=120.0, firing=False)
'fire'
>>> decide(r, value=120.0, firing=True) is None  # not repeated until it clears
True
>>> decide(r, value=80.0, firing=True)
'clear'
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["KINDS", "AlertRuleIn", "AlertsIn", "decide", "describe"]

Kind = Literal["cost_per_outcome_above_baseline", "cost_per_outcome_increase",
               "spend_over_budget", "unpriced_share_over"]
KINDS: tuple[str, ...] = ("cost_per_outcome_above_baseline", "cost_per_outcome_increase",
                          "spend_over_budget", "unpriced_share_over")
Dimension = Literal["project", "workflow", "team", "feature", "user"]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\- ]+$")]


class AlertRuleIn(BaseModel):
    """One rule. ``threshold`` is in the rule's unit: USD for a budget, percent for an
    increase, a share (0–1) for the unpriced share; unused by ``…_above_baseline`` (the
    workflow's stored baseline is the threshold)."""

    # strict: a threshold sent as the string "1" is refused, as the schema says (a number)
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name
    kind: Kind
    workflow: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="The workflow a cost-per-outcome rule watches (required for those).")
    dimension: Dimension = Field("project", description="What a budget is for: the whole "
                                 "project (tenant), or one workflow, team, feature or user.")
    value: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="The workflow/team/feature/user a budget is for.")
    threshold: Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)] | None = None
    window_days: Annotated[float, Field(gt=0, le=366)] = Field(
        7.0, description="Rolling window the rule measures (the comparison period of an "
        "increase is the window before it).")
    webhook_url: Annotated[str, Field(max_length=2000, pattern=r"^https?://")] | None = Field(
        None, description="Where firings are posted; default the alert_webhook_url setting.")

    @model_validator(mode="after")
    def _complete(self) -> AlertRuleIn:
        if self.kind.startswith("cost_per_outcome") and not self.workflow:
            raise ValueError(f"{self.kind} needs a workflow")
        if self.kind != "cost_per_outcome_above_baseline" and self.threshold is None:
            raise ValueError(f"{self.kind} needs a threshold")
        if self.kind == "unpriced_share_over" and (self.threshold or 0) > 1:
            raise ValueError("unpriced_share_over takes a share between 0 and 1")
        if self.kind == "spend_over_budget" and self.dimension != "project" and not self.value:
            raise ValueError(f"a budget for a {self.dimension} needs its value")
        return self


class AlertsIn(BaseModel):
    """The project's whole rule set (``PUT`` replaces it)."""

    model_config = ConfigDict(extra="forbid")
    rules: list[AlertRuleIn] = Field(max_length=200)

    @model_validator(mode="after")
    def _unique(self) -> AlertsIn:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique: {', '.join(dupes)}")
        return self


def decide(rule: AlertRuleIn, *, value: float | None, firing: bool,
           baseline: float | None = None) -> Literal["fire", "clear"] | None:
    """``fire`` when the condition starts to hold, ``clear`` when it stops, else None. A rule
    without data (no outcome, no spend, no baseline) neither fires nor clears."""
    if value is None:
        return None
    limit = baseline if rule.kind == "cost_per_outcome_above_baseline" else rule.threshold
    if limit is None:
        return None
    holds = value > limit
    if holds and not firing:
        return "fire"
    if not holds and firing:
        return "clear"
    return None


def describe(rule: AlertRuleIn, value: float, limit: float) -> str:
    """One sentence for the webhook and the event record (producer strings escaped later)."""
    days = f"{rule.window_days:g} day(s)"
    if rule.kind == "cost_per_outcome_above_baseline":
        return (f"cost per successful outcome of {rule.workflow} is ${value:,.4f} over the last "
                f"{days}, above its baseline of ${limit:,.4f}")
    if rule.kind == "cost_per_outcome_increase":
        return (f"cost per successful outcome of {rule.workflow} rose {value:,.1f}% against the "
                f"{days} before (limit {limit:g}%)")
    if rule.kind == "spend_over_budget":
        who = "the project" if rule.dimension == "project" else f"{rule.dimension} {rule.value}"
        return f"spend of {who} is ${value:,.4f} over the last {days}, budget ${limit:,.2f}"
    return (f"{value:.1%} of model calls in the last {days} have no price (limit "
            f"{limit:.1%})")
