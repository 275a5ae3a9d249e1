"""Request parameters checked before any route runs (docs/api.md, "Errors"):

* a parameter a ``GET`` route does not declare is a 422 naming it, instead of being ignored
  (``/traces?min_cost=5`` would otherwise answer unfiltered data as if it were filtered);
* a NUL character (U+0000) in any path or query parameter is a 422: PostgreSQL cannot hold it
  in text, so such a value can match nothing and must not reach a query.

Applied to every router by :func:`tracestore.api.app.create_app` (``strict_params``), so routes
added later are covered.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request

from tracestore.errors import ValidationFailed

__all__ = ["ModelQuery", "declared_query_params", "strict_params"]

# The ``model`` filter of the report routes: the key of ``/attribution?group_by=model``.
ModelQuery = Annotated[str | None, Query(
    description="The trace's primary model (the one with the largest share of its cost; the "
    "key of /attribution?group_by=model)")]


def declared_query_params(dependant: Any) -> frozenset[str]:
    """The query parameter names a route's dependency tree declares (aliases as sent)."""
    names: set[str] = set()
    stack = [dependant]
    while stack:
        dep = stack.pop()
        names.update(f.alias for f in dep.query_params)
        stack.extend(dep.dependencies)
    return frozenset(names)


def _fail(loc: list[str], msg: str) -> ValidationFailed:
    return ValidationFailed(f"{'.'.join(loc)}: {msg}",
                            extra={"errors": [{"loc": loc, "msg": msg}]})


def strict_params(request: Request) -> None:
    """Refuse (422) NUL in path or query parameters, and query parameters a ``GET``/``HEAD``
    route does not declare."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise _fail(["path", name], "must not contain NUL (%00) characters")
    query = request.query_params
    for name, value in query.multi_items():
        if "\x00" in name or "\x00" in value:
            raise _fail(["query", name.replace("\x00", "")],
                        "must not contain NUL (%00) characters")
    route = request.scope.get("route")
    if request.method not in ("GET", "HEAD") or route is None or not query:
        return
    known = declared_query_params(route.dependant)
    unknown = sorted(set(query.keys()) - known)
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise _fail(["query", unknown[0]],
                    f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                    f"{', '.join(repr(u[:40]) for u in unknown[:5])}; this route accepts: "
                    f"{allowed}")
