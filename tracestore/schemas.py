"""Wire schemas: what clients send (``*In``) and what the API returns (``*Public``).

Times are accepted as ISO 8601 strings or epoch numbers (seconds; milli-, micro- and
nanoseconds are recognised by magnitude) and are always returned as ISO 8601 UTC strings.

>>> to_epoch("2026-11-16T09:00:00Z")
1794819600.0
>>> to_epoch(1794819600000)  # milliseconds
1794819600.0
>>> to_epoch("1794819600")  # epoch seconds as text (query parameters)
1794819600.0
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from analyzers.graph import EDGE_KINDS, NODE_KINDS

# Kinds that carry model usage: priced per token and counted as model calls in roll-ups.
MODEL_KINDS = frozenset({"llm", "embedding"})

__all__ = [
    "EDGE_KINDS",
    "MAX_COST_USD",
    "MAX_TOKENS",
    "MAX_VALUE_USD",
    "NODE_KINDS",
    "STORED_SINCE",
    "STORED_UNTIL",
    "DocumentIn",
    "EdgeIn",
    "EdgePublic",
    "FindingPublic",
    "IngestResult",
    "ItemError",
    "NodeIn",
    "NodePublic",
    "NulFree",
    "OutcomeIn",
    "OutcomePublic",
    "Page",
    "StoredTimestamp",
    "Timestamp",
    "TraceDetail",
    "TraceIn",
    "TracePublic",
    "iso",
    "query_epoch",
    "to_epoch",
]

NodeKind = Literal[
    "llm", "embedding", "retrieval", "rerank", "tool", "agent", "chain", "guardrail", "human",
    "outcome",
]
OutcomeStatus = Literal["success", "failure", "partial", "escalated"]


_MAX_EPOCH = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last instant datetime can render

# Bounds on what a producer may report (docs/limits.md, "Physical bounds"): beyond them a value
# is a bug or an attack, and left in it would poison every sum and report built on it.
# Tokens of one call: the longest context windows are ~10M tokens (Gemini, Llama 4 Scout), so
# 10**8 leaves 10x room; 10**12 tokens were priced at $2.5M before this bound.
MAX_TOKENS = 10**8
# Reported cost of one step: 10**8 tokens at the dearest list price (~$600 per Mtok output)
# is $60k; $100k is the bound.
MAX_COST_USD = 100_000.0
# An outcome's value: a trillion dollars, so that even 10**6 of them sum far below a double's
# range (a sum of two 1.7e308 values overflowed PostgreSQL's double precision).
MAX_VALUE_USD = 1e12
# Stored timestamps (node start/end, outcome time) lie in the years 2000-2099 (UTC, with a
# day of slack either side for time zones): earlier is an unset or garbage clock, later a
# wrong unit or a corrupt value (a start in the year 5138 was stored). A fixed window, not
# "now + a day": the contract states it (the JSON Schema's pattern and ranges), validation
# reads no clock, and replaying old data gives the same answer.
STORED_SINCE = 946_684_800.0  # 2000-01-01T00:00:00Z
STORED_UNTIL = 4_102_444_800.0  # 2100-01-01T00:00:00Z
_DAY = 86_400.0
_STORED = (STORED_SINCE - _DAY, STORED_UNTIL + _DAY)


class _OutOfRange(ValueError):
    """A well-formed time outside 1970-9999; ``clamped`` is the nearest time inside."""

    def __init__(self, value: Any, clamped: float) -> None:
        super().__init__(f"timestamp {str(value)[:40]!r} is out of range "
                         "(1970-01-01 to 9999-12-31)")
        self.clamped = clamped


def to_epoch(value: Any) -> float:
    """Epoch seconds from an ISO 8601 string, a datetime or an epoch number (finite, between
    1970 and 9999 — anything else is a ValueError, so a 422, never an overflow later).

    >>> to_epoch(1794819600000)
    1794819600.0
    >>> to_epoch(-5e279)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    _OutOfRange: timestamp '-5e+279' is out of range (1970-01-01 to 9999-12-31)
    """
    if type(value) is float and 0.0 <= value <= 1e11:
        return value  # epoch seconds, as every OTLP node has them: the checks below pass it as is
    if isinstance(value, bool):
        raise ValueError("a timestamp must be an ISO 8601 string or an epoch number")
    if isinstance(value, int | float):
        v = float(value)
        if v != v:
            raise ValueError("a timestamp must be a number, not NaN")
        if not 0.0 <= v < _MAX_EPOCH * 1e9:
            raise _OutOfRange(value, 0.0 if v < 0 else _MAX_EPOCH - 1)
        if v > 1e17:  # nanoseconds (OTLP)
            return v / 1e9
        if v > 1e14:
            return v / 1e6
        if v > 1e11:
            return v / 1e3
        return v
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            try:  # epoch seconds sent as text, e.g. a query parameter ``since=1794819600``
                number = float(value)
            except ValueError:
                raise ValueError(f"not an ISO 8601 timestamp: {value[:40]!r}") from None
            return to_epoch(number)
    else:
        raise ValueError("a timestamp must be an ISO 8601 string or an epoch number")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    t = dt.timestamp()
    if not 0.0 <= t < _MAX_EPOCH:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise _OutOfRange(value, 0.0 if t < 0 else _MAX_EPOCH - 1)
    return t


def query_epoch(value: Any) -> float:
    """:func:`to_epoch` for a query bound: a well-formed time before 1970 or after 9999 is the
    nearest representable one (``since=0310-02-17`` selects what ``since=1970-01-01`` does).

    >>> query_epoch(-5.0), query_epoch("0001-01-01T00:00:00+14:00")
    (0.0, 0.0)
    """
    try:
        return to_epoch(value)
    except _OutOfRange as exc:
        return exc.clamped


def stored_epoch(value: Any) -> float:
    """:func:`to_epoch` for a time that is stored: it must lie in the years 2000 to 2099
    (UTC, a day of slack either side; docs/limits.md).

    >>> stored_epoch("2026-11-16T09:00:00Z")
    1794819600.0
    >>> stored_epoch("1999-12-30T23:59:59Z")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: timestamp 1999-12-30T23:59:59.000Z is outside the accepted window ...
    """
    t = to_epoch(value)
    if not _STORED[0] <= t <= _STORED[1]:
        raise ValueError(f"timestamp {iso(t)} is outside the accepted window "
                         "(the years 2000 to 2099, UTC)")
    return t


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with a ``Z`` suffix, millisecond precision.

    >>> iso(1794819600.25)
    '2026-11-16T09:00:00.250Z'
    """
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


