"""A small Python client for tracestore's native ingest: ``Client`` and ``AsyncClient`` (httpx)
post traces and outcomes with retries, and :class:`TraceBuilder` records a trace's nodes with
context managers (nesting gives ``parent_id``; ``retry_of``, ``uses`` and ``reviews`` edges are
explicit arguments).

Retries: a 429 or 503 answer (the server's backpressure) and a connection error are retried
with exponential back-off, honouring ``Retry-After`` (seconds or an HTTP date) when the server
sends it, up to ``max_retries`` times; any other 4xx raises :class:`IngestError` at once with
the server's problem document (a 422 names the rejected items; the valid ones were stored).

The client imports nothing from the server side, so it runs in an agent's process with httpx
as its only dependency. See docs/client.md for a runnable example.

>>> ticks = iter(range(100))
>>> tb = TraceBuilder("t-doc", workflow="support_triage", clock=lambda: float(next(ticks)))
>>> with tb.node("agent", "triage") as agent:
...     with tb.node("llm", "classify", provider="openai", model="gpt-4o-mini") as llm:
...         llm.set(input_tokens=120, output_tokens=4)
>>> doc = tb.to_dict()
>>> [(n["kind"], n.get("parent_id")) for n in doc["nodes"]]
[('agent', None), ('llm', 'n1')]
>>> doc["nodes"][1]["input_tokens"], doc["nodes"][0]["end"] > doc["nodes"][0]["start"]
(120, True)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import httpx

__all__ = ["AsyncClient", "Client", "IngestError", "NodeBuilder", "TraceBuilder"]

RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER_S = 60.0  # never sleep longer than this on one Retry-After, whatever it says

JSON = dict[str, Any]


class IngestError(Exception):
    """The server refused a request (a 4xx other than 429, or retries ran out).

    ``status`` is the HTTP status, ``problem`` the ``application/problem+json`` body (for a
    422: ``errors`` lists each rejected item and ``accepted`` what was stored anyway)."""

    def __init__(self, status: int, problem: JSON) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or ""
        super().__init__(f"HTTP {status}: {detail}")


class NodeBuilder:
    """One node under construction; :meth:`set` adds fields (any ``NodeIn`` field)."""

    def __init__(self, fields: JSON) -> None:
        self.fields = fields

    @property
    def node_id(self) -> str:
        return str(self.fields["node_id"])

    def set(self, **fields: Any) -> None:
        self.fields.update({k: v for k, v in fields.items() if v is not None})


def _ref(node: NodeBuilder | str | None) -> str | None:
    return node.node_id if isinstance(node, NodeBuilder) else node


class TraceBuilder:
    """Builds one native trace (the ``POST /api/v1/traces`` shape).

    ``node()`` is a context manager: the node's ``start`` and ``end`` are taken from ``clock``
    (epoch seconds) on entry and exit, a node opened inside another gets it as ``parent_id``,
    and an exception inside marks it ``status="error"`` with ``error_type`` (and propagates).
    """

    def __init__(self, trace_id: str, *, workflow: str | None = None, task_id: str | None = None,
                 clock: Callable[[], float] = time.time, **fields: Any) -> None:
        self.trace: JSON = {"trace_id": trace_id, "nodes": [], "edges": []}
        self.trace.update({k: v for k, v in
                           {"workflow": workflow, "task_id": task_id, **fields}.items()
                           if v is not None})
        self._clock = clock
        self._stack: list[NodeBuilder] = []
        self._count = 0

    def _new(self, kind: str, name: str, node_id: str | None, fields: Mapping[str, Any]
             ) -> NodeBuilder:
        self._count += 1
        parent = self._stack[-1].node_id if self._stack else None
        body: JSON = {"node_id": node_id or f"n{self._count}", "kind": kind, "name": name}
        if parent is not None:
            body["parent_id"] = parent
        node = NodeBuilder(body)
        node.set(**fields)
        self.trace["nodes"].append(node.fields)
        return node

    @contextmanager
    def node(self, kind: str, name: str = "", *, node_id: str | None = None,
             retry_of: NodeBuilder | str | None = None,
             uses: Sequence[NodeBuilder | str] | None = None,
             reviews: NodeBuilder | str | None = None, **fields: Any) -> Iterator[NodeBuilder]:
        """Open a node; ``retry_of``/``reviews`` name an earlier node, ``uses`` the nodes or
        document ids this one consumed."""
        node = self._new(kind, name, node_id, {
            **fields,
            "retry_of": _ref(retry_of),
            "review_target": _ref(reviews),
            "uses": [u for u in map(_ref, uses) if u] if uses else None,
        })
        node.fields["start"] = self._clock()
        self._stack.append(node)
        try:
            yield node
        except BaseException as exc:
            node.set(status="error", error_type=type(exc).__name__)
            raise
        finally:
            self._stack.pop()
            node.fields["end"] = self._clock()

    def edge(self, src: NodeBuilder | str, dst: NodeBuilder | str, kind: str) -> None:
        """An explicit edge (``retry_of``, ``uses``, ``reviews``, ``link``, ``tool_call``)."""
        self.trace["edges"].append({"src": _ref(src), "dst": _ref(dst), "kind": kind})

    def outcome(self, status: str, **fields: Any) -> None:
        """The business outcome this trace reached (``success``, ``failure``, …)."""
        self.trace["outcome"] = {"status": status,
                                 **{k: v for k, v in fields.items() if v is not None}}

    def to_dict(self) -> JSON:
        return self.trace


def _items(payload: Any) -> list[Any]:
    items = payload if isinstance(payload, list | tuple) else [payload]
    return [i.to_dict() if isinstance(i, TraceBuilder) else i for i in items]


def _retry_after(response: httpx.Response | None, attempt: int, backoff: float) -> float:
    """Seconds to wait before the next attempt: the server's Retry-After if it sent one, else
    exponential back-off with jitter."""
    value = response.headers.get("retry-after") if response is not None else None
    if value:
        try:
            return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            try:
                delay = parsedate_to_datetime(value).timestamp() - time.time()
                return min(max(delay, 0.0), MAX_RETRY_AFTER_S)
            except (TypeError, ValueError):
                pass
    return float(backoff * (2 ** attempt) * (0.5 + random.random() / 2))


def _result(response: httpx.Response) -> JSON:
    if response.is_success:
        body: JSON = response.json()
        return body
    try:
        problem = response.json()
    except ValueError:
        problem = {"title": response.reason_phrase, "detail": response.text[:500]}
    raise IngestError(response.status_code, problem if isinstance(problem, dict) else {})


class _Base:
    def __init__(self, base_url: str, api_key: str | None, max_retries: int,
                 backoff: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.max_retries = max_retries
        self.backoff = backoff

    def _should_retry(self, response: httpx.Response | None, attempt: int) -> bool:
        retryable = response is None or response.status_code in RETRY_STATUSES
        return retryable and attempt < self.max_retries


class Client(_Base):
    """Synchronous client. Use as a context manager, or call :meth:`close`.

    ``Client("http://127.0.0.1:8000", api_key="ts_…").post_traces(trace)``"""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0,
                 max_retries: int = 5, backoff: float = 0.5,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, max_retries, backoff)
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def _post(self, path: str, payload: Any) -> JSON:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.post(self.base_url + path, json=payload,
                                           headers=self.headers)
            except httpx.TransportError:
                if not self._should_retry(None, attempt):
                    raise
            if response is not None and not self._should_retry(response, attempt):
                return _result(response)
            time.sleep(_retry_after(response, attempt, self.backoff))
            attempt += 1

    def post_traces(self, traces: Any) -> JSON:
        """Post one trace (a :class:`TraceBuilder` or a dict) or a list of them."""
        return self._post("/api/v1/traces", _items(traces))

    def post_outcomes(self, outcomes: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> JSON:
        """Post one outcome or a list (``{"task_id", "status", …}``)."""
        return self._post("/api/v1/outcomes", _items(outcomes))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncClient(_Base):
    """The same over ``httpx.AsyncClient``:
    ``async with AsyncClient(url) as c: await c.post_traces(t)``."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0,
                 max_retries: int = 5, backoff: float = 0.5,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, max_retries, backoff)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def _post(self, path: str, payload: Any) -> JSON:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._http.post(self.base_url + path, json=payload,
                                                 headers=self.headers)
            except httpx.TransportError:
                if not self._should_retry(None, attempt):
                    raise
            if response is not None and not self._should_retry(response, attempt):
                return _result(response)
            await asyncio.sleep(_retry_after(response, attempt, self.backoff))
            attempt += 1

    async def post_traces(self, traces: Any) -> JSON:
        return await self._post("/api/v1/traces", _items(traces))

    async def post_outcomes(self, outcomes: Mapping[str, Any] | Sequence[Mapping[str, Any]]
                            ) -> JSON:
        return await self._post("/api/v1/outcomes", _items(outcomes))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
