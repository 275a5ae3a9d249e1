"""Unit economics and wasteful paths over the precomputed ``trace_summaries`` (no node scans).

Library functions behind ``GET /api/v1/attribution``, ``GET /api/v1/paths``, the CLI reports
and the weekly digest:

* :func:`unit_economics` — per group: spend, unpriced share, attempts, outcomes by status, cost
  per successful outcome and its three levers, first-attempt success rate ``p``, the retry
  tail ``T/p``, waste by analyzer, value per dollar and the workflow baseline;
* :func:`lever_changes` — period over period, the LMDI split of the change in cost per outcome;
* :func:`wasteful_paths` — path signatures with their traces, success rate and waste.

Counting rules: an *attempt* is a trace; every attempt's cost counts, so a task served by a
failed attempt, a retry and a human escalation costs all three. A task's outcome is counted
once, on one attempt (see :mod:`tracestore.reports.summaries`), in the group and period of that
attempt. ``p`` is over first attempts whose task has an outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from analyzers.paths import PathGroup
from analyzers.unit_economics import Levers, LeverSplit, levers, lmdi, p95_attempts, retry_tail
from tracestore.errors import BadRequest
from tracestore.reports import queries as sq
from tracestore.reports.queries import summary_conds
from tracestore.store.tables import SETTING_T

__all__ = [
    "GROUP_COLUMNS",
    "GroupEconomics",
    "lever_changes",
    "parse_group_by",
    "unit_economics",
    "wasteful_paths",
    "workflow_settings",
]


# group_by name -> summary column
GROUP_COLUMNS = {"workflow": "workflow", "team": "team", "feature": "feature",
                 "user": "user_id", "model": "primary_model", "week": "week"}
# Per path signature: finding codes and example trace ids shown (the most wasteful traces,
# then the most recent).
TOP_CODES = 3
EXAMPLES = 3


@dataclass(frozen=True)
class GroupEconomics:
    """Unit economics of one group. Money in USD; ``None`` where a ratio is undefined."""

    key: dict[str, str | None]
    spend_usd: float
    tokens: int
    attempts: int
    tasks: int  # tasks whose first attempt is in the group
    model_calls: int
    unpriced_calls: int
    outcomes: dict[str, int]  # status -> count
    levers: Levers  # cost/token × tokens/attempt × attempts/outcome = cost per outcome
    first_attempts_decided: int
    first_attempt_successes: int
    productive_usd: float
    waste_usd: dict[str, float]  # analyzer -> USD
    waste_by_code: dict[str, float]
    value_usd: float | None
    baseline_cost_per_outcome_usd: float | None
    change: LeverSplit | None = field(default=None)

    @property
    def successes(self) -> int:
        return self.outcomes.get("success", 0)

    @property
    def cost_per_outcome_usd(self) -> float | None:
        return self.levers.cost_per_outcome

    @property
    def unpriced_share(self) -> float | None:
        return self.unpriced_calls / self.model_calls if self.model_calls else None

    @property
    def first_attempt_success_rate(self) -> float | None:
        if not self.first_attempts_decided:
            return None
        return self.first_attempt_successes / self.first_attempts_decided

    @property
    def mean_attempt_cost_usd(self) -> float | None:
        return self.spend_usd / self.attempts if self.attempts else None

    @property
    def retry_tail_usd(self) -> float | None:
        return retry_tail(self.mean_attempt_cost_usd, self.first_attempt_success_rate)

    @property
    def p95_attempts(self) -> int | None:
        return p95_attempts(self.first_attempt_success_rate)

    @property
    def value_per_dollar(self) -> float | None:
        if self.value_usd is None or not self.spend_usd:
            return None
        return self.value_usd / self.spend_usd

    @property
    def vs_baseline_usd(self) -> float | None:
        """Cost per outcome minus the baseline (negative = cheaper than the baseline)."""
        cpo, base = self.cost_per_outcome_usd, self.baseline_cost_per_outcome_usd
        return cpo - base if cpo is not None and base is not None else None


def parse_group_by(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"workflow,team"`` → ``("workflow", "team")``; unknown names are a 400."""
    names = value.split(",") if isinstance(value, str) else list(value or ())
    out = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    bad = [n for n in out if n not in GROUP_COLUMNS]
    if bad:
        raise BadRequest(f"cannot group by {', '.join(map(repr, bad))}; choose from "
                         f"{', '.join(GROUP_COLUMNS)}")
    return out


def workflow_settings(session: Session, *, project_id: int) -> dict[str, dict[str, Any]]:
    """Workflow name → its stored settings (baseline cost per outcome, outcome value)."""
    w = SETTING_T.c
    return {r["name"]: dict(r) for r in session.execute(
        select(SETTING_T).where(w.project_id == project_id)).mappings()}


