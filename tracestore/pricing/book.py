"""The price book: effective-dated, per-project overrides over genai-prices.

An override says "from ``valid_from`` (inclusive) until ``valid_to`` (exclusive), nodes of
``node_kind`` whose provider is ``provider`` (any when null) and whose model — or, for tool,
retrieval and human steps, tool name or step name — matches the glob ``model_pattern`` cost
these rates". Token rates are USD per million tokens by class; tools and other calls cost
``per_call_usd`` each; human review costs ``per_minute_usd`` per minute of review.

When several overrides match one node, the most specific wins: the latest ``valid_from``
(a new contract supersedes the old one), then a named provider over "any provider", then the
pattern with more literal characters, then the newest row.

>>> o = Override(1, "openai", "gpt-4o*", "llm", None, None, 2.0, None, None, 8.0, None,
...              None, None)
>>> o.matches("openai", "gpt-4o-mini", 1_800_000_000.0)
True
>>> o.rates().cache_read  # cached input falls back to the input rate
2e-06
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from tracestore.errors import ValidationFailed
from tracestore.schemas import MODEL_KINDS, NulFree, Timestamp, iso
from tracestore.store.tables import NODE_T, PRICE_T

__all__ = [
    "MODEL_KINDS",
    "PRICE_T",
    "Book",
    "Override",
    "PriceBookIn",
    "PriceOverrideIn",
    "PriceOverridePublic",
    "Rates",
    "UnpricedModel",
    "load_book",
    "override_public",
    "replace_book",
    "unpriced_models",
]

_PER_MTOK = 1_000_000  # book rates are quoted per million tokens, as providers quote them

PricedKind = Literal[
    "llm", "embedding", "retrieval", "rerank", "tool", "agent", "chain", "guardrail", "human"
]
Rate = Annotated[float, Field(ge=0, le=1_000_000)]


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token by class (inclusive counts: input includes cache reads and writes,
    output includes reasoning), plus a fixed USD amount per call.

    >>> Rates(3e-6, 3e-7, 3.75e-6, 1.5e-5, 1.5e-5).cost(1300, 500, 200, 100, 0)
    0.010935
    """

    input: float
    cache_read: float
    cache_write: float
    output: float
    reasoning: float
    per_call: float = 0.0

    def cost(self, inp: int, out: int, cache_read: int, cache_write: int, reasoning: int) -> float:
        total = (
            (inp - cache_read - cache_write) * self.input
            + cache_read * self.cache_read
            + cache_write * self.cache_write
            + (out - reasoning) * self.output
            + reasoning * self.reasoning
            + self.per_call
        )
        return round(total, 12)  # drop float dust below a pico-dollar


@dataclass(frozen=True, slots=True)
class Override:
    """One price-book row, in memory."""

    id: int
    provider: str | None
    model_pattern: str
    node_kind: PricedKind
    valid_from: float | None
    valid_to: float | None
    input_mtok: float | None
    cached_input_mtok: float | None
    cache_write_mtok: float | None
    output_mtok: float | None
    reasoning_mtok: float | None
    per_call_usd: float | None
    per_minute_usd: float | None
    contracted: bool = False
    note: str | None = None

    @property
    def source(self) -> str:
        return f"override:{self.id}"

    def active(self, ts: float) -> bool:
        """``valid_from`` inclusive, ``valid_to`` exclusive; null bounds are open."""
        return (self.valid_from is None or ts >= self.valid_from) and (
            self.valid_to is None or ts < self.valid_to
        )

    def matches(self, provider: str | None, target: str, ts: float) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        return fnmatchcase(target.lower(), self.model_pattern.lower()) and self.active(ts)

    def rates(self) -> Rates:
        inp = self.input_mtok or 0.0
        out = self.output_mtok or 0.0
        return Rates(
            input=inp / _PER_MTOK,
            cache_read=(self.cached_input_mtok if self.cached_input_mtok is not None else inp)
            / _PER_MTOK,
            cache_write=(self.cache_write_mtok if self.cache_write_mtok is not None else inp)
            / _PER_MTOK,
            output=out / _PER_MTOK,
            reasoning=(self.reasoning_mtok if self.reasoning_mtok is not None else out)
            / _PER_MTOK,
            per_call=self.per_call_usd or 0.0,
        )

    def _rank(self) -> tuple[float, int, int, int]:
        literal = sum(ch not in "*?[]" for ch in self.model_pattern)
        return (self.valid_from or float("-inf"), self.provider is not None, literal, self.id)


