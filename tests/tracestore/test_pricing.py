"""Pricing against genai-prices' real bundled data, and the price book's precedence rules.

Expected dollar figures are the providers' published list prices per million tokens (quoted
beside each test), so a wrong token class, a wrong alias or a stale rate makes a test fail.
"""

from __future__ import annotations

import random
import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
from genai_prices import Usage, calc_price, data_snapshot

from tracestore.pricing.book import Book, Override
from tracestore.pricing.pricer import (
    GENAI_PRICES_SOURCE,
    PROVIDER_ALIASES,
    Pricer,
    genai_provider,
    library_rates,
)

T0 = datetime(2026, 11, 16, 9, tzinfo=UTC).timestamp()


def _node(kind: str = "llm", **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"kind": kind, "start": T0, "end": T0 + 2, "provider": None,
                           "model": None, "input_tokens": 0, "output_tokens": 0,
                           "cache_read_tokens": 0, "cache_write_tokens": 0,
                           "reasoning_tokens": 0, "reported_cost_usd": None, "name": "",
                           "tool_name": None, "review_minutes": None}
    row.update(kw)
    return row


def _priced(row: dict[str, Any], book: Book | None = None) -> dict[str, Any]:
    Pricer().price_row(row, book)
    return row


def _override(oid: int = 1, **kw: Any) -> Override:
    base: dict[str, Any] = {
        "provider": None, "model_pattern": "*", "node_kind": "llm", "valid_from": None,
        "valid_to": None, "input_mtok": None, "cached_input_mtok": None,
        "cache_write_mtok": None, "output_mtok": None, "reasoning_mtok": None,
        "per_call_usd": None, "per_minute_usd": None,
    }
    base.update(kw)
    return Override(oid, **base)


