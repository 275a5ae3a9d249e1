"""Server-rendered pages for analysts (docs/pages.md)."""

from tracestore.api.pages.routes import html_csp, router

__all__ = ["html_csp", "router"]