def _economics(key: dict[str, str | None], t: dict[str, Any], codes: dict[str, float],
               settings: dict[str, dict[str, Any]]) -> GroupEconomics:
    by_status = {st: int(t[f"n_{st}"] or 0) for st in sq.OUTCOME_STATUSES if t[f"n_{st}"]}
    value = float(t["value"] or 0.0) if t["valued"] else None
    baseline = None
    if t["wf_min"] == t["wf_max"] and not t["wf_nulls"]:  # one workflow in the group
        baseline = (settings.get(t["wf_min"]) or {}).get("baseline_cost_per_outcome_usd")
    spend, tokens = float(t["cost"] or 0.0), int(t["tokens"] or 0)
    return GroupEconomics(
        key=key,
        spend_usd=spend,
        tokens=tokens,
        attempts=int(t["attempts"] or 0),
        tasks=int(t["tasks"] or 0),
        model_calls=int(t["model_calls"] or 0),
        unpriced_calls=int(t["unpriced"] or 0),
        outcomes=dict(sorted(by_status.items())),
        levers=levers(cost=spend, tokens=tokens, attempts=int(t["attempts"] or 0),
                      outcomes=by_status.get("success", 0)),
        first_attempts_decided=int(t["first_decided"] or 0),
        first_attempt_successes=int(t["first_ok"] or 0),
        productive_usd=float(t["productive"] or 0.0),
        waste_usd={a: float(t[a] or 0.0) for a in ("churn", "bloat", "routing")},
        waste_by_code=dict(sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))),
        value_usd=value,
        baseline_cost_per_outcome_usd=baseline,
    )


def unit_economics(
    session: Session,
    *,
    project_id: int,
    since: float | None = None,
    until: float | None = None,
    group_by: Sequence[str] = ("workflow",),
    workflow: str | None = None,
    team: str | None = None,
    feature: str | None = None,
    model: str | None = None,
) -> list[GroupEconomics]:
    """Unit economics of traces started in ``[since, until)``, one entry per group, sorted by
    spend (largest first). ``group_by`` names come from :data:`GROUP_COLUMNS`; ``model`` is a
    trace's primary model (the one with the largest share of its cost). ``group_by=()`` gives
    one group over everything (none when there are no traces). The ``model`` filter is the
    same key: traces whose primary model it is."""
    group_by = parse_group_by(group_by)
    cols = [GROUP_COLUMNS[g] for g in group_by]
    conds = summary_conds(project_id, since, until, {"workflow": workflow, "team": team,
                                                     "feature": feature, "primary_model": model})
    settings = workflow_settings(session, project_id=project_id)
    values = {wf: float(v["outcome_value_usd"]) for wf, v in settings.items()
              if v.get("outcome_value_usd") is not None}
    totals = sq.group_totals(session, conds, cols, values)
    codes = sq.waste_by_code(session, conds, cols)
    out = [_economics(dict(zip(group_by, k, strict=True)), t, codes.get(k, {}), settings)
           for k, t in totals.items()]
    out.sort(key=lambda g: (-g.spend_usd, tuple(str(v) for v in g.key.values())))
    return out


def lever_changes(
    previous: Iterable[GroupEconomics],
    current: Iterable[GroupEconomics],
    *,
    shift: Callable[[dict[str, str | None]], dict[str, str | None]] | None = None,
) -> list[GroupEconomics]:
    """``current`` with ``change`` set to the LMDI split against the ``previous`` group of the
    same key (``None`` when the group is new or either period has no defined levers).
    ``shift`` maps a previous group's key to the current key it compares with (e.g. its
    ``week`` to the next week)."""
    def norm(key: dict[str, str | None]) -> tuple[tuple[str, str | None], ...]:
        return tuple(sorted(key.items(), key=lambda kv: kv[0]))

    before = {norm(shift(g.key) if shift else g.key): g for g in previous}
    out = []
    for g in current:
        prev = before.get(norm(g.key))
        out.append(replace(g, change=lmdi(prev.levers, g.levers) if prev else None))
    return out


def wasteful_paths(
    session: Session,
    *,
    project_id: int,
    workflow: str | None = None,
    since: float | None = None,
    until: float | None = None,
    order: str = "waste",
    limit: int = 50,
    team: str | None = None,
    feature: str | None = None,
    model: str | None = None,
) -> list[PathGroup]:
    """Path signatures of the traces in ``[since, until)``, most wasteful first
    (``order="waste"``) or most expensive per successful outcome first
    (``order="cost_per_outcome"``; signatures without a success come first, as infinitely
    expensive, then by spend)."""
    if order not in ("waste", "cost_per_outcome"):
        raise BadRequest(f"order must be 'waste' or 'cost_per_outcome', not {order!r}")
    cols = ["workflow", "path_signature"]
    conds = summary_conds(project_id, since, until, {"workflow": workflow, "team": team,
                                                     "feature": feature, "primary_model": model})
    totals = sq.path_totals(session, conds)
    codes = sq.waste_by_code(session, conds, cols)
    groups = [
        PathGroup(
            workflow=k[0], signature=k[1] or "", traces=int(t["attempts"]),
            successes=int(t["n_success"] or 0), decided=int(t["decided"] or 0),
            cost_usd=float(t["cost"] or 0.0), waste_usd=float(t["waste"] or 0.0),
            top_codes=tuple(sorted(codes.get(k, {}).items(), key=lambda kv: (-kv[1], kv[0]))
                            [:TOP_CODES]),
            example_trace_ids=(),
        )
        for k, t in totals.items()
    ]
    if order == "waste":
        groups.sort(key=lambda g: (-g.waste_usd, -g.cost_usd, g.signature))
    else:
        groups.sort(key=lambda g: (g.cost_per_outcome_usd is not None,
                                   -(g.cost_per_outcome_usd or g.cost_usd), g.signature))
    groups = groups[:limit]
    examples = sq.example_traces(session, conds, cols, EXAMPLES,
                                 only=[(g.workflow, g.signature) for g in groups])
    return [replace(g, example_trace_ids=tuple(examples.get((g.workflow, g.signature), ())))
            for g in groups]