def test_openai_gpt4o_with_cache_reads() -> None:
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per MTok (genai-prices' bundled data).
    r = _priced(_node(provider="openai", model="gpt-4o-2024-08-06", input_tokens=1000,
                      output_tokens=500, cache_read_tokens=200))
    assert r["cost_usd"] == pytest.approx(0.00725, abs=1e-12)
    assert r["priced"] is True and r["price_source"] == GENAI_PRICES_SOURCE


def test_anthropic_cache_reads_and_writes_worked_example() -> None:
    # claude-sonnet-4: 1000 uncached × $3 + 200 cache reads × $0.30 + 100 cache writes × $3.75
    # per MTok = $0.003435 input; 500 output × $15/MTok = $0.0075 (genai-prices' bundled data).
    r = _priced(_node(provider="anthropic", model="claude-sonnet-4-20250514", input_tokens=1300,
                      output_tokens=500, cache_read_tokens=200, cache_write_tokens=100))
    assert r["cost_usd"] == pytest.approx(0.003435 + 0.0075, abs=1e-12)


def test_google_gemini_flash_and_tiered_pro() -> None:
    # gemini-2.5-flash: $0.30 in / $2.50 out per MTok.
    r = _priced(_node(provider="gcp.gemini", model="gemini-2.5-flash", input_tokens=1000,
                      output_tokens=500))
    assert r["cost_usd"] == pytest.approx(0.00155, abs=1e-12)
    # gemini-2.5-pro is tiered: above 200k input tokens every token costs $2.50 in / $15 out.
    rule = library_rates("google", "gemini-2.5-pro", int(T0 // 86_400))
    assert rule != "dynamic" and rule is not None and rule[0] == (200_000,)
    at = _priced(_node(provider="google", model="gemini-2.5-pro", input_tokens=200_000))
    assert at["cost_usd"] == pytest.approx(0.25, abs=1e-12)  # the cliff is "> 200k"
    above = _priced(_node(provider="google", model="gemini-2.5-pro", input_tokens=200_001))
    assert above["cost_usd"] == pytest.approx(200_001 * 2.5e-6, abs=1e-12)
    big = _priced(_node(provider="google", model="gemini-2.5-pro", input_tokens=300_000,
                        output_tokens=1000))
    assert big["cost_usd"] == pytest.approx(0.75 + 0.015, abs=1e-12)
    small = _priced(_node(provider="google", model="gemini-2.5-pro", input_tokens=1000,
                          output_tokens=500))
    assert small["cost_usd"] == pytest.approx(0.00125 + 0.005, abs=1e-12)


def test_time_of_day_prices_use_the_node_time() -> None:
    # deepseek-chat: $0.27 / $1.10 per MTok 00:30-16:30 UTC, half that off-peak.
    assert library_rates("deepseek", "deepseek-chat", int(T0 // 86_400)) == "dynamic"
    peak = _priced(_node(provider="deepseek", model="deepseek-chat", input_tokens=1000,
                         output_tokens=500, start=T0))  # 09:00 UTC
    assert peak["cost_usd"] == pytest.approx(0.00027 + 0.00055, abs=1e-12)
    off = _priced(_node(provider="deepseek", model="deepseek-chat", input_tokens=1000,
                        output_tokens=500, start=T0 + 11 * 3600))  # 20:00 UTC
    assert off["cost_usd"] == pytest.approx(0.000135 + 0.000275, abs=1e-12)


def test_bedrock_model_id() -> None:
    # Claude 3.5 Sonnet on Bedrock: $3 in / $15 out per MTok.
    r = _priced(_node(provider="aws.bedrock", model="anthropic.claude-3-5-sonnet-20240620-v1:0",
                      input_tokens=1000, output_tokens=500))
    assert r["cost_usd"] == pytest.approx(0.0105, abs=1e-12)


ALIAS_CASES = {  # alias: (genai-prices id, a model of that provider)
    "x_ai": ("x-ai", "grok-3"),
    "xai": ("x-ai", "grok-3"),
    "azure.ai.openai": ("azure", "gpt-4o"),
    "azure.ai.inference": ("azure", "gpt-4o"),
    "aws.bedrock": ("aws", "amazon.nova-pro-v1:0"),
    "gcp.vertex_ai": ("google", "gemini-2.5-flash"),
    "gcp.gemini": ("google", "gemini-2.5-flash"),
    "gcp.gen_ai": ("google", "gemini-2.5-flash"),
    "mistral_ai": ("mistral", "mistral-large-latest"),
    "mistralai": ("mistral", "mistral-large-latest"),
}


def test_every_alias_has_a_case() -> None:
    assert set(ALIAS_CASES) == set(PROVIDER_ALIASES)


@pytest.mark.parametrize("alias", sorted(ALIAS_CASES))
def test_provider_alias(alias: str) -> None:
    target, model = ALIAS_CASES[alias]
    assert genai_provider(alias) == target
    assert genai_provider(alias.upper()) == target
    r = _priced(_node(provider=alias, model=model, input_tokens=1000, output_tokens=500))
    expected = calc_price(Usage(input_tokens=1000, output_tokens=500), model, provider_id=target,
                          genai_request_timestamp=datetime.fromtimestamp(T0, UTC))
    assert expected.provider.id == target
    assert r["priced"] and r["cost_usd"] == pytest.approx(float(expected.total_price), abs=1e-12)


def test_x_ai_is_unknown_to_the_library_without_the_table() -> None:
    with pytest.raises(LookupError):
        calc_price(Usage(input_tokens=1, output_tokens=1), "grok-3", provider_id="x_ai")


def test_unknown_model_stays_unpriced() -> None:
    r = _priced(_node(provider="openai", model="no-such-model-7", input_tokens=10,
                      output_tokens=5, reported_cost_usd=0.5))
    assert (r["cost_usd"], r["priced"], r["price_source"]) == (None, False, None)
    assert r["reported_cost_usd"] == 0.5  # kept beside ours, never instead of it
    assert _priced(_node(model=None, input_tokens=10))["priced"] is False


def test_bulk_rates_equal_calc_price_across_many_models() -> None:
    snap = data_snapshot.get_snapshot()
    models = [(p.id, m.id) for p in snap.providers for m in p.models]
    rng = random.Random(20261116)
    checked = 0
    for provider, model in rng.sample(models, 400):
        i = rng.choice([rng.randint(0, 150_000), rng.randint(150_000, 1_200_000)])
        cr, cw = rng.randint(0, i // 2), rng.randint(0, i // 4)
        o = rng.randint(0, 8000)
        rs = rng.randint(0, o)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = float(calc_price(
                    Usage(input_tokens=i, output_tokens=o, cache_read_tokens=cr or None,
                          cache_write_tokens=cw or None, output_reasoning_tokens=rs or None),
                    model, provider_id=provider,
                    genai_request_timestamp=datetime.fromtimestamp(T0, UTC)).total_price)
        except (LookupError, ValueError):
            continue
        node = _node(provider=provider, model=model, input_tokens=i, output_tokens=o,
                     cache_read_tokens=cr, cache_write_tokens=cw, reasoning_tokens=rs)
        one, bulk = _priced(dict(node)), dict(node)
        Pricer().price_rows([bulk])  # the inlined hot path
        assert one["cost_usd"] == pytest.approx(want, rel=1e-9, abs=1e-12), (provider, model)
        assert bulk == one
        checked += 1
    assert checked > 300


def test_override_wins_and_prices_each_token_class() -> None:
    book = Book([_override(7, provider="openai", model_pattern="gpt-4o*", input_mtok=1.0,
                           cached_input_mtok=0.1, cache_write_mtok=2.0, output_mtok=4.0,
                           reasoning_mtok=8.0)])
    r = _priced(_node(provider="openai", model="gpt-4o-mini", input_tokens=1_000_000,
                      cache_read_tokens=300_000, cache_write_tokens=100_000,
                      output_tokens=50_000, reasoning_tokens=20_000), book)
    # 600k × $1 + 300k × $0.1 + 100k × $2 + 30k × $4 + 20k × $8, per MTok.
    assert r["cost_usd"] == pytest.approx(0.6 + 0.03 + 0.2 + 0.12 + 0.16, abs=1e-12)
    assert r["price_source"] == "override:7"
    other = _priced(_node(provider="anthropic", model="gpt-4o-mini", input_tokens=10), book)
    assert other["price_source"] != "override:7"  # provider does not match


def test_effective_date_boundary() -> None:
    start, end = T0, T0 + 86_400
    book = Book([_override(3, model_pattern="gpt-4o", valid_from=start, valid_to=end,
                           input_mtok=100.0, output_mtok=100.0)])
    def at(ts: float) -> dict[str, Any]:
        return _priced(_node(provider="openai", model="gpt-4o", input_tokens=1000,
                             output_tokens=0, start=ts), book)
    assert at(start)["price_source"] == "override:3"  # valid_from is inclusive
    assert at(start)["cost_usd"] == pytest.approx(0.1)
    assert at(end - 0.001)["price_source"] == "override:3"
    assert at(end)["price_source"] == GENAI_PRICES_SOURCE  # valid_to is exclusive
    assert at(end)["cost_usd"] == pytest.approx(0.0025)
    assert at(start - 0.001)["price_source"] == GENAI_PRICES_SOURCE


def test_most_specific_override_wins() -> None:
    book = Book([
        _override(1, model_pattern="*", input_mtok=9.0, output_mtok=9.0),
        _override(2, model_pattern="gpt-4o*", input_mtok=5.0, output_mtok=5.0),
        _override(3, model_pattern="gpt-4o*", input_mtok=4.0, output_mtok=4.0,
                  valid_from=T0 - 10),
    ])
    r = _priced(_node(provider="openai", model="gpt-4o", input_tokens=1000), book)
    assert r["price_source"] == "override:3"  # the newest contract
    r = _priced(_node(provider="openai", model="gpt-4o", input_tokens=1000, start=T0 - 20), book)
    assert r["price_source"] == "override:2"  # more literal pattern beats "*"


def test_tool_human_and_reported_costs() -> None:
    book = Book([
        _override(1, node_kind="tool", model_pattern="web_search", per_call_usd=0.01),
        _override(2, node_kind="human", model_pattern="*", per_minute_usd=0.5),
    ])
    tool = _priced(_node("tool", tool_name="web_search", name="search"), book)
    assert (tool["cost_usd"], tool["price_source"]) == (0.01, "override:1")
    review = _priced(_node("human", name="review", review_minutes=4.0), book)
    assert (review["cost_usd"], review["price_source"]) == (2.0, "override:2")
    timed = _priced(_node("human", name="review", start=T0, end=T0 + 180), book)
    assert timed["cost_usd"] == pytest.approx(1.5)  # 3 minutes from start/end
    reported = _priced(_node("retrieval", name="kb", reported_cost_usd=0.002), book)
    assert (reported["cost_usd"], reported["price_source"]) == (0.002, "reported")
    free = _priced(_node("tool", tool_name="calculator"), book)
    assert (free["cost_usd"], free["priced"]) == (None, False)


def test_reported_cost_mismatch_flag() -> None:
    base = {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 500}
    assert _priced(_node(**base, reported_cost_usd=0.0075))["cost_mismatch"] is False
    assert _priced(_node(**base, reported_cost_usd=0.0077))["cost_mismatch"] is False  # 2.6%
    assert _priced(_node(**base, reported_cost_usd=0.0150))["cost_mismatch"] is True
    strict = _node(**base, reported_cost_usd=0.0077)
    Pricer(cost_tolerance=0.01).price_row(strict)
    assert strict["cost_mismatch"] is True
