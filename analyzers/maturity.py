"""The maturity rung one week of data supports: Blind → Metered → Attributed → Unit-economic →
Optimized. Each rung requires the one below it; the first rule that fails decides the rung.

Rules (README, "Weekly digest", repeats them for users):

1. **Metered** — the week has traces, at least one call of a priced kind, and at most
   ``MAX_UNPRICED_SHARE`` of those calls have no known price.
2. **Attributed** — at most ``MAX_UNTAGGED_SHARE`` of spend sits on traces with no team.
3. **Unit-economic** — at least ``MIN_OUTCOME_SPEND_SHARE`` of spend is on traces whose task has
   a recorded outcome, and at least one workflow has a successful outcome.
4. **Optimized** — waste found by the analyzers is at most ``MAX_WASTE_SHARE`` of spend, at least
   one workflow has a baseline cost per outcome, and no workflow is above its baseline.

>>> assess(traces=0, priced_kind_calls=0, unpriced_share=None, untagged_share=None,
...        outcome_spend_share=None, workflows_with_outcomes=0, waste_share=None,
...        baselines_set=0, over_baseline=()).rung
'Blind'
"""

from __future__ import annotations

from collections.abc import Sequence

from analyzers.digest_types import Maturity

__all__ = [
    "MAX_UNPRICED_SHARE",
    "MAX_UNTAGGED_SHARE",
    "MAX_WASTE_SHARE",
    "MIN_OUTCOME_SPEND_SHARE",
    "RUNGS",
    "assess",
]

RUNGS = ("Blind", "Metered", "Attributed", "Unit-economic", "Optimized")

# tracestore's choice: beyond 5% of calls unpriced, the spend total is no longer a bill a
# finance team can reconcile against the vendor invoice.
MAX_UNPRICED_SHARE = 0.05
# FinOps Foundation maturity guidance: "walk" allocates about 80% of spend to an owner.
MAX_UNTAGGED_SHARE = 0.20
# Same 80% bar, applied to outcomes: most spend must be traceable to a business result.
MIN_OUTCOME_SPEND_SHARE = 0.80
# tracestore's choice: a tenth of spend is the waste level below which fixing further
# findings rarely beats other work.
MAX_WASTE_SHARE = 0.10


def _pct(x: float) -> str:
    """``0.101`` → ``'10.1%'``, ``0.1`` → ``'10%'``."""
    return f"{x * 100:.1f}".removesuffix(".0") + "%"


def assess(
    *,
    traces: int,
    priced_kind_calls: int,
    unpriced_share: float | None,
    untagged_share: float | None,
    outcome_spend_share: float | None,
    workflows_with_outcomes: int,
    waste_share: float | None,
    baselines_set: int,
    over_baseline: Sequence[str],
) -> Maturity:
    """Climb the ladder until a rule fails; ``reasons`` says why each rung was (not) reached."""
    reasons: list[str] = []

    def stop(level: int, why: str, step: str) -> Maturity:
        return Maturity(RUNGS[level], level, (*reasons, why), step)

    if traces == 0 or priced_kind_calls == 0:
        return stop(0, "no model calls were recorded this week",
                    "send traces from every agent (OTLP or the native API)")
    if unpriced_share is None or unpriced_share > MAX_UNPRICED_SHARE:
        share = _pct(unpriced_share or 0.0)
        return stop(0, f"{share} of model calls have no known price "
                       f"(Metered needs at most {_pct(MAX_UNPRICED_SHARE)})",
                    "add price-book entries for the unpriced models (PUT /api/v1/prices)")
    reasons.append(f"{_pct(1 - unpriced_share)} of model calls are priced")
    if untagged_share is None or untagged_share > MAX_UNTAGGED_SHARE:
        return stop(1, f"{_pct(untagged_share or 0.0)} of spend has no team "
                       f"(Attributed needs at most {_pct(MAX_UNTAGGED_SHARE)})",
                    "set tracestore.team on every trace")
    reasons.append(f"{_pct(1 - untagged_share)} of spend is attributed to a team")
    if (outcome_spend_share is None or outcome_spend_share < MIN_OUTCOME_SPEND_SHARE
            or workflows_with_outcomes == 0):
        return stop(2, f"{_pct(outcome_spend_share or 0.0)} of spend is linked to an outcome "
                       f"(Unit-economic needs {_pct(MIN_OUTCOME_SPEND_SHARE)} and a success)",
                    "record outcomes per task (POST /api/v1/outcomes)")
    reasons.append(f"{_pct(outcome_spend_share)} of spend is linked to an outcome")
    if waste_share is None or waste_share > MAX_WASTE_SHARE:
        return stop(3, f"waste is {_pct(waste_share or 0.0)} of spend "
                       f"(Optimized needs at most {_pct(MAX_WASTE_SHARE)})",
                    "fix the top wasteful paths below")
    if baselines_set == 0:
        return stop(3, "no workflow has a baseline cost per outcome",
                    "set a baseline (e.g. the BPO price) with PUT /api/v1/workflows/{name}")
    if over_baseline:
        return stop(3, "above baseline: " + ", ".join(over_baseline),
                    "bring those workflows under their baseline")
    reasons.append(f"waste is {_pct(waste_share)} of spend and every baseline is met")
    return Maturity(RUNGS[4], 4, tuple(reasons), "keep it there")