Timestamp = Annotated[
    float,
    BeforeValidator(query_epoch),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}
    ),
]
# A time a producer reports and we store (the years 2000-2099). The schema states the window:
# ISO strings of those years, epoch numbers within it in s, ms, us or ns (to_epoch tells them
# apart by magnitude).
StoredTimestamp = Annotated[
    float,
    BeforeValidator(stored_epoch),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "date-time", "pattern": r"^20\d\d-"},
                   *({"type": "number", "minimum": _STORED[0] * unit,
                      "maximum": _STORED[1] * unit} for unit in (1, 10**3, 10**6, 10**9))]}
    ),
]
Id = Annotated[str, Field(min_length=1, max_length=128)]
# A trace id appears in URL paths (/traces/{trace_id}), where a "/" cannot be told apart from
# the path's own separators, so ingest refuses it rather than store an unfetchable trace.
TraceId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^/]+$")]
def _whole(value: Any) -> Any:
    """``2.0`` is the integer 2 (JSON Schema's ``integer`` includes it); anything else is left
    to the strict check."""
    return int(value) if type(value) is float and value.is_integer() else value


# strict: a JSON boolean is not a count (``true`` was stored as 1), nor is 1.5 or "7".
# (Field before the validator, or the JSON Schema gets "ge"/"le" instead of minimum/maximum.)
Count = Annotated[int, Field(ge=0, le=MAX_TOKENS, strict=True), BeforeValidator(_whole)]
Usd = Annotated[float, Field(ge=-MAX_VALUE_USD, le=MAX_VALUE_USD)]


