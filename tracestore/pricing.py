"""Pricing of stored nodes: price-book override, else genai-prices' bundled data, else
unpriced (``priced=False``, cost ``None`` — never a silent $0).

genai-prices' network auto-update (``UpdatePrices``) is never started: prices come from the
data bundled with the installed version, which is recorded as ``price_source``.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import genai_prices
from genai_prices import Usage, calc_price

__all__ = ["PROVIDER_ALIASES", "GENAI_PRICES_SOURCE", "genai_provider", "Pricer"]

GENAI_PRICES_SOURCE = f"genai-prices {genai_prices.__version__}"

# OTel GenAI / OpenInference provider names -> genai-prices provider ids. Measured in
# shared/reference/conventions.md §6.4: "x_ai" raises LookupError and "azure.ai.openai"
# silently resolves to openai without this table; the rest are listed to be explicit.
PROVIDER_ALIASES: dict[str, str] = {
    "x_ai": "x-ai",
    "xai": "x-ai",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "aws.bedrock": "aws",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
}

PRICED_KINDS = frozenset({"llm", "embedding"})


def genai_provider(provider: str | None) -> str | None:
    """Map a producer's provider name to a genai-prices provider id.

    >>> genai_provider("x_ai"), genai_provider("OpenAI"), genai_provider(None)
    ('x-ai', 'openai', None)
    """
    if not provider:
        return None
    p = provider.strip().lower()
    return PROVIDER_ALIASES.get(p, p)


@lru_cache(maxsize=65_536)
def _library_cost(
    provider: str | None,
    model: str,
    day: str,
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write: int,
    reasoning: int,
) -> float | None:
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read or None,
        cache_write_tokens=cache_write or None,
        output_reasoning_tokens=reasoning or None,
    )
    when = datetime.fromisoformat(day).replace(tzinfo=UTC)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = calc_price(
                usage, model_ref=model, provider_id=provider, genai_request_timestamp=when
            )
    except (LookupError, ValueError):
        return None
    return float(result.total_price)


class Pricer:
    """Prices node rows (dicts with the :class:`tracestore.models.Node` columns) in place."""

    def price_rows(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.price_row(row)

    def price_row(self, row: dict[str, Any]) -> None:
        kind = row.get("kind")
        if kind not in PRICED_KINDS:
            # Non-model steps carry only what the producer reported.
            rep = row.get("reported_cost_usd")
            row["cost_usd"] = rep
            row["priced"] = rep is not None
            row["price_source"] = "reported" if rep is not None else None
            return
        model = row.get("model")
        cost = None
        if model:
            ts = row.get("start")
            day = (
                datetime.fromtimestamp(ts, UTC).date().isoformat()
                if ts is not None
                else datetime.now(UTC).date().isoformat()
            )
            cost = _library_cost(
                genai_provider(row.get("provider")),
                model,
                day,
                int(row.get("input_tokens") or 0),
                int(row.get("output_tokens") or 0),
                int(row.get("cache_read_tokens") or 0),
                int(row.get("cache_write_tokens") or 0),
                int(row.get("reasoning_tokens") or 0),
            )
        row["cost_usd"] = cost
        row["priced"] = cost is not None
        row["price_source"] = GENAI_PRICES_SOURCE if cost is not None else None
