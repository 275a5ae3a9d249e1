"""Table rows (``table=True``). Wire schemas live in :mod:`tracestore.schemas`, analysis
types in :mod:`analyzers`; these classes never leave the storage layer.

Every per-trace table is keyed by ``(project_id, trace_id, …)`` so the schema can be
distributed by ``trace_id`` (Citus). On PostgreSQL the per-span tables (``nodes``, ``edges``)
are partitioned by ``trace_month``, the month (``yyyymm``, UTC) fixed on ``traces`` when a
trace's first part is written and carried on every row of the trace; their primary keys end
with it (:mod:`tracestore.store.partitions`). SQLite has the same columns and keys in plain
tables.
Times are UTC epoch seconds as ``float`` (microsecond precision; cheap to compare and index on
both SQLite and PostgreSQL); the API renders them as ISO 8601.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
)
from sqlmodel import Field, SQLModel

__all__ = [
    "AnalysisBaselines",
    "AnalysisClaim",
    "ApiKey",
    "DigestDelivery",
    "Edge",
    "FindingRow",
    "Node",
    "Outcome",
    "PriceOverride",
    "Project",
    "StoredResult",
    "Trace",
    "TraceSummary",
    "TraceWaste",
    "WorkflowSetting",
]


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=nullable))


# PostgreSQL: the per-span tables are range-partitioned by this column, one partition a month
# (tracestore.store.partitions creates them as rows arrive).
PARTITION_BY = {"postgresql_partition_by": "RANGE (trace_month)"}


def _month() -> Any:
    """The trace's month, ``yyyymm`` (UTC), on a per-span row: part of the key (a partition
    key must be in every unique key of a partitioned table)."""
    return Field(sa_column=Column("trace_month", Integer, nullable=False, primary_key=True))


def _count() -> Any:
    """A token count: 64-bit, because the schemas accept counts up to 10**12 and PostgreSQL's
    INTEGER stops at 2**31 - 1 (SQLite's INTEGER is 64-bit anyway)."""
    return Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))


class Project(SQLModel, table=True):
    __tablename__ = "projects"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=200)
    created_at: float


class Trace(SQLModel, table=True):
    __tablename__ = "traces"
    __table_args__ = (
        Index("ix_traces_project_start", "project_id", "started_at"),
        Index("ix_traces_project_workflow_start", "project_id", "workflow", "started_at"),
        Index("ix_traces_project_cost", "project_id", "cost_usd"),
        Index("ix_traces_project_task", "project_id", "task_id"),
        Index("ix_traces_project_updated", "project_id", "updated_at"),
        Index("ix_traces_project_month", "project_id", "trace_month"),
    )

    project_id: int = Field(primary_key=True)
    trace_id: str = Field(primary_key=True, max_length=128)
    workflow: str | None = None
    task_id: str | None = None
    team: str | None = None
    feature: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    environment: str | None = None
    service_name: str | None = None
    tags: list[str] | None = _json()
    metadata_: dict[str, Any] | None = Field(
        default=None, sa_column=Column("metadata", JSON, nullable=True)
    )
    started_at: float | None = None
    ended_at: float | None = None
    # Roll-ups: recomputed from the node rows on every write touching the trace.
    node_count: int = 0
    llm_calls: int = 0
    input_tokens: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    output_tokens: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    cost_usd: float = 0.0
    reported_cost_usd: float | None = None
    unpriced_count: int = 0
    # pricing roll-ups (nullable so create_schema can add them to an existing database)
    unpriced_tokens: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    cost_mismatch_count: int | None = None
    error_count: int = 0
    updated_at: float = 0.0
    analyzed_at: float | None = None
    # The month (yyyymm, UTC) of the trace's partitions, fixed by its first part: the earliest
    # node start of that part, else the time it was written (tracestore.store.partitions).
    # Nullable only so create_schema can add it to an older store, which it then fills.
    trace_month: int | None = None


