"""Analyzer thresholds, each with its source (the rule ids of docs/methods.md).

>>> AnalyzerConfig().tight_loop_min, AnalyzerConfig(tight_loop_min=4).tight_loop_min
(3, 4)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["AnalyzerConfig"]


@dataclass(frozen=True)
class AnalyzerConfig:
    """Thresholds of every rule. Defaults are the cited starting points; all are tunable."""

    # churn — docs/methods.md C1-C10
    exact_repeat_min: int = 2  # C1: "≥2 occurrences"
    tight_loop_min: int = 3  # C2 (Gemini CLI halts at 5, OpenHands at 4)
    error_loop_min: int = 3  # C3: OpenHands' action–error rule
    cycle_min_repeats: int = 3  # C4 (OpenHands: A-B-A-B over 6 steps)
    near_dup_args: float = 0.8  # C5: MinHash J(args) ≥ 0.8
    near_dup_result: float = 0.9  # C5: J(result) ≥ 0.9
    retry_storm_attempts: int = 3  # C6
    retry_storm_cost_share: float = 0.20  # C6: retries ≥ 20% of trace cost
    # C7 proposes prompt J ≥ 0.9; re-prompts in the demo traffic (an independent generator)
    # measure 0.86–0.89, so the near-duplicate input threshold (C5) is used
    reprompt_similarity: float = 0.8
    # Tools whose name starts with one of these only read; any other tool between two calls
    # counts as a state change ("unknown = state-changing", docs/methods.md).
    read_only_prefixes: tuple[str, ...] = (
        "get", "read", "search", "list", "fetch", "find", "query", "lookup", "retrieve",
        "view", "describe", "check", "status", "poll", "cat", "grep", "ls", "open", "web_search",
    )
    # bloat — docs/methods.md B1-B6 and the used-document cascade
    over_retrieval_min_k: int = 10  # B1: k ≥ 10
    over_retrieval_used_share: float = 0.2  # B1: used/k < 0.2
    unused_context_share: float = 0.30  # B2: ≥ 30% of the prompt
    unused_context_min_tokens: int = 2000  # B2: and ≥ 2,000 tokens
    containment: float = 0.05  # the cascade: answer n-gram containment ≥ 0.05 ⇒ used
    history_min_turns: int = 8  # B3: ≥ 8 turns
    history_growth_ratio: float = 3.0  # B3: last/first ≥ 3x
    history_keep_turns: int = 5  # SWE-agent LastNObservations default n=5 (docs/methods.md B3)
    oversize_z: float = 3.5  # B5: modified z-score > 3.5 (Iglewicz & Hoaglin convention)
    oversize_ratio: float = 1.5  # B5: and x > 1.5 × median
    oversize_min_samples: int = 20  # same sample floor as R2, so a median means something
    cache_min_prefix_tokens: int = 1024  # B6: OpenAI/Anthropic minimum cacheable prefix
    cache_ttl_seconds: float = 300.0  # B6: Anthropic 5-minute TTL (OpenAI: 5–10 min idle)
    cache_read_multiplier: float = 0.1  # B6: Anthropic read 0.1x (used without a table)
    chars_per_token: float = 4.0  # OpenAI's rule of thumb for English text
    # routing — docs/methods.md R1-R3
    simple_max_output_tokens: int = 256  # R1
    # R1 shape: an output this short is a label, a number or a yes/no (a class name or an id
    # is 1-5 tokens; 16 leaves room for a short phrase), whatever the step is called
    label_max_output_tokens: int = 16
    # R1 shape: a compression (summary, extraction) reads at least 4x what it writes
    compression_min_ratio: float = 4.0
    simple_step_words: tuple[str, ...] = (  # R1 task classes, in a step name or a prompt's head
        "classify", "classification", "extract", "format", "route", "router", "label", "tag",
        "detect", "sentiment", "intent", "categor", "parse", "normalize", "summar", "condens",
        "tldr", "recap", "gist", "abstract", "shorten", "compress", "headline", "title",
        "convert",
    )
    routing_min_samples: int = 20  # R2: ≥ 20 calls on the cheaper tier
    routing_margin: float = 0.02  # R2: success ≥ frontier rate − 2 pp
    # R2: a cheaper tier "fails" a step only when its lower success rate is significant
    # (one-sided two-proportion z-test at 95%), not when trace outcomes wobble by chance
    routing_z: float = 1.645
    # R1 hard negative with no history of the dearer tier: the cheaper tier succeeds on
    # under 80% of the step's runs
    routing_fail_floor: float = 0.8
    reasoning_min_samples: int = 20  # R3: ≥ 20 occurrences
    # model → USD per million tokens: {"input_mtok", "output_mtok", "cache_read_mtok",
    # "cache_write_mtok"}; the runtime fills it from the price book (genai-prices).
    price_table: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
