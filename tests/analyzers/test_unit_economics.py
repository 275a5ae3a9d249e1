"""Cost-per-outcome levers, the retry tail and the LMDI split of a change."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzers.paths import TracePath, collapse, group_paths
from analyzers.unit_economics import levers, lmdi, p95_attempts, retry_tail


def test_three_levers_multiply_back_to_cost_per_outcome() -> None:
    # $12 over 3 attempts of 2,000 tokens each, one success.
    lv = levers(cost=12.0, tokens=6000, attempts=3, outcomes=1)
    assert lv.cost_per_token == 0.002 and lv.tokens_per_attempt == 2000.0
    assert lv.attempts_per_outcome == 3.0 and lv.cost_per_outcome == 12.0
    assert Fraction(0.002) * 2000 * 3 != 0  # the identity holds in exact arithmetic:
    assert Fraction(12, 6000) * Fraction(6000, 3) * Fraction(3, 1) == Fraction(12)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1e4), st.integers(1, 10**9), st.integers(1, 10**5), st.integers(1, 10**5))
def test_levers_product_is_cost_per_outcome(cost: float, tokens: int, attempts: int,
                                            outcomes: int) -> None:
    lv = levers(cost=cost, tokens=tokens, attempts=attempts, outcomes=outcomes)
    x = lv.factors()
    assert x is not None and lv.cost_per_outcome is not None
    assert math.isclose(math.prod(x), lv.cost_per_outcome, rel_tol=1e-12, abs_tol=1e-300)


def test_undefined_levers() -> None:
    lv = levers(cost=5.0, tokens=0, attempts=2, outcomes=0)
    assert lv.cost_per_outcome is None and lv.cost_per_token is None and lv.factors() is None
    assert lmdi(lv, levers(cost=1.0, tokens=10, attempts=1, outcomes=1)) is None


def test_lmdi_hand_computed() -> None:
    # Week 1: $10, 1,000 tokens, 4 attempts, 2 outcomes -> $5/outcome.
    # Week 2: price per token doubles, tokens per attempt halves, attempts per outcome 2 -> 3.
    before = levers(cost=10.0, tokens=1000, attempts=4, outcomes=2)
    after = levers(cost=15.0, tokens=750, attempts=6, outcomes=2)
    s = lmdi(before, after)
    assert s is not None and math.isclose(s.total, 2.5)
    L = (7.5 - 5.0) / math.log(7.5 / 5.0)
    assert math.isclose(s.parts["cost_per_token"], L * math.log(2))
    assert math.isclose(s.parts["tokens_per_attempt"], L * math.log(0.5))
    assert math.isclose(s.parts["attempts_per_outcome"], L * math.log(1.5))
    # the price and volume effects cancel; the extra attempts explain the whole change
    assert math.isclose(s.parts["attempts_per_outcome"], 2.5)
    assert math.isclose(s.parts["cost_per_token"], -s.parts["tokens_per_attempt"])


def test_lmdi_equal_and_zero_values() -> None:
    same = levers(cost=3.0, tokens=300, attempts=3, outcomes=1)
    s = lmdi(same, same)
    assert s is not None and s.total == 0 and set(s.parts.values()) == {0.0}
    free = levers(cost=0.0, tokens=300, attempts=3, outcomes=1)
    s = lmdi(free, same)
    assert s is not None and s.parts == {"cost_per_token": 3.0, "tokens_per_attempt": 0.0,
                                         "attempts_per_outcome": 0.0}
    s = lmdi(free, free)
    assert s is not None and s.total == 0 and sum(s.parts.values()) == 0


positive = st.floats(1e-6, 1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(positive, positive, positive, positive, positive, positive)
def test_lmdi_parts_sum_to_the_change(a: float, b: float, c: float, d: float, e: float,
                                      f: float) -> None:
    from analyzers.unit_economics import Levers

    x0, x1 = Levers(a, b, c, a * b * c), Levers(d, e, f, d * e * f)
    s = lmdi(x0, x1)
    assert s is not None
    assert math.isclose(sum(s.parts.values()), s.total, rel_tol=1e-9,
                        abs_tol=1e-9 * max(abs(s.before), abs(s.after)))


def test_retry_tail_and_p95() -> None:
    assert retry_tail(0.40, 0.5) == 0.80 and retry_tail(1.0, 0.0) is None
    assert p95_attempts(0.5) == 5 and p95_attempts(1.0) == 1 and p95_attempts(0.0) is None


def test_collapse_and_grouping() -> None:
    assert collapse(["retrieval:kb", "llm:a[frontier]", "llm:a[frontier]", "llm:a[frontier]"]) \
        == "retrieval:kb > llm:a[frontier] ×3"
    groups = group_paths([
        TracePath("t1", "s", 4.0, {"churn.retry_storm": 3.0}, False, True, "w"),
        TracePath("t2", "s", 2.0, {}, True, True, "w"),
        TracePath("t3", "s", 3.0, {"churn.dead_end": 1.0}, False, False, "w"),
        TracePath("t4", "s", 1.0, {}, True, True, "other"),
    ])
    g = next(g for g in groups if g.workflow == "w")
    assert (g.traces, g.successes, g.decided) == (3, 1, 2)
    assert g.success_rate == 0.5 and g.cost_per_outcome_usd == 9.0 and g.mean_cost_usd == 3.0
    assert g.waste_usd == 4.0
    assert g.top_codes == (("churn.retry_storm", 3.0), ("churn.dead_end", 1.0))
    assert g.example_trace_ids == ("t1", "t3", "t2")
