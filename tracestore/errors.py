"""The one exception tree. The API edge turns each into ``application/problem+json``
(RFC 9457); the CLI edge turns each into a one-line message and a non-zero exit.

::

    TracestoreError                 500 (a bug of ours, never a client's mistake)
    ├── BadRequest                  400 undecodable body
    │   ├── UnsupportedMediaType    415 unknown Content-Type
    │   ├── PayloadTooLarge         413 body (or its decompression) over the limit
    │   ├── RequestTimeout          408 body not received in time (slow client)
    │   └── ValidationFailed        422 decodable but invalid; carries per-item errors
    ├── Unauthorized                401 no or unknown credentials
    ├── Forbidden                   403 a valid key without the scope the route needs
    ├── NotFound                    404 missing, or another project's (never 403 for those)
    ├── Conflict                    409
    └── Overloaded                  503 write queue full; carries Retry-After

>>> NotFound("trace 'ab' not found").status
404
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RequestTimeout",
    "TracestoreError",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
]


class TracestoreError(Exception):
    """Base of every error tracestore raises on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra: dict[str, Any] = extra or {}

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        body: dict[str, Any] = {
            "type": f"https://tracestore.dev/problems/{self.status}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(TracestoreError):
    status = 400
    title = "Bad request"


class UnsupportedMediaType(BadRequest):
    status = 415
    title = "Unsupported media type"


class PayloadTooLarge(BadRequest):
    status = 413
    title = "Payload too large"


class RequestTimeout(BadRequest):
    status = 408
    title = "Request timeout"


class ValidationFailed(BadRequest):
    status = 422
    title = "Validation failed"


class Unauthorized(TracestoreError):
    status = 401
    title = "Unauthorized"


class Forbidden(TracestoreError):
    status = 403
    title = "Forbidden"


class NotFound(TracestoreError):
    status = 404
    title = "Not found"


class Conflict(TracestoreError):
    status = 409
    title = "Conflict"


class Overloaded(TracestoreError):
    status = 503
    title = "Service overloaded"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, extra={"retry_after": retry_after})
        self.retry_after = retry_after
