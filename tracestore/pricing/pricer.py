"""Pricing of stored nodes: the project's price-book override, else genai-prices' bundled
data, else unpriced (``priced=False``, cost ``None`` — never a silent $0).

genai-prices' network auto-update (``UpdatePrices``) is never started: prices come from the
data bundled with the installed version, which is recorded as ``price_source``.

Speed: one ``calc_price`` costs tens of µs (``bench/pricing.py``), most of it
Decimal arithmetic. Where a model's price is linear in the token counts, :func:`library_rates`
derives per-token rates once per (provider, model, UTC day) by probing the model's price
object, and nodes are priced with a few float multiplications. Tiered prices (a cliff on the
request's input tokens) are linear between thresholds and get one set of rates per band.
Time-of-day prices and anything that fails the linearity check fall back to ``calc_price``
per node.

>>> thresholds, bands = library_rates("anthropic", "claude-sonnet-4-20250514", 20_400)
>>> thresholds, bands[0].cost(1300, 500, 200, 100, 0)
((), 0.010935)
"""

from __future__ import annotations

import time
import warnings
from bisect import bisect_left
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import genai_prices
from genai_prices import Usage, calc_price, data_snapshot, types
from sqlalchemy.orm import Session

from tracestore.pricing.book import MODEL_KINDS, Book, Override, Rates, load_book

__all__ = [
    "GENAI_PRICES_SOURCE",
    "PRICED_KINDS",
    "PROVIDER_ALIASES",
    "Pricer",
    "genai_provider",
    "library_cost",
    "library_rates",
]

GENAI_PRICES_SOURCE = f"genai-prices {genai_prices.__version__}"
PRICED_KINDS = MODEL_KINDS
DYNAMIC: Literal["dynamic"] = "dynamic"
_DAY = 86_400  # seconds per UTC day: library rates are cached per (provider, model, day)
_M = 1_000_000  # probe size; genai-prices quotes rates per million tokens
# Reported and computed cost agree when within this many USD whatever the tolerance: below
# the price of a single token of any model in genai-prices, above float rounding.
_ABS_TOLERANCE_USD = 1e-7

# OTel GenAI / OpenInference provider names -> genai-prices provider ids (docs/pricing.md).
# Without this table "x_ai" raises LookupError and "azure.ai.openai"
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


def genai_provider(provider: str | None) -> str | None:
    """Map a producer's provider name to a genai-prices provider id.

    >>> genai_provider("x_ai"), genai_provider("OpenAI"), genai_provider(None)
    ('x-ai', 'openai', None)
    """
    if not provider:
        return None
    p = provider.strip().lower()
    return PROVIDER_ALIASES.get(p, p)


def _usage(i: int, o: int, cr: int = 0, cw: int = 0, r: int = 0) -> Usage:
    return Usage(
        input_tokens=i,
        output_tokens=o,
        cache_read_tokens=cr or None,
        cache_write_tokens=cw or None,
        output_reasoning_tokens=r or None,
    )


def _is_dynamic(model: types.ModelInfo, provider_id: str) -> bool:
    """Prices that change within a day (off-peak discounts) or bill more than tokens (groq's
    audio minimum): priced by ``calc_price`` node by node."""
    if provider_id == "groq":
        return True
    return isinstance(model.prices, list) and any(
        isinstance(c.constraint, types.TimeOfDateConstraint) for c in model.prices
    )


def _flatten(price: types.ModelPrice, input_tokens: int) -> types.ModelPrice:
    """The linear price that applies at ``input_tokens``: genai-prices' tiers are cliffs on
    the request's total input tokens (``total_input_tokens > tier.start`` selects the tier's
    price for every token), so below, between and above thresholds the price is linear."""
    flat: dict[str, Any] = {}
    for key, value in price.__dict__.items():
        if isinstance(value, types.TieredPrices):
            chosen = value.base
            for tier in reversed(value.tiers):
                if input_tokens > tier.start:
                    chosen = tier.price
                    break
            value = chosen
        flat[key] = value
    return types.ModelPrice(**flat)


def _linear_rates(price: types.ModelPrice) -> Rates | None:
    """Per-token rates of a tier-free price, probed through genai-prices itself so that its
    rules for each token class apply; None if the probes show it is not linear."""

    def probe(*counts: int) -> Decimal:
        total: Decimal = price.calc_price(_usage(*counts))["total_price"]
        return total

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            base = probe(0, 0)
            d = [probe(_M, 0) - base, probe(_M, 0, _M) - base, probe(_M, 0, 0, _M) - base,
                 probe(0, _M) - base, probe(0, _M, 0, 0, _M) - base]
            mixed = probe(5 * _M, 3 * _M, 2 * _M, _M, _M)
        except ValueError:
            return None
    if mixed != base + 2 * d[0] + 2 * d[1] + d[2] + 2 * d[3] + d[4]:
        return None
    inp, cache_read, cache_write, out, reasoning = (float(x) / _M for x in d)
    return Rates(inp, cache_read, cache_write, out, reasoning, per_call=float(base))


