"""``claims_processing``: extract the claim (claude-3-5-haiku) → ``fetch_policy`` →
``check_coverage`` → assess (claude-sonnet-4, cached system prompt) → adjuster review
(approve / edit / reject / override, with ``review_minutes``) → settle.

Injected per trace (probabilities in :data:`RATES`):

* ``churn.overridden``: the adjuster rejects (then ``churn.reprompt``: a near-identical assess
  call follows and is approved) or overrides the assessment;
* ``churn.retry_storm``: ``check_coverage`` times out three times (``retry_of`` chain);
* ``churn.error_loop``: ``fetch_policy`` fails the same way three times and the run gives up
  (a retry trace follows);
* ``churn.dead_end``: a fraud-screen branch whose output nothing uses;
* hard negatives: payment-status polling whose result changes (``churn.tight_loop`` must not
  fire) and a ``fetch_policy`` retry with corrected arguments (``churn.retry_storm`` must not).

The W47 change (a retry regression: a new 2 s client timeout on the coverage service) raises
the share of tasks whose first trace fails from :data:`FAILED_ATTEMPT_RATE` ``[0]`` to ``[1]``,
so attempts per outcome rise.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from tracestore.demo.builder import TaskResult, TraceBuilder, approx_tokens, pick
from tracestore.demo.content import CLAIM_TYPES, CLAIMS_SYSTEM, claim_text

__all__ = ["FAILED_ATTEMPT_RATE", "RATES", "claims_task"]

RATES: dict[str, dict[str, float]] = {
    "fetch": {"churn.error_loop": 0.04, "negative:retry_with_changed_args": 0.05},
    "coverage": {"churn.retry_storm": 0.05},
    "review": {"approve": 0.72, "edit": 0.13, "reject": 0.08, "override": 0.07},
    "fraud": {"churn.dead_end": 0.06},
    "payment": {"negative:polling_result_changes": 0.10},
}
FAILED_ATTEMPT_RATE = (0.06, 0.40)  # W46, W47
VALUE_PER_SETTLED_CLAIM = 42.0  # illustrative: what a claims BPO charges per file, USD
REVIEW_MINUTES = {"approve": (2, 6), "edit": (6, 15), "reject": (3, 8), "override": (10, 25)}


def _extract(b: TraceBuilder, rng: random.Random, text: str) -> str:
    system = approx_tokens(CLAIMS_SYSTEM) + 1400
    return b.llm("extract_claim", provider="anthropic", model="claude-3-5-haiku-20241022",
                 input_tokens=system + approx_tokens(text) + rng.randint(600, 1500),
                 output_tokens=rng.randint(150, 300), cache_read=system,
                 prompt=f"Extract policy id, claim type and amount as JSON.\n\n{text}",
                 output='{"policy_id": "...", "claim_type": "...", "amount": ...}',
                 finish_reason="tool_calls", step="extract_claim")


def _fetch_policy(b: TraceBuilder, rng: random.Random, caller: str,
                  policy: str) -> tuple[str | None, dict[str, object]]:
    """The policy lookup; returns (tool node or None when the run gives up, the policy)."""
    data: dict[str, object] = {"policy_id": policy, "holder": f"H-{rng.randrange(10**5):05d}",
                               "deductible": rng.choice([100, 250, 500]),
                               "limit": rng.choice([5000, 10000, 25000])}
    waste = pick(rng, RATES["fetch"])
    if waste == "churn.error_loop":
        ids = [b.tool("fetch_policy", {"policy_id": policy}, None, caller=caller, dur=2.0,
                      status="error", error_type="PolicyServiceUnavailable")
               for _ in range(3)]
        b.label(waste, ids, note="fetch_policy failed 3 times with the same error")
        return None, data
    if waste is not None:
        typo = policy.lower() + " "
        bad = b.tool("fetch_policy", {"policy_id": typo}, None, caller=caller, status="error",
                     error_type="PolicyNotFound")
        fixed = b.tool("fetch_policy", {"policy_id": policy}, data, caller=caller,
                       retry_of=bad)
        b.label("churn.retry_storm", [bad, fixed], negative=True,
                note="retry with corrected arguments")
        return fixed, data
    return b.tool("fetch_policy", {"policy_id": policy}, data, caller=caller), data


def _coverage(b: TraceBuilder, rng: random.Random, caller: str, policy: str, ctype: str,
              amount: float, *, fail: bool) -> str | None:
    args = {"policy_id": policy, "claim_type": ctype, "amount": amount}
    result = {"covered": ctype != "theft" or amount < 2000,
              "payable": round(max(0.0, amount - 250), 2)}
    if fail:  # the W47 regression: the coverage call times out and the run gives up
        b.tool("check_coverage", args, None, caller=caller, dur=2.0, status="error",
               error_type="ReadTimeout")
        return None
    if pick(rng, RATES["coverage"]) is not None:
        ids: list[str] = []
        for k in range(4):
            ok = k == 3
            ids.append(b.tool("check_coverage", args, result if ok else None, caller=caller,
                              dur=0.4 if ok else 2.0, status="ok" if ok else "error",
                              error_type=None if ok else "ReadTimeout",
                              retry_of=ids[-1] if ids else None))
        b.label("churn.retry_storm", ids, note="check_coverage timed out 3 times")
        return ids[-1]
    return b.tool("check_coverage", args, result, caller=caller)


def _assess(b: TraceBuilder, rng: random.Random, text: str, uses: list[str],
            note: str = "") -> str:
    system = approx_tokens(CLAIMS_SYSTEM) + 2000
    prompt = f"{CLAIMS_SYSTEM}\n\n{text}\n[policy and coverage results attached]{note}"
    return b.llm("assess_claim", provider="anthropic", model="claude-sonnet-4-20250514",
                 input_tokens=system + approx_tokens(prompt) + rng.randint(800, 1600),
                 output_tokens=rng.randint(300, 600), cache_read=system,
                 cache_write=rng.choice([0, 0, 0, 400]), prompt=prompt,
                 output="Decision: approve. Payout per clause 4.2 after deductible.",
                 uses=uses, step="assess_claim")


def _attempt(rng: random.Random, start: float, task_id: str, dims: Mapping[str, str | None],
             *, fail: bool) -> tuple[TraceBuilder, str | None]:
    b = TraceBuilder(rng, workflow="claims_processing", task_id=task_id, start=start, **dims)
    b.node("agent", "claims_processing", dur=0.0, gap=0.0)
    ctype = rng.choice(CLAIM_TYPES)
    amount = round(rng.uniform(120, 6000), 2)
    text = claim_text(rng, ctype, amount)
    policy = f"PO-{rng.randrange(10**6):06d}"
    ext = _extract(b, rng, text)
    pol, _ = _fetch_policy(b, rng, ext, policy)
    if pol is None:
        return b, None
    cov = _coverage(b, rng, ext, policy, ctype, amount, fail=fail)
    if cov is None:
        return b, None
    if pick(rng, RATES["fraud"]) is not None:
        fr = b.node("agent", "fraud_screen", dur=0.0)
        f1 = b.llm("fraud_signals", provider="openai", model="gpt-4o-mini", parent=fr,
                   input_tokens=rng.randint(900, 1500), output_tokens=rng.randint(60, 120),
                   prompt=f"List fraud signals in: {text}", output="No strong signals.",
                   step="fraud_signals")
        f2 = b.tool("search_prior_claims", {"holder": policy}, {"prior_claims": 0},
                    caller=f1, parent=fr)
        b.label("churn.dead_end", [fr, f1, f2], note="fraud screen nobody reads")
    assess = _assess(b, rng, text, [pol, cov])
    decision = pick(rng, RATES["review"]) or "approve"
    lo, hi = REVIEW_MINUTES[decision]
    review = b.node("human", "adjuster_review", dur=rng.uniform(60, 600), decision=decision,
                    review_target=assess, review_minutes=round(rng.uniform(lo, hi), 1))
    final = review
    if decision in ("reject", "override"):
        b.label("churn.overridden", [assess, review], note=f"adjuster chose {decision}")
    if decision == "reject":
        again = _assess(b, rng, text, [pol, cov], note="\nReviewer: payout must apply the "
                                                        "deductible.")
        final = b.node("human", "adjuster_review", dur=rng.uniform(60, 300), decision="approve",
                       review_target=again, review_minutes=round(rng.uniform(2, 5), 1))
        b.label("churn.reprompt", [assess, review, again], note="near-identical assess call "
                                                                "after a rejection")
    if pick(rng, RATES["payment"]) is not None:
        polls = [b.tool("get_payment_status", {"claim_id": task_id}, r, gap=rng.uniform(20, 40))
                 for r in ({"status": "queued", "position": rng.randint(2, 9)},
                           {"status": "processing", "progress": rng.randint(30, 80)},
                           {"status": "settled", "paid": True})]
        b.label("churn.tight_loop", polls, negative=True, note="polling whose result changes")
    return b, final


def claims_task(rng: random.Random, *, task_id: str, start: float, w47: bool) -> TaskResult:
    dims = {"team": "claims-ops", "feature": rng.choice(["auto", "travel", "property"]),
            "environment": "prod", "service_name": "claims-agent",
            "user_id": f"adjuster-{rng.randrange(40):02d}"}
    traces: list[TraceBuilder] = []
    t = start
    final: str | None = None
    fail_first = rng.random() < FAILED_ATTEMPT_RATE[int(w47)]
    for attempt in range(4):  # a task is retried until one attempt completes
        b, final = _attempt(rng, t, task_id, dims, fail=fail_first and attempt == 0)
        traces.append(b)
        t = b.now + rng.uniform(120, 1800)
        if final is not None:
            break
    if final is None:
        return TaskResult(traces, "failure", "claim_settled", None, None)
    value = VALUE_PER_SETTLED_CLAIM if rng.random() < 0.7 else None
    status = "success" if rng.random() < 0.92 else "partial"
    return TaskResult(traces, status, "claim_settled", value, final)
