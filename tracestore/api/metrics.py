"""Operator metrics: ``GET /metrics`` in Prometheus text format (prometheus-client).

One :class:`Metrics` per app, on its own ``CollectorRegistry`` (nothing process-wide):

- counted as they happen: HTTP requests by route template, method and status class
  (``tracestore_http_requests_total``; an ingest rejection is a 4xx/5xx on an ingest route),
  nodes written and write-batch latency (``tracestore_ingest_nodes_written_total``,
  ``tracestore_write_batch_seconds``, from the writer);
- read at scrape time: ingest requests and bytes in flight and admission rejections (the
  write queue), analysis lag (age of the oldest trace changed in the last
  ``LAG_WINDOW_S`` and not analysed since), stored findings by code, digest and webhook
  deliveries by status. The store queries are cached for ``SCRAPE_CACHE_S`` so that a tight
  scrape interval does not turn into database load.

docs/operations.md lists every metric.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracestore.store.tables import DELIVERY_T, FINDING_T, PROJECT_T, TRACE_T

__all__ = ["CountRequests", "Metrics", "router"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LAG_WINDOW_S = 7 * 86400  # analysis lag looks at traces changed in the last week
SCRAPE_CACHE_S = 15.0  # Prometheus' default scrape interval


class _StoreCollector(Collector):
    """Gauges read from the store and the admission state when scraped."""

    def __init__(self, app_state: Any, cache_s: float) -> None:
        self.state = app_state
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def describe(self) -> list[Metric]:
        return []  # collected lazily: the registry must not query the store at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._admission()
        engine: Engine | None = getattr(self.state, "engine", None)
        if engine is None:
            return
        with self._lock:
            now = time.time()
            if self._cached is None or now - self._cached[0] >= self.cache_s:
                self._cached = (now, self._store(engine, now))
            yield from self._cached[1]

    def _admission(self) -> Iterator[Metric]:
        admission = getattr(self.state, "admission", None)
        if admission is None:
            return
        requests, nbytes = admission.in_flight
        yield GaugeMetricFamily("tracestore_ingest_in_flight_requests",
                                "Ingest requests admitted and not yet answered.", value=requests)
        yield GaugeMetricFamily("tracestore_ingest_in_flight_bytes",
                                "Body bytes of admitted ingest requests.", value=nbytes)
        yield CounterMetricFamily("tracestore_admission_rejections",
                                  "Ingest requests refused with 503 since start (write queue "
                                  "full).", value=admission.rejected)

    def _store(self, engine: Engine, now: float) -> list[Metric]:
        t, f, d = TRACE_T.c, FINDING_T.c, DELIVERY_T.c
        lag = GaugeMetricFamily("tracestore_analysis_lag_seconds",
                                "Age of the oldest trace changed in the last week and not "
                                "analysed since (0 when none waits).", labels=["project_id"])
        findings = GaugeMetricFamily("tracestore_findings", "Stored findings by code.",
                                     labels=["code"])
        deliveries = GaugeMetricFamily("tracestore_webhook_deliveries",
                                       "Digest webhook deliveries by status.",
                                       labels=["status"])
        with Session(engine) as session:
            # Labelled by id, not name: /metrics needs no key and must not list tenants.
            for (pid,) in session.execute(select(PROJECT_T.c.id)):
                oldest = session.execute(select(func.min(t.updated_at)).where(
                    t.project_id == pid, t.updated_at >= now - LAG_WINDOW_S,
                    or_(t.analyzed_at.is_(None), t.analyzed_at < t.updated_at))).scalar()
                lag.add_metric([str(pid)], max(now - float(oldest), 0.0) if oldest else 0.0)
            for code, n in session.execute(select(f.code, func.count()).group_by(f.code)):
                findings.add_metric([code], n)
            for status, n in session.execute(select(d.status, func.count())
                                             .group_by(d.status)):
                deliveries.add_metric([status], n)
        return [lag, findings, deliveries]


class Metrics:
    """The app's registry and the metrics counted as things happen."""

    def __init__(self, app_state: Any, *, scrape_cache_s: float = SCRAPE_CACHE_S) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter("tracestore_http_requests", "HTTP requests answered.",
                                ["route", "method", "status"], registry=self.registry)
        self.nodes_written = Counter("tracestore_ingest_nodes_written",
                                     "Nodes (spans) written to the store.",
                                     registry=self.registry)
        self.write_seconds = Histogram("tracestore_write_batch_seconds",
                                       "Time to write one ingest batch (one request's rows).",
                                       registry=self.registry)
        self.registry.register(_StoreCollector(app_state, scrape_cache_s))

    def observe_write(self, nodes: int, seconds: float) -> None:
        """Called by the writer after each committed batch."""
        self.nodes_written.inc(nodes)
        self.write_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class CountRequests:
    """ASGI middleware: count each answer by route template (not the raw path, which would
    make a series per trace id), method and status class. Pure ASGI: it only watches the
    response's start message, so bodies stream through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # no response started: the server error handler answers 500

        async def send_watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_watched)
        finally:
            metrics: Metrics | None = getattr(scope["app"].state, "metrics", None)
            if metrics is not None:
                path = getattr(scope.get("route"), "path", None) or "unmatched"
                metrics.requests.labels(path, scope["method"], f"{status // 100}xx").inc()


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def get_metrics(request: Request) -> Response:
    """Prometheus text exposition of :class:`Metrics` (no key needed, like ``/healthz``;
    it holds counts, no trace content)."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE)
