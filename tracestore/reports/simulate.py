"""The savings simulator: re-price the stored traces of a window under a scenario, without
changing them (docs/simulate.md).

A scenario combines three kinds of change, applied to every model call in the window:

- ``route``: calls of a step (``workflow`` + step key, the node's ``step`` or else its name) or
  of a whole workflow go to another model; token usage is kept, and reasoning tokens are dropped
  when the target is not a reasoning model (:func:`analyzers.tiers.is_reasoning`);
- ``fix_codes``: the fixes of those finding codes are applied: each finding's booked waste (its
  counterfactual, docs/analysis.md) and wasted tokens are removed from its nodes, split over
  them by cost;
- ``prices``: price-book entries (as in ``PUT /api/v1/prices``) put in front of the project's
  book for the simulation only (a contracted rate, say).

The answer has ``before`` and ``after`` blocks of the same shape, per workflow and per step:
spend, tokens, attempts (traces), successes (outcomes counted on the trace), cost per successful
outcome and its three levers, and the LMDI split of the change among the levers. Outcomes are
never assumed to change: a route to a model that did worse on that step in this corpus, or
that never ran it, is listed under ``risks``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from analyzers.tiers import is_reasoning
from analyzers.unit_economics import levers, lmdi
from tracestore.errors import ValidationFailed
from tracestore.pricing.book import Book, Override, PriceOverrideIn, load_book
from tracestore.pricing.pricer import Pricer, genai_provider
from tracestore.reports.queries import trace_conds
from tracestore.schemas import MODEL_KINDS, Timestamp
from tracestore.store.partitions import window_months
from tracestore.store.tables import FINDING_T, NODE_T, SUMMARY_T, TRACE_T

__all__ = ["RouteIn", "ScenarioIn", "SimulateIn", "SimulationPublic", "simulate"]

RISK_MARGIN = 0.05  # a target doing 5 points worse on a step than today's model is a risk


class RouteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    step: str | None = Field(None, max_length=500, description="Step key; null = every model "
                             "call of the workflow(s).")
    to_model: str = Field(min_length=1, max_length=200)
    to_provider: str | None = Field(None, max_length=100,
                                    description="Provider of to_model (default: genai-prices').")


class ScenarioIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: list[RouteIn] = Field(default_factory=list, max_length=100)
    fix_codes: list[str] = Field(default_factory=list, max_length=50)
    prices: list[PriceOverrideIn] = Field(default_factory=list, max_length=500)


class SimulateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: Timestamp | None = None
    until: Timestamp | None = None
    workflow: str | None = Field(None, max_length=200)
    scenario: ScenarioIn


class BlockPublic(BaseModel):
    spend_usd: float
    tokens: int
    attempts: int
    successes: int
    cost_per_outcome_usd: float | None
    cost_per_token_usd: float | None
    tokens_per_attempt: float | None
    attempts_per_outcome: float | None


class GroupSimPublic(BaseModel):
    workflow: str | None
    step: str | None = None
    before: BlockPublic
    after: BlockPublic
    saving_usd: float
    levers: dict[str, float] | None = Field(
        description="LMDI split of the change in cost per outcome among the three levers.")


class RiskPublic(BaseModel):
    workflow: str | None
    step: str | None
    to_model: str
    reason: str


class SimulationPublic(BaseModel):
    since: float | None
    until: float | None
    workflow: str | None
    before: BlockPublic
    after: BlockPublic
    saving_usd: float
    workflows: list[GroupSimPublic]
    steps: list[GroupSimPublic]
    risks: list[RiskPublic]


@dataclass
class _Call:
    trace_id: str
    workflow: str | None
    step: str
    row: dict[str, Any]
    cost: float
    tokens: int
    after_cost: float = 0.0
    after_tokens: int = 0


@dataclass
class _Acc:
    spend: float = 0.0
    tokens: int = 0
    traces: set[str] = field(default_factory=set)

    def add(self, cost: float, tokens: int, trace_id: str) -> None:
        self.spend += cost
        self.tokens += tokens
        self.traces.add(trace_id)


_NODE_COLS = ("node_id", "kind", "name", "step", "provider", "model", "input_tokens",
              "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
              "start", "end", "cost_usd", "reported_cost_usd", "review_minutes", "tool_name")


def _trace_conds(project_id: int, q: SimulateIn) -> list[Any]:
    return trace_conds(project_id, q.since, q.until, {"workflow": q.workflow or None})


def _load_calls(session: Session, project_id: int, q: SimulateIn) -> list[_Call]:
    t, n = TRACE_T.c, NODE_T.c
    conds = _trace_conds(project_id, q)
    stmt = (select(t.trace_id, t.workflow, *(n[c] for c in _NODE_COLS))
            .join(NODE_T, and_(n.project_id == t.project_id, n.trace_id == t.trace_id))
            .where(*conds, window_months(session, conds, n.trace_month),
                   (n.cost_usd > 0) | n.kind.in_(MODEL_KINDS)))
    calls = []
    for m in session.execute(stmt).mappings():
        row = {c: m[c] for c in _NODE_COLS}
        tokens = int(row["input_tokens"] or 0) + int(row["output_tokens"] or 0)
        calls.append(_Call(m["trace_id"], m["workflow"], row["step"] or row["name"] or "",
                           row, float(row["cost_usd"] or 0.0), tokens))
    return calls


def _successes(session: Session, project_id: int, q: SimulateIn) -> set[str]:
    s, t = SUMMARY_T.c, TRACE_T.c
    stmt = (select(s.trace_id).join(TRACE_T, and_(t.project_id == s.project_id,
                                                  t.trace_id == s.trace_id))
            .where(*_trace_conds(project_id, q), s.outcome_here.is_(True),
                   s.outcome_status == "success"))
    return set(session.execute(stmt).scalars())


def _fixed(session: Session, project_id: int, q: SimulateIn, codes: Sequence[str],
           calls: Sequence[_Call]) -> dict[tuple[str, str], tuple[float, float]]:
    """Per (trace, node): the dollars and the share of tokens the chosen fixes remove."""
    if not codes:
        return {}
    f, t = FINDING_T.c, TRACE_T.c
    # The codes are picked here, not in SQL: with ``code IN (…)`` SQLite walks
    # ix_findings_project_code once per trace of the window instead of the trace's key.
    stmt = (select(f.trace_id, f.node_ids, f.wasted_cost_usd, f.wasted_tokens, f.code)
            .join(TRACE_T, and_(t.project_id == f.project_id, t.trace_id == f.trace_id))
            .where(*_trace_conds(project_id, q)))
    by_node = {(c.trace_id, c.row["node_id"]): c for c in calls}
    wanted = set(codes)
    out: dict[tuple[str, str], tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))
    for trace_id, node_ids, waste, wasted_tokens, code in session.execute(stmt):
        if code not in wanted:
            continue
        members = [by_node[(trace_id, nid)] for nid in node_ids or ()
                   if (trace_id, nid) in by_node]
        total = sum(c.cost for c in members)
        tok_total = sum(c.tokens for c in members)
        for c in members:
            key = (trace_id, c.row["node_id"])
            usd, tok = out[key]
            usd += float(waste or 0.0) * (c.cost / total if total else 0.0)
            tok += float(wasted_tokens or 0) * (c.tokens / tok_total if tok_total else 0.0)
            out[key] = (min(usd, c.cost), min(tok, float(c.tokens)))
    return out


def _book(session: Session, project_id: int, prices: Sequence[PriceOverrideIn]) -> Book:
    extra = [Override(-(i + 1), genai_provider(p.provider), p.model_pattern, p.node_kind,
                      p.valid_from, p.valid_to, p.input_mtok, p.cached_input_mtok,
                      p.cache_write_mtok, p.output_mtok, p.reasoning_mtok, p.per_call_usd,
                      p.per_minute_usd, p.basis == "contracted", "simulated")
             for i, p in enumerate(prices)]
    return Book([*extra, *load_book(session, project_id=project_id)])


def _route_for(call: _Call, routes: Sequence[RouteIn]) -> RouteIn | None:
    if call.row["kind"] not in MODEL_KINDS:
        return None
    for r in routes:
        if r.step is None or r.step == call.step:
            return r
    return None


def _price_after(calls: Sequence[_Call], scenario: ScenarioIn, book: Book, pricer: Pricer,
                 fixed: dict[tuple[str, str], tuple[float, float]]) -> None:
    reprice = bool(scenario.prices)
    for c in calls:
        route = _route_for(c, scenario.route)
        cost, tokens = c.cost, c.tokens
        if route is not None or (reprice and c.row["kind"] in MODEL_KINDS):
            row = dict(c.row)
            if route is not None:
                row["model"], row["provider"] = route.to_model, route.to_provider
                if not is_reasoning(route.to_model) and row["reasoning_tokens"]:
                    row["output_tokens"] -= row["reasoning_tokens"]
                    row["reasoning_tokens"] = 0
            pricer.price_row(row, book)
            if row["cost_usd"] is None:
                raise ValidationFailed(f"no price is known for {row['model']!r}: add one to "
                                       "scenario.prices or pick another model")
            cost = float(row["cost_usd"])
            tokens = int(row["input_tokens"] or 0) + int(row["output_tokens"] or 0)
        usd, tok = fixed.get((c.trace_id, c.row["node_id"]), (0.0, 0.0))
        keep = 1.0 - (usd / c.cost if c.cost else 0.0)
        c.after_cost = cost * keep
        c.after_tokens = max(round(tokens - tok), 0)


def _block(acc: _Acc, successes: set[str]) -> BlockPublic:
    won = len(acc.traces & successes)
    lv = levers(cost=acc.spend, tokens=acc.tokens, attempts=len(acc.traces), outcomes=won)
    return BlockPublic(spend_usd=round(acc.spend, 6), tokens=acc.tokens,
                       attempts=len(acc.traces), successes=won,
                       cost_per_outcome_usd=lv.cost_per_outcome,
                       cost_per_token_usd=lv.cost_per_token,
                       tokens_per_attempt=lv.tokens_per_attempt,
                       attempts_per_outcome=lv.attempts_per_outcome)


def _group(workflow: str | None, step: str | None, before: _Acc, after: _Acc,
           successes: set[str]) -> GroupSimPublic:
    b, a = _block(before, successes), _block(after, successes)
    split = lmdi(levers(cost=before.spend, tokens=before.tokens, attempts=b.attempts,
                        outcomes=b.successes),
                 levers(cost=after.spend, tokens=after.tokens, attempts=a.attempts,
                        outcomes=a.successes))
    return GroupSimPublic(workflow=workflow, step=step, before=b, after=a,
                          saving_usd=round(before.spend - after.spend, 6),
                          levers=split.parts if split else None)


def _risks(calls: Iterable[_Call], routes: Sequence[RouteIn],
           successes: set[str]) -> list[RiskPublic]:
    """A routed step is a risk when its target never ran it here, or its traces succeeded
    RISK_MARGIN less often with the target than with today's models."""
    runs: dict[tuple[str | None, str, str], set[str]] = defaultdict(set)
    for c in calls:
        if c.row["model"]:
            runs[(c.workflow, c.step, c.row["model"])].add(c.trace_id)
    out: dict[tuple[str | None, str, str], RiskPublic] = {}
    for c in calls:
        route = _route_for(c, routes)
        if route is None or c.row["model"] == route.to_model:
            continue
        key = (c.workflow, c.step, route.to_model)
        if key in out:
            continue
        target = runs.get(key, set())
        today = runs[(c.workflow, c.step, c.row["model"])]
        if not target:
            reason = "never ran this step in the window: its success here is unknown"
        else:
            rate_t = len(target & successes) / len(target)
            rate_now = len(today & successes) / len(today)
            if rate_t >= rate_now - RISK_MARGIN:
                continue
            reason = (f"succeeded on {rate_t:.0%} of {len(target)} traces here, against "
                      f"{rate_now:.0%} with {c.row['model']}")
        out[key] = RiskPublic(workflow=c.workflow, step=c.step, to_model=route.to_model,
                              reason=reason)
    return list(out.values())


