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
    max_content_chars: int = Field(
        16_384,
        description="Characters of each content field (prompt, output, document, tool "
        "result) kept verbatim; beyond it the text is cut and its full hash kept.",
    )
    write_batch_size: int = Field(
        1000, description="Rows per INSERT ... ON CONFLICT statement on the write path."
    )
    settle_seconds: float = Field(
        30.0,
        description="A trace quiet this long is analysed by the background worker "
        "(0 turns the worker off).",
    )
    project: str = Field(
        "default", description="Project used by the CLI and by the open (no-keys) dev mode."
    )