class Book:
    """A project's overrides, indexed for matching. Built once per change of the book."""

    def __init__(self, overrides: list[Override]) -> None:
        self.overrides = sorted(overrides, key=Override._rank, reverse=True)
        self._candidates: dict[tuple[str, str | None, str], list[Override]] = {}

    def candidates(self, kind: str, provider: str | None, target: str) -> list[Override]:
        """The overrides that match ``target`` at some time, most specific first."""
        key = (kind, provider, target.lower())
        cands = self._candidates.get(key)
        if cands is None:
            cands = [
                o for o in self.overrides
                if o.node_kind == kind
                and (o.provider is None or o.provider == provider)
                and fnmatchcase(key[2], o.model_pattern.lower())
            ]
            self._candidates[key] = cands
        return cands

    def match(self, kind: str, provider: str | None, target: str, ts: float) -> Override | None:
        """The winning override for one node, or None."""
        for o in self.candidates(kind, provider, target):
            if o.active(ts):
                return o
        return None


def _rates(*names: str) -> dict[str, Any]:
    return {"properties": {n: {"type": "number"} for n in names}, "required": list(names)}


_NEEDED_RATES: list[Any] = [
    {"properties": {"node_kind": {"const": "llm"}},  # also the default kind
     "allOf": [_rates("input_mtok", "output_mtok")]},
    {"properties": {"node_kind": {"const": "embedding"}}, "required": ["node_kind"],
     "allOf": [_rates("input_mtok")]},
    {"properties": {"node_kind": {"enum": [k for k in get_args(PricedKind)
                                           if k not in MODEL_KINDS]}},
     "required": ["node_kind"], "anyOf": [_rates("per_call_usd"), _rates("per_minute_usd")]},
]


