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
once, on one attempt (see :mod:`tracestore.summaries`), in the group and period of that
attempt. ``p`` is over first attempts whose task has an outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from analyzers.paths import PathGroup, TracePath, group_paths
from analyzers.unit_economics import LeverSplit, Levers, levers, lmdi, p95_attempts, retry_tail
from tracestore.errors import BadRequest
from tracestore.models import TraceSummary, WorkflowSetting

__all__ = [
    "GROUP_COLUMNS",
    "GroupEconomics",
    "parse_group_by",
    "unit_economics",
    "lever_changes",
    "wasteful_paths",
    "workflow_settings",
]

SUMMARY_T: Table = TraceSummary.__table__  # type: ignore[attr-defined]
SETTING_T: Table = WorkflowSetting.__table__  # type: ignore[attr-defined]

# group_by name -> summary column
GROUP_COLUMNS = {"workflow": "workflow", "team": "team", "feature": "feature",
                 "user": "user_id", "model": "primary_model", "week": "week"}
_COLS = ("trace_id", "workflow", "team", "feature", "user_id", "primary_model", "week",
         "cost_usd", "tokens", "model_calls", "unpriced_count", "productive_usd",
         "waste_churn_usd", "waste_bloat_usd", "waste_routing_usd", "waste_by_code",
         "attempt_index", "outcome_status", "outcome_here", "outcome_value_usd",
         "path_signature", "task_id")


@dataclass(frozen=True)
class GroupEconomics:
    """Unit economics of one group. Money in USD; ``None`` where a ratio is undefined."""

    key: dict[str, str | None]
    spend_usd: float
    tokens: int
    attempts: int
    tasks: int
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


def _load(session: Session, project_id: int, since: float | None, until: float | None,
          filters: dict[str, str | None]) -> list[dict[str, Any]]:
    s = SUMMARY_T.c
    conds: list[Any] = [s.project_id == project_id]
    if since is not None:
        conds.append(s.started_at >= since)
    if until is not None:
        conds.append(s.started_at < until)
    for name, value in filters.items():
        if value is not None:
            conds.append(s[GROUP_COLUMNS[name]] == value)
    stmt = select(*(s[c] for c in _COLS)).where(*conds)
    return [dict(r) for r in session.execute(stmt).mappings()]


def _aggregate(key: dict[str, str | None], rows: list[dict[str, Any]],
               settings: dict[str, dict[str, Any]]) -> GroupEconomics:
    spend = sum(r["cost_usd"] for r in rows)
    tokens = sum(r["tokens"] for r in rows)
    outcomes: dict[str, int] = {}
    value: float | None = None
    first_dec = first_ok = 0
    by_code: dict[str, float] = {}
    for r in rows:
        st = r["outcome_status"]
        if r["outcome_here"] and st:
            outcomes[st] = outcomes.get(st, 0) + 1
            if st == "success":
                v = r["outcome_value_usd"]
                if v is None:
                    v = (settings.get(r["workflow"] or "") or {}).get("outcome_value_usd")
                if v is not None:
                    value = (value or 0.0) + float(v)
        if r["attempt_index"] == 1 and st:
            first_dec += 1
            first_ok += bool(r["outcome_here"] and st == "success")
        for code, usd in (r["waste_by_code"] or {}).items():
            by_code[code] = by_code.get(code, 0.0) + usd
    workflows = {r["workflow"] for r in rows}
    baseline = None
    if len(workflows) == 1:
        baseline = (settings.get(next(iter(workflows)) or "") or {}).get(
            "baseline_cost_per_outcome_usd")
    return GroupEconomics(
        key=key,
        spend_usd=spend,
        tokens=tokens,
        attempts=len(rows),
        tasks=len({r["task_id"] for r in rows}),
        model_calls=sum(r["model_calls"] for r in rows),
        unpriced_calls=sum(r["unpriced_count"] for r in rows),
        outcomes=dict(sorted(outcomes.items())),
        levers=levers(cost=spend, tokens=tokens, attempts=len(rows),
                      outcomes=outcomes.get("success", 0)),
        first_attempts_decided=first_dec,
        first_attempt_successes=first_ok,
        productive_usd=sum(r["productive_usd"] for r in rows),
        waste_usd={a: sum(r[f"waste_{a}_usd"] for r in rows)
                   for a in ("churn", "bloat", "routing")},
        waste_by_code=dict(sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0]))),
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
) -> list[GroupEconomics]:
    """Unit economics of traces started in ``[since, until)``, one entry per group, sorted by
    spend (largest first). ``group_by`` names come from :data:`GROUP_COLUMNS`; ``model`` is a
    trace's primary model (the one with the largest share of its cost)."""
    group_by = parse_group_by(group_by)
    rows = _load(session, project_id, since, until,
                 {"workflow": workflow, "team": team, "feature": feature})
    groups: dict[tuple[str | None, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[GROUP_COLUMNS[g]] for g in group_by), []).append(r)
    settings = workflow_settings(session, project_id=project_id)
    out = [_aggregate(dict(zip(group_by, k, strict=True)), rs, settings)
           for k, rs in groups.items()]
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
) -> list[PathGroup]:
    """Path signatures of the traces in ``[since, until)``, most wasteful first
    (``order="waste"``) or most expensive per successful outcome first
    (``order="cost_per_outcome"``; signatures without a success come first, as infinitely
    expensive, then by spend)."""
    if order not in ("waste", "cost_per_outcome"):
        raise BadRequest(f"order must be 'waste' or 'cost_per_outcome', not {order!r}")
    rows = _load(session, project_id, since, until, {"workflow": workflow})
    groups = group_paths(
        TracePath(
            trace_id=r["trace_id"],
            signature=r["path_signature"] or "",
            cost_usd=r["cost_usd"],
            waste_usd=r["waste_by_code"] or {},
            success=bool(r["outcome_here"] and r["outcome_status"] == "success"),
            decided=bool(r["outcome_status"]),
            workflow=r["workflow"],
        )
        for r in rows
    )
    if order == "waste":
        groups.sort(key=lambda g: (-g.waste_usd, -g.cost_usd, g.signature))
    else:
        groups.sort(key=lambda g: (g.cost_per_outcome_usd is not None,
                                   -(g.cost_per_outcome_usd or g.cost_usd), g.signature))
    return groups[:limit]
