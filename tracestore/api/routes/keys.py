"""API keys of the caller's project over REST (admin scope): list, create, revoke.

The same library functions back ``tracestore keys``; a created key is returned once."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tracestore.api.deps import AdminProjectDep, EngineDep
from tracestore.api.problems import PROBLEM_RESPONSES
from tracestore.auth import KeyInfo, create_key, list_keys, revoke_key
from tracestore.schemas import NulFree
from tracestore.store.engine import session_scope

router = APIRouter(prefix="/api/v1", tags=["keys"], responses=PROBLEM_RESPONSES)

Scope = Literal["ingest", "read", "admin"]


class KeyIn(NulFree):
    model_config = ConfigDict(extra="forbid")

    scopes: list[Scope] = Field(min_length=1, max_length=3,
                                description="ingest, read and/or admin (admin implies all).")
    name: Annotated[str, Field(max_length=200)] | None = None


class KeyPublic(BaseModel):
    id: int
    prefix: str = Field(description="First 11 characters of the key, to recognise it by.")
    project: str
    scopes: list[str]
    name: str | None
    created_at: float = Field(description="Epoch seconds.")
    revoked_at: float | None = None


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself. Shown once: only its salted hash is stored.")


def _public(info: KeyInfo) -> KeyPublic:
    return KeyPublic(id=info.id, prefix=info.prefix, project=info.project,
                     scopes=sorted(info.scopes), name=info.name, created_at=info.created_at,
                     revoked_at=info.revoked_at)


@router.get("/keys", response_model=list[KeyPublic], summary="List the project's API keys")
def get_keys(project: AdminProjectDep, engine: EngineDep) -> list[KeyPublic]:
    """Active and revoked keys of the caller's project (never the keys themselves)."""
    with session_scope(engine) as session:
        return [_public(k) for k in list_keys(session, project_id=project.id)]


@router.post("/keys", response_model=KeyCreated, status_code=201,
             summary="Create an API key in the caller's project")
async def post_key(body: KeyIn, project: AdminProjectDep, engine: EngineDep) -> KeyCreated:
    """The response carries the key once; store it then."""

    def create() -> KeyCreated:
        with session_scope(engine) as session:
            key, info = create_key(session, project_id=project.id, scopes=body.scopes,
                                   name=body.name, now=time.time())
        return KeyCreated(key=key, **_public(info).model_dump())

    return await run_in_threadpool(create)


# Key ids are INTEGER (32-bit on PostgreSQL): a larger one cannot exist, and querying it was a
# 500 ("integer out of range") there.
@router.delete("/keys/{key_id}", response_model=KeyPublic, summary="Revoke an API key")
def delete_key(key_id: Annotated[int, Path(ge=1, le=2**31 - 1)], project: AdminProjectDep,
               engine: EngineDep) -> KeyPublic:
    """Revoke a key of the caller's project; it stops working on the next request. Another
    project's key id is a 404, as a missing one is."""
    with session_scope(engine) as session:
        return _public(revoke_key(session, key_id_or_prefix=str(key_id), now=time.time(),
                                  project_id=project.id))