class PriceOverrideIn(BaseModel):
    """One price-book entry as sent to ``PUT /api/v1/prices`` or ``tracestore prices import``."""

    # strict: the contract's types, no "1.5" for a rate (as ingest items, schemas._In).
    # The schema also states which rates each kind needs (the _needed rule below), so that no
    # schema-valid entry is refused (tests/test_schemathesis.py).
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), strict=True,
                              json_schema_extra={"anyOf": _NEEDED_RATES})

    provider: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        None, description="Provider id (mapped like node providers: x_ai → x-ai); null = any."
    )
    model_pattern: Annotated[str, Field(min_length=1, max_length=300)] = Field(
        description="Glob over the model (llm/embedding) or the tool/step name (others)."
    )
    node_kind: PricedKind = "llm"
    valid_from: Timestamp | None = Field(None, description="Inclusive; null = always.")
    valid_to: Timestamp | None = Field(None, description="Exclusive; null = open-ended.")
    input_mtok: Rate | None = Field(None, validate_default=True,
                                    description="USD per million uncached input tokens.")
    cached_input_mtok: Rate | None = Field(None, validate_default=True,
                                           description="USD/M cache reads (default input).")
    cache_write_mtok: Rate | None = Field(None, description="USD/M cache writes (default input).")
    output_mtok: Rate | None = Field(None, validate_default=True,
                                     description="USD per million output tokens.")
    reasoning_mtok: Rate | None = Field(None, description="USD/M reasoning (default output).")
    per_call_usd: Rate | None = Field(None, description="USD per call (tools, retrieval, ...).")
    per_minute_usd: Rate | None = Field(None, validate_default=True,
                                        description="USD per minute of human review.")
    basis: Literal["list", "contracted"] = "list"
    note: Annotated[str, Field(max_length=1000)] | None = None

    # Cross-field rules are field validators (fields validate in declaration order, so
    # ``info.data`` holds the earlier ones) so that a 422 names the offending field.
    @field_validator("valid_to")
    @classmethod
    def _after_from(cls, v: float | None, info: ValidationInfo) -> float | None:
        start = info.data.get("valid_from")
        if v is not None and start is not None and v <= start:
            raise ValueError("valid_to must be later than valid_from")
        return v

    @field_validator("input_mtok", "output_mtok", "per_minute_usd")
    @classmethod
    def _needed(cls, v: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("node_kind")
        if v is not None or kind is None:
            return v
        if info.field_name == "input_mtok" and kind in MODEL_KINDS:
            raise ValueError(f"a {kind} price needs input_mtok")
        if info.field_name == "output_mtok" and kind == "llm":
            raise ValueError("an llm price needs output_mtok")
        if info.field_name == "per_minute_usd" and kind not in MODEL_KINDS and (
            info.data.get("per_call_usd") is None
        ):
            raise ValueError(f"a {kind} price needs per_call_usd or per_minute_usd")
        return v


class PriceBookIn(NulFree):
    """The whole price book of a project, as ``PUT /api/v1/prices`` and ``tracestore prices
    import`` take it; it replaces the stored one."""

    model_config = ConfigDict(extra="forbid")

    overrides: list[PriceOverrideIn] = Field(max_length=10_000)  # a sanity bound, not a need


class PriceOverridePublic(PriceOverrideIn):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    id: int
    valid_from: str | None = None  # type: ignore[assignment]
    valid_to: str | None = None  # type: ignore[assignment]
    active: bool = Field(description="Whether the entry applies at the `at` instant.")


def _override(m: Any) -> Override:
    return Override(
        m["id"], m["provider"], m["model_pattern"], m["node_kind"], m["valid_from"],
        m["valid_to"], m["input_mtok"], m["cached_input_mtok"], m["cache_write_mtok"],
        m["output_mtok"], m["reasoning_mtok"], m["per_call_usd"], m["per_minute_usd"],
        bool(m["contracted"]), m["note"],
    )


def load_book(session: Session, *, project_id: int) -> list[Override]:
    """The project's overrides, oldest first."""
    rows = session.execute(
        select(PRICE_T).where(PRICE_T.c.project_id == project_id).order_by(PRICE_T.c.id)
    )
    return [_override(r._mapping) for r in rows]


def override_public(o: Override, *, at: float) -> PriceOverridePublic:
    """The wire form of one stored override; ``active`` is evaluated at ``at``."""
    return PriceOverridePublic.model_construct(
        id=o.id, provider=o.provider, model_pattern=o.model_pattern,
        node_kind=o.node_kind, valid_from=iso(o.valid_from), valid_to=iso(o.valid_to),
        input_mtok=o.input_mtok, cached_input_mtok=o.cached_input_mtok,
        cache_write_mtok=o.cache_write_mtok, output_mtok=o.output_mtok,
        reasoning_mtok=o.reasoning_mtok, per_call_usd=o.per_call_usd,
        per_minute_usd=o.per_minute_usd, basis="contracted" if o.contracted else "list",
        note=o.note, active=o.active(at),
    )


def replace_book(
    session: Session, *, project_id: int, items: list[PriceOverrideIn], normalise: Any
) -> list[int]:
    """Make the project's book exactly ``items``. An entry with the same (node kind, provider,
    pattern, valid_from) as a stored one keeps its id, so ``override:<id>`` sources on stored
    nodes stay meaningful; entries not sent are removed. Returns the ids in ``items`` order.
    ``normalise`` maps provider names to genai-prices ids. Does not commit."""
    seen: dict[tuple[Any, ...], int] = {}
    for i, item in enumerate(items):
        key = (item.node_kind, normalise(item.provider), item.model_pattern, item.valid_from)
        if key in seen:
            msg = (f"repeats overrides.{seen[key]}: same node_kind, provider, model_pattern "
                   "and valid_from")
            raise ValidationFailed(f"overrides.{i}: {msg}",
                                   extra={"errors": [{"loc": ["overrides", i], "msg": msg}]})
        seen[key] = i
    existing = {
        (r.node_kind, r.provider, r.model_pattern, r.valid_from): r.id
        for r in session.execute(
            select(PRICE_T.c.id, PRICE_T.c.node_kind, PRICE_T.c.provider,
                   PRICE_T.c.model_pattern, PRICE_T.c.valid_from)
            .where(PRICE_T.c.project_id == project_id)
        )
    }
    keep: list[int] = []
    for item in items:
        values = item.model_dump(exclude={"basis"})
        values["provider"] = normalise(item.provider)
        values["contracted"] = item.basis == "contracted"
        key = (item.node_kind, values["provider"], item.model_pattern, item.valid_from)
        oid = existing.get(key)
        if oid is not None and oid not in keep:
            session.execute(PRICE_T.update().where(PRICE_T.c.id == oid).values(values))
        else:
            values["project_id"] = project_id
            oid = session.execute(
                PRICE_T.insert().values(values).returning(PRICE_T.c.id)
            ).scalar_one()
        keep.append(int(oid))
    session.execute(
        delete(PRICE_T).where(PRICE_T.c.project_id == project_id, PRICE_T.c.id.not_in(keep))
    )
    return keep


class UnpricedModel(BaseModel):
    """A model seen on LLM/embedding nodes without a known price."""

    provider: str | None
    model: str | None
    nodes: int
    input_tokens: int
    output_tokens: int
    first_seen: str | None
    last_seen: str | None


def unpriced_models(
    session: Session, *, project_id: int, since: float | None = None, until: float | None = None
) -> list[UnpricedModel]:
    """Models of unpriced LLM/embedding nodes (by node start in ``[since, until)``), most
    tokens first."""
    n = NODE_T.c
    conds = [n.project_id == project_id, n.kind.in_(MODEL_KINDS), n.priced == False]  # noqa: E712
    if since is not None:
        conds.append(n.start >= since)
    if until is not None:
        conds.append(n.start < until)
    tokens = func.sum(n.input_tokens + n.output_tokens)
    rows = session.execute(
        select(n.provider, n.model, func.count(), func.sum(n.input_tokens),
               func.sum(n.output_tokens), func.min(n.start), func.max(n.start))
        .where(*conds)
        .group_by(n.provider, n.model)
        .order_by(tokens.desc(), func.count().desc(), case((n.model.is_(None), 1), else_=0),
                  n.model, n.provider)
    ).all()
    return [
        UnpricedModel(provider=r[0], model=r[1], nodes=r[2], input_tokens=int(r[3] or 0),
                      output_tokens=int(r[4] or 0), first_seen=iso(r[5]), last_seen=iso(r[6]))
        for r in rows
    ]
