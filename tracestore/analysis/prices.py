"""Per-model rates for the analyzers' counterfactuals, from the same price book that priced
the nodes: the project's overrides first, else genai-prices' bundled data
(:func:`tracestore.pricing.pricer.library_rates`). The analyzers package never imports genai-prices;
it receives this table as ``AnalyzerConfig.price_table`` (model → USD per million tokens).

The table covers every model of the corpus plus the cheaper models the routing analyzer may
price a call on (``analyzers.tiers.cheaper_models``), at the rates in force on the run's
anchor day, so a run stays deterministic for a given store.

>>> table = price_table({(None, "gpt-4o")}, book=None, ts=1794182400.0)
>>> table["gpt-4o"]["input_mtok"], table["gpt-4o"]["output_mtok"], "gpt-4o-mini" in table
(2.5, 10.0, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import networkx as nx

from analyzers.graph import MODEL_KINDS
from analyzers.tiers import cheaper_models
from tracestore.pricing.book import Book, Rates
from tracestore.pricing.pricer import genai_provider, library_rates

__all__ = ["analyzer_config", "corpus_models", "price_table", "with_price_table"]

_DAY = 86_400.0
_MTOK = 1_000_000.0  # genai-prices and AnalyzerConfig.price_table quote USD per million


def analyzer_config() -> Any:
    """The analyzers' default configuration (an empty price table until a run fills it)."""
    from analyzers.run import AnalyzerConfig

    return AnalyzerConfig()


def corpus_models(G: nx.DiGraph[str]) -> set[tuple[str | None, str]]:
    """(genai-prices provider id, model) of every model call in ``G``."""
    return {
        (genai_provider(a.get("provider")), str(a["model"]))
        for _, a in G.nodes(data=True)
        if a.get("kind") in MODEL_KINDS and a.get("model")
    }


def _rates(provider: str | None, model: str, book: Book | None, ts: float) -> Rates | None:
    if book is not None and book.overrides:
        o = book.match("llm", provider, model, ts)
        if o is not None:
            return o.rates()
    lib = library_rates(provider, model, int(ts // _DAY))
    if isinstance(lib, tuple):
        return lib[1][0]  # the band below the first long-context threshold
    return None


def price_table(
    models: Iterable[tuple[str | None, str]], *, book: Book | None, ts: float
) -> dict[str, dict[str, float]]:
    """Rates of ``models`` and of their cheaper alternatives on the day of ``ts``; models
    without a known linear price are left out (the analyzers then fall back to rates
    observed in the corpus)."""
    wanted: dict[str, str | None] = {}
    for provider, model in sorted(models, key=lambda pm: (pm[1], pm[0] or "")):
        wanted.setdefault(model, provider)
        for alt in (*cheaper_models(model), *cheaper_models(model, reasoning=False)):
            wanted.setdefault(alt, provider)
    table: dict[str, dict[str, float]] = {}
    for model, provider in sorted(wanted.items()):
        r = _rates(provider, model, book, ts)
        if r is None and provider is not None:
            r = _rates(None, model, book, ts)  # a cheaper model may sit under another id
        if r is not None:
            table[model] = {
                "input_mtok": round(r.input * _MTOK, 9),
                "output_mtok": round(r.output * _MTOK, 9),
                "cache_read_mtok": round(r.cache_read * _MTOK, 9),
                "cache_write_mtok": round(r.cache_write * _MTOK, 9),
            }
    return table


def with_price_table(config: Any, table: dict[str, dict[str, float]]) -> Any:
    """``config`` with ``price_table`` set (unchanged when the config has no such field)."""
    if dataclasses.is_dataclass(config) and any(
        f.name == "price_table" for f in dataclasses.fields(config)
    ):
        return dataclasses.replace(config, price_table=table)  # type: ignore[type-var]
    return config
