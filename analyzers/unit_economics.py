"""Unit economics of a workflow: cost per successful outcome, its three levers, the retry
tail, and the period-over-period lever split (docs/methods.md, "Unit economics"; docs/analysis.md).

Identity: with spend ``C``, tokens ``N``, attempts ``A`` (traces) and successful outcomes
``S``, cost per outcome ``C/S = (C/N) * (N/A) * (A/S)`` — cost per token × tokens per attempt ×
attempts per outcome. With i.i.d. attempts of success probability ``p`` and mean attempt cost
``T``, the expected cost per success is ``T/p`` (cost-of-pass, docs/methods.md); attempts
are geometric, so the 95th-percentile number of attempts is ``ceil(ln 0.05 / ln(1-p))``.

The change between two periods is split with the additive log-mean Divisia index (LMDI-I;
Ang 2004, "Decomposition analysis for policymaking in energy", Energy Policy 32): with
``L(a, b) = (a - b) / (ln a - ln b)`` (``L(a, a) = a``), lever ``k`` explains
``L(V1, V0) * ln(x1k / x0k)``; since ``sum ln(x1k/x0k) = ln(V1/V0)`` the parts sum to
``V1 - V0`` with no residual. Zero values follow the analytical limit of Ang & Liu 2007
("Handling zero values in index decomposition analysis"): a lever that is zero in one period
only takes the whole change (shared equally when several are).

>>> lv = levers(cost=10.0, tokens=1000, attempts=4, outcomes=2)
>>> lv.cost_per_token, lv.tokens_per_attempt, lv.attempts_per_outcome, lv.cost_per_outcome
(0.01, 250.0, 2.0, 5.0)
>>> split = lmdi(lv, levers(cost=12.0, tokens=1000, attempts=4, outcomes=2))
>>> round(sum(split.parts.values()), 12), split.total
(1.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LEVERS", "LeverSplit", "Levers", "levers", "lmdi", "p95_attempts", "retry_tail"]

LEVERS = ("cost_per_token", "tokens_per_attempt", "attempts_per_outcome")


@dataclass(frozen=True)
class Levers:
    """The three factors of cost per successful outcome; ``None`` where undefined."""

    cost_per_token: float | None
    tokens_per_attempt: float | None
    attempts_per_outcome: float | None
    cost_per_outcome: float | None

    def factors(self) -> tuple[float, float, float] | None:
        x = (self.cost_per_token, self.tokens_per_attempt, self.attempts_per_outcome)
        if any(v is None for v in x):
            return None
        return (float(x[0] or 0.0), float(x[1] or 0.0), float(x[2] or 0.0))


def levers(*, cost: float, tokens: int, attempts: int, outcomes: int) -> Levers:
    """The decomposition of ``cost / outcomes``. Cost per token is undefined without tokens,
    the rest without attempts or outcomes; the three multiply back to cost per outcome."""
    cpo = cost / outcomes if outcomes else None
    cpt = cost / tokens if tokens else None
    tpa = tokens / attempts if attempts else None
    apo = attempts / outcomes if outcomes else None
    return Levers(cpt, tpa, apo, cpo)


@dataclass(frozen=True)
class LeverSplit:
    """How much of ``total`` (the change in cost per outcome) each lever explains."""

    before: float
    after: float
    total: float
    parts: dict[str, float]

    @property
    def dominant(self) -> str:
        return max(self.parts, key=lambda k: (abs(self.parts[k]), k))


def _logmean(a: float, b: float) -> float:
    """``L(a, b)``. Near ``a == b`` the log of the ratio is taken with ``log1p`` of the exact
    difference (Sterbenz: ``a - b`` is exact within a factor 2), elsewhere of the ratio."""
    if a == b:
        return a
    den = math.log1p((a - b) / b) if 0.5 < a / b < 2.0 else math.log(a / b)
    return (a - b) / den if den else (a + b) / 2


def lmdi(before: Levers, after: Levers) -> LeverSplit | None:
    """LMDI-I split of ``after.cost_per_outcome - before.cost_per_outcome`` among the levers;
    ``None`` when either period has no defined decomposition (no tokens or no outcome).

    >>> s = lmdi(levers(cost=0.0, tokens=10, attempts=1, outcomes=1),
    ...          levers(cost=3.0, tokens=10, attempts=1, outcomes=1))
    >>> s.parts
    {'cost_per_token': 3.0, 'tokens_per_attempt': 0.0, 'attempts_per_outcome': 0.0}
    """
    x0, x1 = before.factors(), after.factors()
    if x0 is None or x1 is None:
        return None
    v0, v1 = math.prod(x0), math.prod(x1)
    total = v1 - v0
    zero = [k for k in range(3) if (x0[k] == 0) != (x1[k] == 0)]
    if zero:  # analytical limit: the zero lever(s) carry the whole change
        parts = [total / len(zero) if k in zero else 0.0 for k in range(3)]
    elif v0 == 0 and v1 == 0:  # the same lever is zero in both periods: nothing changed
        parts = [0.0, 0.0, 0.0]
    else:
        w = _logmean(v1, v0)
        parts = [w * math.log(x1[k] / x0[k]) for k in range(3)]
    return LeverSplit(v0, v1, total, dict(zip(LEVERS, parts, strict=True)))


def retry_tail(mean_attempt_cost: float | None, p: float | None) -> float | None:
    """``T/p``: expected cost per success with i.i.d. attempts (docs/methods.md).

    >>> retry_tail(0.5, 0.25)
    2.0
    """
    if mean_attempt_cost is None or not p:
        return None
    return mean_attempt_cost / p


def p95_attempts(p: float | None) -> int | None:
    """95th percentile of the geometric number of attempts, ``ceil(ln 0.05 / ln(1-p))``.

    >>> [p95_attempts(p) for p in (0.9, 0.7, 0.5, 0.3, 0.1)]
    [2, 3, 5, 9, 29]
    """
    if p is None or p <= 0:
        return None
    if p >= 1:
        return 1
    return max(1, math.ceil(math.log(0.05) / math.log(1 - p)))
