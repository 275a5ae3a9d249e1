"""The price book over REST: read it, replace it, list what is unpriced, re-price."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tracestore.api.deps import EngineDep, ProjectDep, SessionDep, WriterDep
from tracestore.api.problems import PROBLEM_RESPONSES
from tracestore.pricing.book import (
    PriceBookIn,
    PriceOverridePublic,
    UnpricedModel,
    load_book,
    override_public,
    replace_book,
    unpriced_models,
)
from tracestore.pricing.pricer import GENAI_PRICES_SOURCE, genai_provider
from tracestore.pricing.reprice import reprice
from tracestore.schemas import Timestamp, iso
from tracestore.store.engine import session_scope
from tracestore.store.stored import forget_stored

router = APIRouter(prefix="/api/v1", tags=["prices"], responses=PROBLEM_RESPONSES)

PRECEDENCE = [
    "price-book override (latest valid_from, named provider, most literal pattern, newest)",
    "genai-prices bundled data",
    "producer-reported cost (non-model steps only)",
    "unpriced: priced=false, cost_usd=null",
]


class PriceBook(BaseModel):
    library: str = Field(description="The fallback price source, e.g. `genai-prices 0.2.3`.")
    at: str = Field(description="The instant `active` is evaluated at.")
    precedence: list[str]
    overrides: list[PriceOverridePublic]


class UnpricedReport(BaseModel):
    nodes: int = Field(description="Unpriced LLM/embedding nodes in the window.")
    tokens: int = Field(description="Their input plus output tokens.")
    items: list[UnpricedModel]


class ModelDeltaPublic(BaseModel):
    key: str = Field(description="`provider/model`, or `kind:tool_name` for other steps.")
    nodes: int
    changed: int
    old_cost_usd: float
    new_cost_usd: float
    delta_usd: float
    old_unpriced: int
    new_unpriced: int


class RepricePublic(BaseModel):
    since: str | None
    until: str | None
    dry_run: bool
    traces: int
    nodes: int
    changed_nodes: int
    old_total_usd: float
    new_total_usd: float
    delta_usd: float
    old_unpriced: int
    new_unpriced: int
    models: list[ModelDeltaPublic]


def _book(session: SessionDep, project_id: int, at: float) -> PriceBook:
    return PriceBook(
        library=GENAI_PRICES_SOURCE,
        at=iso(at) or "",
        precedence=PRECEDENCE,
        overrides=[override_public(o, at=at) for o in load_book(session, project_id=project_id)],
    )


@router.get("/prices", response_model=PriceBook, summary="The effective price book")
def get_prices(
    project: ProjectDep,
    session: SessionDep,
    at: Annotated[Timestamp | None, Query(description="ISO 8601 or epoch seconds; "
                                          "default now")] = None,
) -> PriceBook:
    """The project's overrides (``active`` at ``at``) and the genai-prices version behind
    them."""
    return _book(session, project.id, at if at is not None else time.time())


@router.put("/prices", response_model=PriceBook, summary="Replace the price book")
def put_prices(
    body: PriceBookIn, project: ProjectDep, engine: EngineDep, session: SessionDep
) -> PriceBook:
    """Bulk import: the project's book becomes exactly ``overrides`` (entries keep their id
    when node_kind, provider, model_pattern and valid_from are unchanged). Invalid entries get
    422 naming the item and field, and nothing is stored. Stored costs change only with
    ``POST /api/v1/reprice``."""
    with session_scope(engine) as tx:
        replace_book(tx, project_id=project.id, items=body.overrides, normalise=genai_provider)
    return _book(session, project.id, time.time())


@router.get("/prices/unpriced", response_model=UnpricedReport,
            summary="Models seen without a price")
def get_unpriced(
    project: ProjectDep,
    session: SessionDep,
    since: Annotated[Timestamp | None, Query(description="ISO 8601 or epoch seconds")] = None,
    until: Annotated[Timestamp | None, Query(description="ISO 8601 or epoch seconds")] = None,
) -> UnpricedReport:
    """LLM/embedding nodes stored with no price, grouped by provider and model."""
    items = unpriced_models(session, project_id=project.id, since=since, until=until)
    return UnpricedReport(nodes=sum(i.nodes for i in items),
                          tokens=sum(i.input_tokens + i.output_tokens for i in items),
                          items=items)


@router.post("/reprice", response_model=RepricePublic, summary="Re-price stored traces")
def post_reprice(
    project: ProjectDep,
    engine: EngineDep,
    writer: WriterDep,
    since: Annotated[Timestamp | None, Query(description="ISO 8601 or epoch seconds")] = None,
    until: Annotated[Timestamp | None, Query(description="ISO 8601 or epoch seconds")] = None,
    dry_run: bool = False,
) -> RepricePublic:
    """Recompute the cost of traces started in ``[since, until)`` under the current book and
    update their roll-ups (``dry_run`` reports without changing anything)."""
    with session_scope(engine) as tx:
        r = reprice(tx, project_id=project.id, pricer=writer.pricer, since=since, until=until,
                    dry_run=dry_run)
        if r.changed_nodes and not dry_run:
            forget_stored(tx, project_id=project.id)  # stored pages and digests read node costs
    return RepricePublic(
        since=iso(r.since), until=iso(r.until), dry_run=r.dry_run, traces=r.traces,
        nodes=r.nodes, changed_nodes=r.changed_nodes, old_total_usd=r.old_total_usd,
        new_total_usd=r.new_total_usd, delta_usd=r.delta_usd, old_unpriced=r.old_unpriced,
        new_unpriced=r.new_unpriced,
        models=[ModelDeltaPublic(delta_usd=d.delta_usd, **vars(d)) for d in r.models],
    )
