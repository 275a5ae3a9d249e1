"""Per-model rates for the analyzers, from :mod:`tracestore.pricing` (the analyzers package
never imports genai-prices)."""

from __future__ import annotations

from typing import Any

__all__ = ["analyzer_config"]


def analyzer_config() -> Any:
    """The analyzers' default configuration."""
    from analyzers.run import AnalyzerConfig

    return AnalyzerConfig()
