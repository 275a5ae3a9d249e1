"""The one settings class. Nothing else in the project reads ``os.environ``.

Every field is documented (``description``) and a test checks each one appears in README.

>>> Settings(database_url="sqlite:///x.db").database_url
'sqlite:///x.db'
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Runtime configuration, read from ``TRACESTORE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="TRACESTORE_", extra="ignore")

    database_url: str = Field(
        "sqlite:///./tracestore.db",
        description="SQLAlchemy URL of the store: sqlite:///path.db (embedded default) "
        "or postgresql+psycopg://user@host/db.",
    )
    host: str = Field("127.0.0.1", description="Address `tracestore serve` binds to.")
    port: int = Field(8000, description="Port `tracestore serve` listens on.")
    max_body_bytes: int = Field(
        64 * 1024 * 1024,
        description="Largest request body accepted, checked before and after gzip "
        "decompression (OTLP spec's recommended 64 MiB); larger bodies get 413.",
    )
    max_nodes_per_trace: int = Field(
        50_000, description="Most nodes one trace may hold; more is rejected with 422."
    )
    max_attributes: int = Field(
        1024,
        ge=1,
        description="Most keys in one node's `attributes` or a trace's `metadata` (8x the "
        "OTel SDK default attribute count limit of 128); more is rejected with 422.",
    )
    max_string_chars: int = Field(
        1_048_576,
        ge=1,
        description="Longest single string anywhere in an ingested item (1 Mi characters); "
        "longer is rejected with 422. Content under it is kept up to max_content_chars.",
    )
    max_pending_writes: int = Field(
        32,
        ge=1,
        description="Ingest requests admitted at once (anyio's default of 40 worker threads "
        "minus 8 for reads); beyond it ingest answers 503 with Retry-After.",
    )
    max_pending_write_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1,
        description="Body bytes received (not declared) and held at once across ingest "
        "requests, counted as they arrive (4x the 64 MiB body limit); beyond it ingest answers "
        "503 with Retry-After.",
    )
    body_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Window in which an ingest request's body must keep arriving: every "
        "window must bring body_min_bytes_per_second times as many bytes (or the rest of the "
        "body); a slower body is answered 408 and its connection closed.",
    )
    body_min_bytes_per_second: int = Field(
        65_536,
        ge=1,
        description="Slowest rate, in bytes a second over each body_timeout_seconds window, "
        "at which an ingest body may arrive (64 KiB/s: a 64 MiB body may take ~17 minutes).",
    )
    max_values_per_request: int = Field(
        1_000_000,
        ge=1,
        description="Most JSON values (objects, arrays, scalars) or protobuf messages in one "
        "decompressed ingest body, counted before it is decoded; more is answered 413.",
    )
    max_items_per_request: int = Field(
        10_000,
        ge=1,
        description="Most trace or outcome items in one native ingest request; more is "
        "answered 413 before any item is validated.",
    )
    max_nodes_per_request: int = Field(
        50_000,
        ge=1,
        description="Most nodes (native, summed over the items) or spans (OTLP) in one ingest "
        "request (one trace at max_nodes_per_trace fits); more is answered 413 before any is "
        "validated.",
    )
    redact: str = Field(
        "api_keys,card_numbers",
        description="Built-in redaction rules applied at ingest before anything is written: "
        "a comma list of api_keys, card_numbers, emails (or none).",
    )
    redact_patterns: list[str] = Field(
        default_factory=list,
        description="Extra regular expressions redacted at ingest (JSON list in the env var).",
    )
    max_content_chars: int = Field(
        16_384,
        description="Characters of each content field (prompt, output, document, tool "
        "result) kept verbatim; beyond it the text is cut and its full hash kept.",
    )
    ingest_workers: int = Field(
        2,
        ge=0,
        description="Worker processes that decode, validate, map, redact, hash and price OTLP "
        "and native JSON request bodies while the single writer stores earlier ones (about "
        "one per core; 0 = in the request thread, same results).",
    )
    write_batch_size: int = Field(
        1000, description="Rows per INSERT ... ON CONFLICT statement on the write path."
    )
    settle_seconds: float = Field(
        30.0,
        description="A trace quiet this long is analysed by the background worker "
        "(0 turns the worker off).",
    )
    analysis_lease_seconds: float = Field(
        300.0,
        gt=0,
        description="How long a worker's claim on queued traces lasts; a claim of a worker "
        "that died is taken by another after this time.",
    )
    retention_days: float = Field(
        0.0,
        ge=0,
        description="Traces that started more than this many days ago are deleted with their "
        "nodes, edges, findings and summaries, hourly by the background analysis and "
        "`tracestore worker` (0 keeps everything).",
    )
    baseline_days: float = Field(
        28.0,
        gt=0,
        description="Days of stored traces, trailing the analysed window, from which "
        "per-workflow baselines (step norms, success rates by model tier) are computed.",
    )
    project: str = Field(
        "default", description="Project used by the CLI and by the open (no-keys) dev mode."
    )
    reported_cost_tolerance: float = Field(
        0.05,
        ge=0,
        description="Relative difference (0.05 = 5%) beyond which a producer-reported cost "
        "and ours disagree; such nodes are flagged (cost_mismatch) and counted on the trace.",
    )
    digest_schedule: str = Field(
        "",
        description="When the server posts the weekly digest of the last complete ISO week to "
        "digest_webhook_url: a weekday and UTC time such as 'MON 09:00'; empty = off.",
    )
    digest_webhook_url: str = Field(
        "",
        description="Webhook the scheduled digest is POSTed to (JSON with a Slack-compatible "
        "'text' field holding the Markdown, plus the JSON digest).",
    )
    alert_interval_seconds: float = Field(
        60.0,
        ge=0,
        description="How often the server evaluates every project's alert rules (seconds); "
        "0 = only on POST /api/v1/alerts/evaluate and after POST /api/v1/analyze.",
    )
    alert_webhook_url: str = Field(
        "",
        description="Webhook alert firings are POSTed to (Slack-compatible JSON {'text': ...}) "
        "when a rule names none; empty = recorded only.",
    )
    digest_base_url: str = Field(
        "",
        description="Base URL the digest's trace links point at "
        "({base}/traces/{id}, the trace page); empty = http://host:port of this server.",
    )