@lru_cache(maxsize=16_384)
def library_rates(
    provider: str | None, model: str, day: int
) -> tuple[tuple[int, ...], tuple[Rates, ...]] | Literal["dynamic"] | None:
    """Rates of ``model`` on UTC ``day`` (days since the epoch) from genai-prices, as
    ``(thresholds, bands)``: a node with ``input_tokens`` uses
    ``bands[bisect_left(thresholds, input_tokens)]`` (linear models have one band);
    ``"dynamic"`` when the price is not piecewise linear in the tokens; None when unknown.

    >>> library_rates("google", "gemini-2.5-pro", 20_400)[0]
    (200000,)
    """
    try:
        prov, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    if _is_dynamic(info, prov.id):
        return DYNAMIC
    price = info.get_prices(datetime.fromtimestamp(day * _DAY, UTC))
    thresholds = sorted({
        tier.start for v in price.__dict__.values() if isinstance(v, types.TieredPrices)
        for tier in v.tiers
    })
    bands = [_linear_rates(_flatten(price, edge + 1))
             for edge in [-1, *thresholds]]  # -1: below the first threshold
    if any(b is None for b in bands):
        return DYNAMIC
    return tuple(thresholds), tuple(b for b in bands if b is not None)


@lru_cache(maxsize=65_536)
def library_cost(
    provider: str | None, model: str, ts: float, i: int, o: int, cr: int, cw: int, r: int
) -> float | None:
    """One node priced by ``calc_price`` itself (dynamic prices, inconsistent counts)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = calc_price(
                _usage(i, o, cr, cw, r),
                model_ref=model,
                provider_id=provider,
                genai_request_timestamp=datetime.fromtimestamp(ts, UTC),
            )
    except (LookupError, ValueError):
        return None
    total: Decimal = result.total_price
    return float(total)


def _minutes(row: dict[str, Any]) -> float | None:
    if row.get("review_minutes") is not None:
        return float(row["review_minutes"])
    if row.get("start") is not None and row.get("end") is not None:
        return max(0.0, (float(row["end"]) - float(row["start"])) / 60)
    return None


class Pricer:
    """Prices node rows (dicts with the :class:`tracestore.store.tables.Node` columns) in place.

    Project-aware: ``price_rows(rows, session=…, project_id=…)`` applies that project's price
    book; the compiled book is cached until its rows change. Library rates are cached per
    (provider, model, day) for the life of the process (the bundled data never changes).
    """

    def __init__(self, *, cost_tolerance: float = 0.05) -> None:
        self.cost_tolerance = cost_tolerance
        self._books: dict[int, tuple[tuple[Override, ...], Book]] = {}
        self._empty = Book([])

    def book(self, session: Session, project_id: int) -> Book:
        """The project's compiled price book (one small SELECT to check it is current)."""
        rows = tuple(load_book(session, project_id=project_id))
        cached = self._books.get(project_id)
        if cached is not None and cached[0] == rows:
            return cached[1]
        book = Book(list(rows))
        self._books[project_id] = (rows, book)
        return book

    def price_rows(
        self, rows: list[dict[str, Any]], *, session: Session | None = None,
        project_id: int | None = None,
    ) -> None:
        """Price ``rows`` in place (:meth:`price_row` each), with the project's price book when
        ``session`` and ``project_id`` are given."""
        book = (
            self.book(session, project_id)
            if session is not None and project_id is not None
            else self._empty
        )
        now = time.time()
        for row in rows:
            self.price_row(row, book, now=now)

    def price_row(self, row: dict[str, Any], book: Book | None = None, *,
                  now: float | None = None) -> None:
        """Set ``cost_usd``, ``price_source``, ``priced`` and ``cost_mismatch`` of one row."""
        ts = row.get("start") or row.get("end") or (now if now is not None else time.time())
        if row.get("kind") in MODEL_KINDS:
            cost, source = self._model_cost(row, book, ts)
        else:
            cost, source = self._step_cost(row, book, ts)
        rep = row.get("reported_cost_usd")
        row["cost_usd"] = cost
        row["priced"] = cost is not None
        row["price_source"] = source
        row["cost_mismatch"] = (
            cost is not None and rep is not None and source != "reported"
            and abs(rep - cost) > max(self.cost_tolerance * max(abs(cost), abs(rep)),
                                      _ABS_TOLERANCE_USD)
        )

    def _model_cost(self, row: dict[str, Any], book: Book | None,
                    ts: float) -> tuple[float | None, str | None]:
        model = row.get("model")
        if not model:
            return None, None
        provider = genai_provider(row.get("provider"))
        counts = (
            int(row.get("input_tokens") or 0), int(row.get("output_tokens") or 0),
            int(row.get("cache_read_tokens") or 0), int(row.get("cache_write_tokens") or 0),
            int(row.get("reasoning_tokens") or 0),
        )
        if book is not None and book.overrides:
            o = book.match(row["kind"], provider, model, ts)
            if o is not None:
                return o.rates().cost(*counts), o.source
        rule = library_rates(provider, model, int(ts // _DAY))
        if rule is None:
            return None, None
        i, o_, cr, cw, r = counts
        if rule != DYNAMIC and cr + cw <= i and r <= o_:
            thresholds, bands = rule
            return bands[bisect_left(thresholds, i)].cost(*counts), GENAI_PRICES_SOURCE
        cost = library_cost(provider, model, float(ts), *counts)
        return cost, GENAI_PRICES_SOURCE if cost is not None else None

    def _step_cost(self, row: dict[str, Any], book: Book | None,
                   ts: float) -> tuple[float | None, str | None]:
        """Tool, retrieval, human and other steps: a per-call or per-minute book rate, else
        what the producer reported, else unpriced."""
        target = row.get("tool_name") or row.get("model") or row.get("name") or ""
        if book is not None and book.overrides:
            o = book.match(row["kind"], genai_provider(row.get("provider")), target, ts)
            minutes = _minutes(row)
            if o is not None and (o.per_minute_usd is None or minutes is not None):
                cost = (o.per_call_usd or 0.0) + (o.per_minute_usd or 0.0) * (minutes or 0.0)
                return round(cost, 12), o.source
        rep = row.get("reported_cost_usd")
        return (rep, "reported") if rep is not None else (None, None)