class NulFree(BaseModel):
    """A request body whose strings may not contain NUL (U+0000): PostgreSQL cannot store it,
    and SQLite would keep what PostgreSQL refuses. (Ingest items are checked by
    :class:`tracestore.limits.Limits` before validation instead.) Strict, like ingest items:
    no coercion the JSON Schema does not allow."""

    model_config = ConfigDict(strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        try:  # one C pass: orjson writes NUL as \u0000 (a text "\\u0000" matches too: walk)
            maybe = b"\\u0000" in orjson.dumps(data)
        except TypeError:  # not plain JSON (a model instance): its own fields were checked
            maybe = False
        stack = [data] if maybe else []
        while stack:
            v = stack.pop()
            if isinstance(v, str) and "\x00" in v:
                raise ValueError("text must not contain NUL (\\u0000) characters")
            if isinstance(v, dict):
                stack.extend(v.keys())
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)
        return data


class _In(BaseModel):
    # allow_inf_nan: JSON 1e400 decodes to inf, and protobuf doubles may be inf or NaN.
    # strict: what the JSON Schema says is what is accepted - no "1.5" for a number, no 1 or
    # "true" for a boolean (lax coercion accepted bodies the committed contract calls invalid).
    model_config = ConfigDict(extra="forbid", str_max_length=10_000_000, allow_inf_nan=False,
                              strict=True)


class DocumentIn(_In):
    id: Annotated[str, Field(min_length=1, max_length=512)]
    score: float | None = None
    tokens: Count | None = None
    content: str | None = None


class NodeIn(_In):
    """One step of a trace."""

    node_id: Id
    parent_id: Id | None = None
    kind: NodeKind
    source_kind: str | None = None
    name: Annotated[str, Field(max_length=1000)] = ""
    step: Annotated[str, Field(max_length=500)] | None = None
    start: StoredTimestamp | None = None
    end: StoredTimestamp | None = None
    status: Literal["ok", "error"] = "ok"
    error_type: str | None = None
    # llm / embedding
    provider: str | None = None
    model: str | None = None
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_read_tokens: Count = 0
    cache_write_tokens: Count = 0
    reasoning_tokens: Count = 0
    finish_reason: str | None = None
    prompt: str | None = None
    prompt_hash: str | None = None
    output: str | None = None
    output_hash: str | None = None
    # retrieval / rerank
    documents: list[DocumentIn] | None = None
    top_k: Count | None = None
    query: str | None = None
    # tool
    tool_name: str | None = None
    args: Any = None
    args_hash: str | None = None
    result: Any = None
    result_hash: str | None = None
    tool_call_id: str | None = None
    # human
    decision: Literal["approve", "edit", "reject", "override"] | None = None
    review_target: Id | None = None
    review_minutes: Annotated[float, Field(ge=0, le=525_600)] | None = None  # <= a year
    # relations
    retry_of: Id | None = None
    uses: list[Annotated[str, Field(min_length=1, max_length=512)]] | None = None
    # outcome node
    outcome_status: OutcomeStatus | None = None
    outcome_type: str | None = None
    outcome_value_usd: Usd | None = None
    # cost the producer computed itself (kept beside ours, never instead of it)
    reported_cost_usd: Annotated[float, Field(ge=0, le=MAX_COST_USD)] | None = None
    attributes: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> NodeIn:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end ({iso(self.end)}) is before start ({iso(self.start)}): "
                             "a duration cannot be negative")
        return self


class EdgeIn(_In):
    src: Id
    dst: Id
    kind: Literal["retry_of", "uses", "reviews", "link", "tool_call"]


class OutcomeIn(_In):
    """A business outcome, keyed by ``task_id``; posting it again updates it."""

    task_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    status: OutcomeStatus
    type: str | None = None
    value_usd: Usd | None = None
    occurred_at: StoredTimestamp | None = None
    trace_id: TraceId | None = None
    workflow: str | None = None


class TraceIn(_In):
    """One trace (or a part of one: parts sent in several requests are merged)."""

    trace_id: TraceId
    workflow: Annotated[str, Field(max_length=200)] | None = None
    task_id: Annotated[str, Field(max_length=256)] | None = None
    team: str | None = None
    feature: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    environment: str | None = None
    service_name: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    nodes: list[NodeIn] = Field(default_factory=list)
    edges: list[EdgeIn] = Field(default_factory=list)
    outcome: OutcomeIn | None = None

    @field_validator("nodes")
    @classmethod
    def _unique_node_ids(cls, nodes: list[NodeIn]) -> list[NodeIn]:
        """One item names each node once: a second node with the same id would silently
        replace the first when stored."""
        if len(nodes) > 1:
            seen: dict[str, int] = {}
            for j, n in enumerate(nodes):
                first = seen.setdefault(n.node_id, j)
                if first != j:
                    raise ValueError(f"node_id {n.node_id[:128]!r} appears twice in this "
                                     f"trace (nodes {first} and {j}); node ids are unique "
                                     "per trace")
        return nodes