class Node(SQLModel, table=True):
    __tablename__ = "nodes"
    __table_args__ = (
        Index("ix_nodes_project_model", "project_id", "provider", "model"),
        Index("ix_nodes_project_start", "project_id", "start"),
        PrimaryKeyConstraint("project_id", "trace_id", "node_id", "trace_month"),
        PARTITION_BY,
    )

    project_id: int = Field(primary_key=True)
    trace_id: str = Field(primary_key=True, max_length=128)
    node_id: str = Field(primary_key=True, max_length=128)
    parent_id: str | None = None
    kind: str
    source_kind: str | None = None
    name: str = ""
    step: str | None = None
    start: float | None = None
    end: float | None = None
    status: str = "ok"
    error_type: str | None = None
    # llm / embedding
    provider: str | None = None
    model: str | None = None
    input_tokens: int = _count()
    output_tokens: int = _count()
    cache_read_tokens: int = _count()
    cache_write_tokens: int = _count()
    reasoning_tokens: int = _count()
    finish_reason: str | None = None
    prompt: str | None = None
    prompt_hash: str | None = None
    output: str | None = None
    output_hash: str | None = None
    # retrieval / rerank
    documents: list[dict[str, Any]] | None = _json()
    top_k: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    query: str | None = None
    # tool
    tool_name: str | None = None
    args: Any = _json()
    args_hash: str | None = None
    result: str | None = None
    result_hash: str | None = None
    tool_call_id: str | None = None
    # human
    decision: str | None = None
    review_target: str | None = None
    review_minutes: float | None = None
    # explicit relations, turned into edges by the graph builder
    retry_of: str | None = None
    uses: list[str] | None = _json()
    # outcome node
    outcome_status: str | None = None
    outcome_type: str | None = None
    outcome_value_usd: float | None = None
    # cost
    cost_usd: float | None = None
    reported_cost_usd: float | None = None
    price_source: str | None = None
    priced: bool = False
    # reported cost differs from ours beyond the tolerance (setting reported_cost_tolerance)
    cost_mismatch: bool | None = None
    # anything else the producer sent, plus what was cut from content fields
    attributes: dict[str, Any] | None = _json()
    trace_month: int = _month()


class Edge(SQLModel, table=True):
    """Edges that are not implied by node columns: explicit native edges, span links and
    tool-call joins. ``parent``/``retry_of``/``uses``/``reviews`` come from node columns."""

    __tablename__ = "edges"
    __table_args__ = (
        PrimaryKeyConstraint("project_id", "trace_id", "src", "dst", "kind", "trace_month"),
        PARTITION_BY,
    )

    project_id: int = Field(primary_key=True)
    trace_id: str = Field(primary_key=True, max_length=128)
    src: str = Field(primary_key=True, max_length=128)
    dst: str = Field(primary_key=True, max_length=128)
    kind: str = Field(primary_key=True, max_length=32)
    inferred: bool = False
    trace_month: int = _month()


class Outcome(SQLModel, table=True):
    __tablename__ = "outcomes"
    __table_args__ = (Index("ix_outcomes_project_occurred", "project_id", "occurred_at"),)

    project_id: int = Field(primary_key=True)
    task_id: str = Field(primary_key=True, max_length=256)
    status: str
    type: str | None = None
    value_usd: float | None = None
    occurred_at: float | None = None
    trace_id: str | None = None
    node_id: str | None = None
    workflow: str | None = None
    updated_at: float = 0.0


class FindingRow(SQLModel, table=True):
    __tablename__ = "findings"
    __table_args__ = (
        # (project, trace, id): every key of a per-trace table leads with (project_id,
        # trace_id), so the table can be distributed on trace_id (docs/operations.md).
        PrimaryKeyConstraint("project_id", "trace_id", "id"),
        Index("ix_findings_project_trace", "project_id", "trace_id"),
        Index("ix_findings_project_cost", "project_id", "wasted_cost_usd"),
        Index("ix_findings_project_code", "project_id", "code"),
    )

    project_id: int = Field(primary_key=True)
    id: str = Field(primary_key=True, max_length=64)
    trace_id: str = Field(primary_key=True, max_length=128)
    workflow: str | None = None
    analyzer: str
    code: str
    node_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    wasted_tokens: int = _count()
    wasted_cost_usd: float = 0.0
    savings_usd: float = 0.0
    confidence: float = 0.0
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    message: str = ""
    trace_started_at: float | None = None
    created_at: float = 0.0


class PriceOverride(SQLModel, table=True):
    __tablename__ = "price_overrides"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(index=True)
    provider: str | None = None
    model_pattern: str
    valid_from: float | None = None
    valid_to: float | None = None
    input_mtok: float | None = None
    cached_input_mtok: float | None = None
    cache_write_mtok: float | None = None
    output_mtok: float | None = None
    reasoning_mtok: float | None = None
    per_call_usd: float | None = None
    per_minute_usd: float | None = None
    node_kind: str = "llm"
    contracted: bool = False
    note: str | None = None


class WorkflowSetting(SQLModel, table=True):
    __tablename__ = "workflow_settings"

    project_id: int = Field(primary_key=True)
    name: str = Field(primary_key=True, max_length=200)
    baseline_cost_per_outcome_usd: float | None = None
    outcome_value_usd: float | None = None
    description: str | None = None


