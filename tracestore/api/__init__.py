"""The REST API: ``create_app(settings)`` builds it; routes live one module per resource."""

from tracestore.api.app import create_app

__all__ = ["create_app"]
