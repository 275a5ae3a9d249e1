"""Model tiers and same-vendor cheaper models — data, not code.

``TIER_TABLE`` maps model-name patterns (:mod:`fnmatch`, case-insensitive, first match wins,
so specific patterns come before general ones) to a tier and a reasoning flag. Tiers follow
the vendors' own positioning of their lines (flagship / mid / small) as published on their
model pages in 2025–2026; ``reasoning`` marks models that spend hidden reasoning tokens.

``CHEAPER_MODEL`` maps a pattern to the same vendor's next cheaper model used to price the
counterfactual in the routing analyzer ("the same usage priced on the cheaper model, same
vendor first", docs/analysis.md) — several space-separated candidates mean "the first one with a
known price"; ``CHEAPER_NON_REASONING`` does the same for reasoning models
(reasoning overkill is priced "without reasoning on the cheaper model").

>>> model_tier("gpt-4o-2024-08-06"), model_tier("gpt-4o-mini"), model_tier("unknown-x")
('frontier', 'small', None)
>>> is_reasoning("o3-mini"), cheaper_model("claude-3-opus-20240229")
(True, 'claude-3-5-sonnet')
>>> cheaper_models("claude-sonnet-4-20250514")
('claude-haiku-4-5', 'claude-3-5-haiku')
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import lru_cache

__all__ = [
    "CHEAPER_MODEL",
    "CHEAPER_NON_REASONING",
    "TIERS",
    "TIER_RANK",
    "TIER_TABLE",
    "cheaper_model",
    "cheaper_models",
    "cheaper_non_reasoning_model",
    "is_reasoning",
    "model_tier",
]

TIERS = ("small", "mid", "frontier")
TIER_RANK = {t: i for i, t in enumerate(TIERS)}

# (pattern, tier, reasoning). First match wins.
TIER_TABLE: tuple[tuple[str, str, bool], ...] = (
    # OpenAI
    ("gpt-4o-mini*", "small", False),
    ("gpt-4.1-nano*", "small", False),
    ("gpt-4.1-mini*", "mid", False),
    ("gpt-5-nano*", "small", False),
    ("gpt-5-mini*", "mid", True),
    ("gpt-3.5*", "small", False),
    ("o1-mini*", "mid", True),
    ("o3-mini*", "mid", True),
    ("o4-mini*", "mid", True),
    ("o1*", "frontier", True),
    ("o3*", "frontier", True),
    ("gpt-5*", "frontier", True),
    ("gpt-4.1*", "frontier", False),
    ("gpt-4o*", "frontier", False),
    ("gpt-4-turbo*", "frontier", False),
    ("gpt-4*", "frontier", False),
    # Anthropic
    ("claude-3-haiku*", "small", False),
    ("claude-3-5-haiku*", "small", False),
    ("claude-haiku*", "small", False),
    # Sonnet 3.5 and later are priced and used as Anthropic's workhorse frontier line
    ("claude-3-5-sonnet*", "frontier", False),
    ("claude-3-7-sonnet*", "frontier", True),
    ("claude-sonnet*", "frontier", True),
    ("claude-3-sonnet*", "mid", False),
    ("claude-3-opus*", "frontier", False),
    ("claude-opus*", "frontier", True),
    # Google
    ("gemini-*flash-lite*", "small", False),
    ("gemini-1.5-flash-8b*", "small", False),
    ("gemini-*flash*", "mid", False),
    ("gemini-2.5-pro*", "frontier", True),
    ("gemini-*pro*", "frontier", False),
    # Mistral
    ("mistral-small*", "small", False),
    ("ministral*", "small", False),
    ("mistral-medium*", "mid", False),
    ("mistral-large*", "frontier", False),
    # Meta (hosted)
    ("llama-3*-8b*", "small", False),
    ("llama-3*-70b*", "mid", False),
    ("llama-3*-405b*", "frontier", False),
)

CHEAPER_MODEL: tuple[tuple[str, str], ...] = (
    ("gpt-4o-mini*", "gpt-4.1-nano"),
    ("gpt-4.1-mini*", "gpt-4.1-nano"),
    ("gpt-5-mini*", "gpt-5-nano"),
    ("o1-mini*", "gpt-4o-mini"),
    ("o3-mini*", "gpt-4o-mini"),
    ("o4-mini*", "gpt-4o-mini"),
    ("o1*", "o3-mini"),
    ("o3*", "o4-mini"),
    ("gpt-5*", "gpt-5-mini"),
    ("gpt-4.1*", "gpt-4.1-mini"),
    ("gpt-4o*", "gpt-4o-mini"),
    ("gpt-4-turbo*", "gpt-4o-mini"),
    ("gpt-4*", "gpt-4o-mini"),
    ("claude-3-5-sonnet*", "claude-3-5-haiku"),
    ("claude-3-7-sonnet*", "claude-3-5-haiku"),
    ("claude-sonnet*", "claude-haiku-4-5 claude-3-5-haiku"),
    ("claude-3-opus*", "claude-3-5-sonnet"),
    ("claude-opus*", "claude-sonnet-4-5 claude-sonnet-4"),
    ("gemini-2.5-pro*", "gemini-2.5-flash"),
    ("gemini-*pro*", "gemini-1.5-flash"),
    ("gemini-*flash*", "gemini-2.0-flash-lite"),
    ("mistral-large*", "mistral-small"),
    ("mistral-medium*", "mistral-small"),
)

CHEAPER_NON_REASONING: tuple[tuple[str, str], ...] = (
    ("o1-mini*", "gpt-4o-mini"),
    ("o3-mini*", "gpt-4o-mini"),
    ("o4-mini*", "gpt-4o-mini"),
    ("gpt-5-mini*", "gpt-4.1-mini gpt-4o-mini"),
    ("o1*", "gpt-4.1-mini gpt-4o-mini"),
    ("o3*", "gpt-4.1-mini gpt-4o-mini"),
    ("gpt-5*", "gpt-4.1-mini gpt-4o-mini"),
    ("claude-3-7-sonnet*", "claude-3-5-haiku"),
    ("claude-sonnet*", "claude-haiku-4-5 claude-3-5-haiku"),
    ("claude-opus*", "claude-3-5-sonnet"),
    ("gemini-2.5-pro*", "gemini-2.0-flash"),
)


def _norm(model: str) -> str:
    # "openai/gpt-4o" and "models/gemini-2.5-pro" name the same models.
    return model.strip().lower().rsplit("/", 1)[-1]


@lru_cache(maxsize=4096)
def _tier_entry(model: str) -> tuple[str, bool] | None:
    m = _norm(model)
    for pattern, tier, reasoning in TIER_TABLE:
        if fnmatchcase(m, pattern):
            return tier, reasoning
    return None


def model_tier(model: str | None) -> str | None:
    """``"frontier" | "mid" | "small"``, or None for a model the table does not know."""
    entry = _tier_entry(model) if model else None
    return entry[0] if entry else None


def is_reasoning(model: str | None) -> bool:
    """True for models that spend hidden reasoning tokens."""
    entry = _tier_entry(model) if model else None
    return bool(entry and entry[1])


@lru_cache(maxsize=4096)
def _lookup(table: tuple[tuple[str, str], ...], model: str) -> str | None:
    m = _norm(model)
    for pattern, cheaper in table:
        if fnmatchcase(m, pattern):
            return cheaper
    return None


def cheaper_models(model: str | None, *, reasoning: bool = True) -> tuple[str, ...]:
    """Candidates for the same vendor's next cheaper model (without hidden reasoning when
    ``reasoning`` is False), preferred first."""
    found = _lookup(CHEAPER_MODEL if reasoning else CHEAPER_NON_REASONING, model) \
        if model else None
    return tuple(found.split()) if found else ()


def cheaper_model(model: str | None) -> str | None:
    """The same vendor's preferred cheaper model, or None."""
    c = cheaper_models(model)
    return c[0] if c else None


def cheaper_non_reasoning_model(model: str | None) -> str | None:
    """The same vendor's preferred cheaper model without hidden reasoning, or None."""
    c = cheaper_models(model, reasoning=False)
    return c[0] if c else None
