"""Dependencies shared by the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tracestore.config import Settings
from tracestore.ingest import Writer, project_id_for

__all__ = ["ProjectCtx", "current_project", "get_session", "ProjectDep", "SessionDep",
           "SettingsDep", "WriterDep", "EngineDep"]


@dataclass(frozen=True)
class ProjectCtx:
    """The project a request acts on, and what the caller may do there."""

    id: int
    name: str
    scopes: frozenset[str]


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_writer(request: Request) -> Writer:
    writer: Writer = request.app.state.writer
    return writer


def current_project(request: Request) -> ProjectCtx:
    """The caller's project. With no API keys configured the server runs open on the
    ``default`` project (loopback binds only; see README, "Auth")."""
    engine = get_engine(request)
    name = request.app.state.settings.project
    return ProjectCtx(project_id_for(engine, name), name, frozenset({"ingest", "read", "admin"}))


def get_session(request: Request) -> Iterator[Session]:
    with Session(get_engine(request)) as session:
        yield session


ProjectDep = Annotated[ProjectCtx, Depends(current_project)]
SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
WriterDep = Annotated[Writer, Depends(get_writer)]
EngineDep = Annotated[Engine, Depends(get_engine)]