def simulate(session: Session, *, project_id: int, q: SimulateIn,
             pricer: Pricer) -> SimulationPublic:
    """Run ``q.scenario`` over the window; nothing stored changes."""
    calls = _load_calls(session, project_id, q)
    successes = _successes(session, project_id, q)
    fixed = _fixed(session, project_id, q, q.scenario.fix_codes, calls)
    _price_after(calls, q.scenario, _book(session, project_id, q.scenario.prices), pricer,
                 fixed)
    # Keys: (workflow, None) per workflow, (workflow, step) per step.
    before: dict[tuple[str | None, str | None], _Acc] = defaultdict(_Acc)
    after: dict[tuple[str | None, str | None], _Acc] = defaultdict(_Acc)
    all_before, all_after = _Acc(), _Acc()
    for c in calls:
        for key in ((c.workflow, None), (c.workflow, c.step)):
            before[key].add(c.cost, c.tokens, c.trace_id)
            after[key].add(c.after_cost, c.after_tokens, c.trace_id)
        all_before.add(c.cost, c.tokens, c.trace_id)
        all_after.add(c.after_cost, c.after_tokens, c.trace_id)
    total = _group(None, None, all_before, all_after, successes)
    groups = [_group(w, st, before[(w, st)], after[(w, st)], successes)
              for (w, st) in sorted(before, key=lambda k: (k[0] or "", k[1] or ""))]
    return SimulationPublic(
        since=q.since, until=q.until, workflow=q.workflow, before=total.before,
        after=total.after, saving_usd=total.saving_usd,
        workflows=[g for g in groups if g.step is None],
        steps=[g for g in groups if g.step is not None],
        risks=_risks(calls, q.scenario.route, successes))