class ApiKey(SQLModel, table=True):
    """An API key: only a salted hash is stored; ``prefix`` finds the one row to verify."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(index=True)
    prefix: str = Field(unique=True, index=True, max_length=32)
    salt: str = Field(max_length=64)
    key_hash: str = Field(max_length=128)
    scopes: str = Field(max_length=100)  # comma-separated subset of ingest,read,admin
    name: str | None = Field(default=None, max_length=200)
    created_at: float
    revoked_at: float | None = None


class TraceSummary(SQLModel, table=True):
    """Per-trace attribution, precomputed at analysis time (``tracestore.reports.summaries``) so the
    unit-economics and path reports never scan nodes. Task-level columns (attempt index,
    outcome) are refreshed whenever the task gains a trace or an outcome."""

    __tablename__ = "trace_summaries"
    __table_args__ = (
        Index("ix_summaries_project_workflow_start", "project_id", "workflow", "started_at"),
        Index("ix_summaries_project_start", "project_id", "started_at"),
        Index("ix_summaries_project_task", "project_id", "task_id"),
        # Covers GET /paths for a workflow and window (no table reads; bench/queries.py).
        Index("ix_summaries_paths", "project_id", "workflow", "started_at", "path_signature",
              "cost_usd", "waste_usd", "outcome_status", "outcome_here", "trace_id"),
    )

    project_id: int = Field(primary_key=True)
    trace_id: str = Field(primary_key=True, max_length=128)
    workflow: str | None = None
    team: str | None = None
    feature: str | None = None
    user_id: str | None = None
    task_id: str | None = None
    week: str | None = Field(default=None, max_length=10)  # ISO week of started_at, 2026-W47
    started_at: float | None = None
    cost_usd: float = 0.0
    tokens: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    model_calls: int = 0
    unpriced_count: int = 0
    productive_usd: float = 0.0
    waste_usd: float = 0.0
    waste_churn_usd: float = 0.0
    waste_bloat_usd: float = 0.0
    waste_routing_usd: float = 0.0
    waste_by_code: dict[str, float] | None = _json()
    path_signature: str | None = None
    primary_model: str | None = None  # the model with the largest share of the trace's cost
    models: list[str] | None = _json()
    # task level: refreshed by summaries.refresh_tasks
    attempt_index: int = 1  # 1 = the task's first trace by start time
    task_attempts: int = 1
    outcome_status: str | None = None  # the task's outcome, on every trace of the task
    outcome_here: bool = False  # this trace is the attempt the outcome is counted on
    outcome_value_usd: float | None = None
    summarized_at: float = 0.0


class DigestDelivery(SQLModel, table=True):
    """One attempt series to post a weekly digest to a webhook (``tracestore.digest.webhook``):
    ``status`` is ``ok`` or ``failed`` after ``attempts`` tries; the scheduler sends a week
    again only while no ``ok`` row exists for (project, week, url)."""

    __tablename__ = "digest_deliveries"
    __table_args__ = (Index("ix_digest_deliveries_project_week", "project_id", "week"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int
    week: str = Field(max_length=10)
    url: str = Field(max_length=2000)
    trigger: str = Field(default="manual", max_length=16)  # manual | schedule
    status: str = Field(max_length=16)
    attempts: int = 0
    http_status: int | None = None
    error: str | None = Field(default=None, max_length=2000)
    created_at: float
    delivered_at: float | None = None


class StoredResult(SQLModel, table=True):
    """What a page showed for a complete week, kept with the fingerprint of its inputs
    (``tracestore.store.stored``): keyed by page and its normalised parameters."""

    __tablename__ = "stored_results"

    project_id: int = Field(primary_key=True)
    page: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=64)  # SHA-256 of the parameters
    params: str = Field(sa_column=Column(Text, nullable=False))  # the parameters as JSON
    fingerprint: str = Field(max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))  # the page's data as JSON
    built_at: float


class AnalysisClaim(SQLModel, table=True):
    """The analysis queue (``tracestore.store.queue``): one row per trace whose analysis is
    due, written in the transaction that changed the trace (``updated_at`` equals the trace's),
    deleted by the analysis that stored findings for that change. A worker claims rows by
    setting ``lease_until``/``leased_by``; a lease past its time is free to be claimed again
    (the worker died)."""

    __tablename__ = "analysis_queue"

    project_id: int = Field(primary_key=True)
    trace_id: str = Field(primary_key=True, max_length=128)
    updated_at: float
    lease_until: float | None = None
    leased_by: str | None = Field(default=None, max_length=200)



class AlertRule(SQLModel, table=True):
    """One alert rule of a project (``tracestore.alerts``): the rule as sent (``rule``, JSON)
    and its state: ``firing`` from the evaluation that fired it until one that clears it."""

    __tablename__ = "alert_rules"

    project_id: int = Field(primary_key=True)
    name: str = Field(primary_key=True, max_length=100)
    rule: dict[str, Any] = _json()
    firing: bool = False
    fired_at: float | None = None
    last_value: float | None = None
    evaluated_at: float | None = None


class AlertEvent(SQLModel, table=True):
    """A rule firing or clearing, with its webhook delivery (``status`` ok | failed |
    not_sent, ``attempts`` as for digest deliveries)."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_project_at", "project_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int
    rule: str = Field(max_length=100)
    event: str = Field(max_length=16)  # fired | cleared
    at: float
    value: float
    threshold: float
    message: str = Field(max_length=2000)
    url: str | None = Field(default=None, max_length=2000)
    status: str = Field(default="not_sent", max_length=16)
    attempts: int = 0
    http_status: int | None = None
    error: str | None = Field(default=None, max_length=2000)

class TraceWaste(SQLModel, table=True):
    """A wasteful trace's booked waste by finding code, one row a code (written with its
    ``trace_summaries`` row by ``tracestore.reports.summaries``; only traces whose
    ``waste_usd > 0``): the one source of waste by code for the reports. It carries the
    summary's trace-level columns the reports filter and group on, so a report's waste by
    code is one index range read, with no join and no JSON unnesting."""

    __tablename__ = "trace_waste"
    __table_args__ = (
        # Covers waste by code for a workflow and window, by workflow or path (GET /paths).
        Index("ix_trace_waste_workflow", "project_id", "workflow", "started_at",
              "path_signature", "code", "wasted_usd"),
        Index("ix_trace_waste_start", "project_id", "started_at"),
    )

    project_id: int = Field(primary_key=True)
    trace_id: str = Field(primary_key=True, max_length=128)
    code: str = Field(primary_key=True)
    wasted_usd: float = 0.0
    # the trace's summary columns (trace level: never changed by the task refresh)
    workflow: str | None = None
    team: str | None = None
    feature: str | None = None
    user_id: str | None = None
    week: str | None = Field(default=None, max_length=10)
    started_at: float | None = None
    path_signature: str | None = None
    primary_model: str | None = None


class AnalysisBaselines(SQLModel, table=True):
    """A project's corpus baselines as the background analysis last computed them
    (``tracestore.analysis.background``): one computation every ``BASELINE_TTL_SECONDS``
    shared by every worker process on every host, instead of one per process. ``baselines``
    is ``analyzers.baseline.baselines_to_dict`` as JSON, ``price_table`` the analyzers'
    price table (``AnalyzerConfig.price_table``) filled for the corpus' models, so a worker
    reading the row analyses exactly as the one that computed it."""

    __tablename__ = "analysis_baselines"

    # no autoincrement: the key is the project's id (PostgreSQL would make a lone integer key
    # SERIAL)
    project_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    baseline_days: float
    since: float | None = None  # the corpus window (trace start), as baseline_window made it
    until: float | None = None
    computed_at: float
    computed_by: str = Field(default="", max_length=200)  # the worker's name
    baselines: str = Field(sa_column=Column(Text, nullable=False))
    price_table: str = Field(sa_column=Column(Text, nullable=False))


# The Core tables, for statements that bypass the ORM (bulk upserts, aggregate reads).
ALERT_EVENT_T: Table = AlertEvent.__table__  # type: ignore[attr-defined]
ALERT_RULE_T: Table = AlertRule.__table__  # type: ignore[attr-defined]
BASELINE_T: Table = AnalysisBaselines.__table__  # type: ignore[attr-defined]
CLAIM_T: Table = AnalysisClaim.__table__  # type: ignore[attr-defined]
DELIVERY_T: Table = DigestDelivery.__table__  # type: ignore[attr-defined]
EDGE_T: Table = Edge.__table__  # type: ignore[attr-defined]
FINDING_T: Table = FindingRow.__table__  # type: ignore[attr-defined]
KEY_T: Table = ApiKey.__table__  # type: ignore[attr-defined]
NODE_T: Table = Node.__table__  # type: ignore[attr-defined]
OUTCOME_T: Table = Outcome.__table__  # type: ignore[attr-defined]
PRICE_T: Table = PriceOverride.__table__  # type: ignore[attr-defined]
PROJECT_T: Table = Project.__table__  # type: ignore[attr-defined]
SETTING_T: Table = WorkflowSetting.__table__  # type: ignore[attr-defined]
STORED_T: Table = StoredResult.__table__  # type: ignore[attr-defined]
SUMMARY_T: Table = TraceSummary.__table__  # type: ignore[attr-defined]
TRACE_T: Table = Trace.__table__  # type: ignore[attr-defined]
WASTE_T: Table = TraceWaste.__table__  # type: ignore[attr-defined]
