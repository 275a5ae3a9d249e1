"""The application factory. No module-level app, engine or settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from tracestore import __version__
from tracestore.alerts.service import AlertScheduler
from tracestore.analysis.background import AnalysisWorker
from tracestore.api import pages
from tracestore.api.apischema import document_ingest_bodies
from tracestore.api.deps import document_auth
from tracestore.api.metrics import CountRequests, Metrics
from tracestore.api.metrics import router as metrics_router
from tracestore.api.middleware import AdmissionMiddleware
from tracestore.api.params import strict_params
from tracestore.api.problems import install_problem_handlers
from tracestore.api.routes import (
    alerts,
    attribution,
    digest,
    export,
    findings,
    health,
    ingest,
    keys,
    latency,
    otlp,
    prices,
    simulate,
    traces,
)
from tracestore.auth import check_open_mode
from tracestore.config import Settings
from tracestore.digest.service import start_scheduler
from tracestore.ingest.admission import Admission
from tracestore.ingest.otlp.prepare import PreparePool
from tracestore.ingest.pipeline import Writer
from tracestore.store.engine import create_schema, make_engine

__all__ = ["create_app"]

log = logging.getLogger("tracestore")


def _analysis_worker(app: FastAPI, engine: Engine, settings: Settings
                     ) -> AnalysisWorker | None:
    """The background analysis worker, started (None when ``settle_seconds`` is 0)."""
    if settings.settle_seconds <= 0:
        return None
    worker = AnalysisWorker(engine, settle_seconds=settings.settle_seconds,
                            baseline_days=settings.baseline_days,
                            suite=getattr(app.state, "analyzer_suite", None),
                            lease_seconds=settings.analysis_lease_seconds,
                            retention_days=settings.retention_days)
    worker.start()
    return worker


def _alert_scheduler(engine: Engine, settings: Settings) -> AlertScheduler | None:
    """The alert scheduler, started (None when ``alert_interval_seconds`` is 0)."""
    if settings.alert_interval_seconds <= 0:
        return None
    scheduler = AlertScheduler(engine, interval=settings.alert_interval_seconds,
                               default_url=settings.alert_webhook_url)
    scheduler.start()
    return scheduler


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. The engine and writer start in the lifespan and hang on ``app.state``."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        create_schema(engine)
        check_open_mode(engine, settings)
        app.state.engine = engine
        app.state.writer = writer = Writer(engine, settings)
        writer.on_write = app.state.metrics.observe_write
        # OTLP bodies are decoded, mapped and redacted in worker processes beside the writer.
        app.state.otlp_pool = pool = (
            PreparePool(settings.ingest_workers) if settings.ingest_workers > 0 else None)
        # First: a malformed digest_schedule stops the start before any thread runs.
        app.state.digest_scheduler = scheduler = start_scheduler(engine, settings)
        app.state.analysis_worker = worker = _analysis_worker(app, engine, settings)
        alert_scheduler = _alert_scheduler(engine, settings)
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            if worker is not None:
                worker.stop()
            if alert_scheduler is not None:
                alert_scheduler.stop()
            if pool is not None:
                pool.close()
            writer.close()
            engine.dispose()

    # Swagger UI and ReDoc from the assets fastapi-offline ships: /docs works without internet.
    app = FastAPIOffline(
        title="tracestore",
        version=__version__,
        description="Agent trace store and decision-trace analyzer: churn, context bloat, "
        "misrouting and cost per outcome.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics(app.state)  # GET /metrics (api/metrics.py)
    app.state.admission = Admission(settings.max_pending_writes, settings.max_pending_write_bytes)
    app.add_middleware(AdmissionMiddleware)
    install_problem_handlers(app)
    document_auth(app)  # 401/403 in the OpenAPI document of every keyed route
    document_ingest_bodies(app)  # TraceIn, OutcomeIn: every $ref resolves
    # Unknown query parameters and NUL in parameters are 422 on every route (api/params.py).
    checked = [Depends(strict_params)]
    for module in (health, ingest, traces, otlp, findings, prices, digest, attribution, keys,
                   export, simulate, latency, alerts):
        app.include_router(module.router, dependencies=checked)
    app.include_router(pages.router, dependencies=checked)  # analyst pages (docs/pages.md)
    app.add_middleware(pages.HtmlCsp)
    app.include_router(metrics_router)
    app.add_middleware(CountRequests)
    return app