class ItemError(BaseModel):
    item: int = Field(description="Index of the rejected item in the request (0 for a single "
                      "object).")
    trace_id: str | None = None
    loc: list[str | int] = Field(description="Path to the offending field inside the item.")
    msg: str


class IngestResult(BaseModel):
    accepted_traces: int
    accepted_nodes: int
    rejected_traces: int = 0
    errors: list[ItemError] = Field(default_factory=list)


class NodePublic(BaseModel):
    node_id: str
    parent_id: str | None
    kind: str
    source_kind: str | None
    name: str
    step: str | None
    start: str | None
    end: str | None
    status: str
    error_type: str | None
    provider: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    finish_reason: str | None
    prompt: str | None
    prompt_hash: str | None
    output: str | None
    output_hash: str | None
    documents: list[dict[str, Any]] | None
    top_k: int | None
    query: str | None
    tool_name: str | None
    args: Any
    args_hash: str | None
    result: str | None
    result_hash: str | None
    tool_call_id: str | None
    decision: str | None
    review_target: str | None
    review_minutes: float | None
    retry_of: str | None
    uses: list[str] | None
    outcome_status: str | None
    outcome_type: str | None
    outcome_value_usd: float | None
    cost_usd: float | None
    reported_cost_usd: float | None
    price_source: str | None
    priced: bool
    cost_mismatch: bool | None = Field(
        None, description="reported_cost_usd differs from cost_usd beyond the tolerance."
    )
    attributes: dict[str, Any] | None



class EdgePublic(BaseModel):
    src: str
    dst: str
    kind: str
    inferred: bool = False


class TracePublic(BaseModel):
    trace_id: str
    workflow: str | None
    task_id: str | None
    team: str | None
    feature: str | None
    user_id: str | None
    session_id: str | None
    environment: str | None
    service_name: str | None
    tags: list[str] | None
    started_at: str | None
    ended_at: str | None
    duration_ms: float | None
    node_count: int
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float = Field(description="Sum of priced node costs (USD).")
    unpriced_count: int = Field(description="LLM/embedding nodes with no known price; "
                                "their cost is not in cost_usd.")
    unpriced_tokens: int = Field(0, description="Tokens of the unpriced nodes (input + output).")
    reported_cost_usd: float | None
    cost_mismatch_count: int = Field(
        0, description="Nodes whose producer-reported cost differs from ours by more than "
        "the tolerance (setting reported_cost_tolerance)."
    )

    error_count: int
    analyzed_at: str | None


class OutcomePublic(BaseModel):
    task_id: str
    status: str
    type: str | None
    value_usd: float | None
    occurred_at: str | None
    trace_id: str | None
    workflow: str | None


class FindingPublic(BaseModel):
    """One detected waste (docs/analysis.md): the path, its dollars and the evidence behind it."""

    id: str = Field(description="Stable id: the same trace, code and path give the same id.")
    trace_id: str
    workflow: str | None
    analyzer: Literal["churn", "bloat", "routing"]
    code: str = Field(description="Stable finding code, e.g. `churn.exact_repeat`.")
    node_ids: list[str] = Field(description="The wasteful path's node ids, in path order.")
    wasted_tokens: int
    wasted_cost_usd: float = Field(description="Booked waste (USD); a node is booked once.")
    savings_usd: float = Field(description="What the suggested fix would save (USD).")
    confidence: float = Field(ge=0, le=1)
    evidence: dict[str, Any] = Field(description="JSON facts a person can check.")
    message: str = Field(description="One sentence a person can act on.")
    trace_started_at: str | None
    created_at: str | None = Field(description="When the analysis that found it ran.")
    wasted_seconds: float | None = Field(
        None, description="Time spent in the waste: the summed durations (end - start) of the "
        "finding's nodes that have both times; null when none has.")


class TraceDetail(TracePublic):
    nodes: list[NodePublic]
    edges: list[EdgePublic]
    outcomes: list[OutcomePublic] = Field(default_factory=list)
    findings: list[FindingPublic] = Field(default_factory=list)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )
