"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from tracestore import __version__
from tracestore.api.deps import EngineDep

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=dict[str, str], summary="Health check")
def healthz(engine: EngineDep) -> dict[str, str]:
    """``ok`` when the database answers."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__, "database": engine.dialect.name}
