"""The weekly churn digest, I/O side (docs/digest.md): gather a week's aggregates from the store,
build the pure :class:`analyzers.digest_types.Digest`, render it as Markdown, JSON or a
self-contained HTML page, and post it to a webhook on demand or on a schedule.

Modules: :mod:`.markdown`, :mod:`.jsonout`, :mod:`.html` (+ :mod:`.svg` charts) render;
:mod:`.gather` reads the store; :mod:`.webhook` delivers and :mod:`.schedule` decides when.
"""

from __future__ import annotations

from tracestore.digest.html import render_html
from tracestore.digest.jsonout import digest_json_schema, digest_to_dict, render_json
from tracestore.digest.markdown import render_markdown

__all__ = [
    "FORMATS",
    "digest_json_schema",
    "digest_to_dict",
    "render",
    "render_html",
    "render_json",
    "render_markdown",
]

FORMATS = ("md", "json", "html")


def render(digest: object, fmt: str, *, base_url: str) -> tuple[bytes, str]:
    """Render ``digest`` as ``fmt`` → (body, media type)."""
    from analyzers.digest_types import Digest

    assert isinstance(digest, Digest)
    if fmt == "md":
        return render_markdown(digest, base_url=base_url).encode(), "text/markdown; charset=utf-8"
    if fmt == "json":
        return render_json(digest), "application/json"
    if fmt == "html":
        return render_html(digest, base_url=base_url).encode(), "text/html; charset=utf-8"
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
