"""The seeded demo-traffic generator: two ISO weeks (2026-W46 and 2026-W47, Monday
2026-11-09 to Sunday 2026-11-22 UTC) of three agent workflows with waste injected at known
rates and ground-truth labels kept apart from the traces.

===================== ====== ===================================================
workflow              share  module (its docstring lists the injected patterns)
===================== ====== ===================================================
support_triage        50 %   :mod:`tracestore.demo.support`
claims_processing     25 %   :mod:`tracestore.demo.claims`
code_review           25 %   :mod:`tracestore.demo.code_review`
===================== ====== ===================================================

Outcomes: 80 % ride in the task's last trace as an ``outcome`` node (``uses`` the final
step), 20 % are returned as separate, late outcome records (1–30 h after the trace).

The week-over-week change (for the digest) is described in :attr:`DemoData.change`.

>>> d = generate(seed=1, n_traces=40)
>>> len(d.traces) >= 40, {t["workflow"] for t in d.traces} <= set(SHARES)
(True, True)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from tracestore.demo import claims, code_review, support
from tracestore.demo.builder import DemoData, Label, TaskResult

__all__ = [
    "DEMO_END",
    "DEMO_START",
    "LATE_OUTCOME_RATE",
    "SHARES",
    "W47_START",
    "DemoData",
    "Label",
    "generate",
]

DEMO_START = 1794182400.0  # 2026-11-09T00:00:00Z, Monday of ISO week 2026-W46
W47_START = DEMO_START + 7 * 86400  # 2026-11-16T00:00:00Z
DEMO_END = DEMO_START + 14 * 86400  # 2026-11-23T00:00:00Z
LATE_OUTCOME_RATE = 0.20
SHARES: dict[str, float] = {"support_triage": 0.5, "claims_processing": 0.25,
                            "code_review": 0.25}
_TASKS: dict[str, Callable[..., TaskResult]] = {
    "support_triage": support.support_task,
    "claims_processing": claims.claims_task,
    "code_review": code_review.code_review_task,
}
_PREFIX = {"support_triage": "TICKET", "claims_processing": "CLM", "code_review": "PR"}
# Relative traffic by weekday (Mon..Sun) and a business-hours day: weekends run at ~35 %.
_WEEKDAY = (1.0, 1.0, 1.0, 1.0, 0.9, 0.35, 0.35)


def _start(rng: random.Random) -> float:
    day = rng.choices(range(14), weights=[_WEEKDAY[d % 7] for d in range(14)])[0]
    hour = min(20.5, max(6.0, rng.gauss(13.0, 3.0)))
    return round(DEMO_START + day * 86400 + hour * 3600 + rng.uniform(0, 60), 3)


def _attach_outcome(rng: random.Random, res: TaskResult, task_id: str, workflow: str,
                    data: DemoData) -> None:
    last = res.traces[-1]
    if res.status is None:
        return
    if rng.random() < LATE_OUTCOME_RATE:
        when = min(last.now + rng.uniform(3600, 30 * 3600), DEMO_END - 60)
        rec: dict[str, Any] = {"task_id": task_id, "status": res.status, "type": res.type,
                               "occurred_at": round(when, 3), "workflow": workflow}
        if res.value_usd is not None:
            rec["value_usd"] = res.value_usd
        data.outcomes.append(rec)
        return
    last.node("outcome", res.type or "outcome", dur=0.0, outcome_status=res.status,
              outcome_type=res.type, outcome_value_usd=res.value_usd,
              uses=[res.final_node] if res.final_node else None)


def _rates() -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for wf, mod in (("support_triage", support), ("claims_processing", claims),
                    ("code_review", code_review)):
        flat = {f"{group}:{code}": p for group, rates in mod.RATES.items()
                for code, p in rates.items()}
        out[wf] = flat
    out["support_triage"].update({f"task:{k}": v for k, v in support.TASK_RATES.items()})
    out["claims_processing"]["task:failed_attempt:2026-W46"] = claims.FAILED_ATTEMPT_RATE[0]
    out["claims_processing"]["task:failed_attempt:2026-W47"] = claims.FAILED_ATTEMPT_RATE[1]
    out["all"] = {"late_outcome": LATE_OUTCOME_RATE}
    return out


CHANGE: list[dict[str, Any]] = [
    {"workflow": "support_triage", "week": "2026-W47", "lever": "tokens_per_attempt",
     "direction": "up", "since": "2026-11-16T00:00:00Z",
     "cause": "prompt change doubles the retrieved context (chunk tokens ×2)",
     "expected_ratio": {"retrieved_tokens_per_trace": float(support.W47_CONTEXT_FACTOR)}},
    {"workflow": "claims_processing", "week": "2026-W47", "lever": "attempts_per_outcome",
     "direction": "up", "since": "2026-11-16T00:00:00Z",
     "cause": "retry regression: a 2 s client timeout on check_coverage fails first attempts",
     "failed_first_attempt_rate": {"2026-W46": claims.FAILED_ATTEMPT_RATE[0],
                                   "2026-W47": claims.FAILED_ATTEMPT_RATE[1]}},
]


def generate(seed: int = 7, n_traces: int = 2000) -> DemoData:
    """At least ``n_traces`` traces (a task's retry traces are never split off), sorted by
    start time. Each task draws from its own ``Random(f"{seed}:{k}")`` stream."""
    data = DemoData(change=[dict(c) for c in CHANGE], rates=_rates())
    plan = random.Random(f"tracestore-demo:{seed}")
    n_out = 0
    k = 0
    while n_out < n_traces:
        wf = plan.choices(list(SHARES), weights=list(SHARES.values()))[0]
        rng = random.Random(f"{seed}:{k}")
        start = _start(rng)
        task_id = f"{_PREFIX[wf]}-{seed:02d}{k:05d}"
        res = _TASKS[wf](rng, task_id=task_id, start=start, w47=start >= W47_START)
        _attach_outcome(rng, res, task_id, wf, data)
        for b in res.traces:
            data.traces.append(b.trace())
            data.labels.extend(b.labels)
        n_out += len(res.traces)
        k += 1
    data.traces.sort(key=lambda t: (t["nodes"][0]["start"], t["trace_id"]))
    data.outcomes.sort(key=lambda o: (o["occurred_at"], o["task_id"]))
    return data
