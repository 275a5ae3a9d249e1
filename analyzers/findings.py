"""The finding type every analyzer returns, and the stable finding codes.

Codes are like HTTP status codes: never renamed once released (docs/analysis.md).

>>> f = Finding.create(trace_id="t1", workflow="w", code="churn.exact_repeat",
...     node_ids=("a", "b"), wasted_tokens=10, wasted_cost_usd=0.01, savings_usd=0.01,
...     confidence=0.9, evidence={"repeats": 2}, message="2 identical calls.")
>>> f.analyzer, len(f.id)
('churn', 24)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ANALYZERS", "CODES", "Finding"]

ANALYZERS = ("churn", "bloat", "routing")

CODES: dict[str, str] = {
    "churn.exact_repeat": "same tool/LLM call (canonical args) repeated with the same result "
    "and no state change between",
    "churn.tight_loop": "the same call key 3 or more times in a row",
    "churn.error_loop": "the same call failing the same way 3 or more times",
    "churn.cycle": "an A-B-A-B (or A-B-C) pattern repeated 3 or more times",
    "churn.near_duplicate": "near-identical calls with near-identical results",
    "churn.retry_storm": "3 or more attempts of one logical call, or retries >= 20% of trace "
    "cost",
    "churn.reprompt": "a near-identical LLM call after the previous output was rejected or "
    "overridden",
    "churn.dead_end": "work that no outcome depends on (abandoned branch)",
    "churn.overridden": "model output a human rejected or replaced",
    "bloat.over_retrieval": "many documents retrieved, few used",
    "bloat.unused_context": "retrieved or carried context never used by any later step",
    "bloat.history_growth": "input tokens grow turn over turn with no compaction",
    "bloat.oversized_prompt": "prompt far above the workflow's norm for the same step",
    "bloat.cache_miss": "a long shared prompt prefix billed uncached within the cache window",
    "routing.overpowered_model": "a frontier model on a simple step",
    "routing.cheaper_model_sufficient": "the same step succeeds as often on a cheaper model "
    "in this corpus",
    "routing.reasoning_overkill": "a reasoning model that barely reasons on this step",
    "routing.wasted_escalation": "an escalation to a bigger model that changed nothing or "
    "still failed",
}


# Each code's analyzer (the part before the dot), looked up once per finding: it also
# checks that the code is known.
_ANALYZER_OF: dict[str, str] = {c: c.split(".", 1)[0] for c in CODES}


@dataclass(frozen=True)
class Finding:
    """One detected waste. ``node_ids`` are in path order; dollars are USD."""

    id: str
    trace_id: str
    workflow: str | None
    analyzer: str
    code: str
    node_ids: tuple[str, ...]
    wasted_tokens: int
    wasted_cost_usd: float
    savings_usd: float
    confidence: float
    evidence: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @classmethod
    def create(
        cls,
        *,
        trace_id: str,
        workflow: str | None,
        code: str,
        node_ids: tuple[str, ...] | list[str],
        wasted_tokens: int,
        wasted_cost_usd: float,
        savings_usd: float,
        confidence: float,
        evidence: dict[str, Any],
        message: str,
    ) -> Finding:
        """Build a finding with a deterministic id (same trace, code and path → same id)."""
        analyzer = _ANALYZER_OF.get(code)
        if analyzer is None:
            raise ValueError(f"unknown finding code {code!r}")
        ids = tuple(node_ids)
        digest = hashlib.blake2b("\x1f".join((trace_id, code, *ids)).encode(),
                                 digest_size=12).hexdigest()
        return cls(
            id=digest,
            trace_id=trace_id,
            workflow=workflow,
            analyzer=analyzer,
            code=code,
            node_ids=ids,
            wasted_tokens=int(wasted_tokens),
            wasted_cost_usd=float(wasted_cost_usd),
            savings_usd=float(savings_usd),
            confidence=float(confidence),
            evidence=evidence,
            message=message,
        )
