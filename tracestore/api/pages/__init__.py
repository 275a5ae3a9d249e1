"""Server-rendered pages for analysts (docs/pages.md)."""

from tracestore.api.pages.routes import HtmlCsp, router

__all__ = ["HtmlCsp", "router"]
