"""Schemathesis against the committed contract, ``api_schema/openapi.json``: generated requests
for every operation, sent over real HTTP to the real app (uvicorn, a fresh SQLite file), must
never get a 5xx nor a response that violates the schema (status code, content type, headers,
body). Examples are bounded (``MAX_EXAMPLES`` per operation) so the run stays within a couple
of minutes on CI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.tracestore.otlp_server import serve
from tracestore.config import Settings

ROOT = Path(__file__).resolve().parents[1]
MAX_EXAMPLES = 10  # per operation: ~20 operations x 10 stay near a minute on 2 idle cores

schema = schemathesis.openapi.from_path(ROOT / "api_schema" / "openapi.json")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("schemathesis") / "st.db"
    with serve(Settings(database_url=f"sqlite:///{db}", settle_seconds=0)) as url:
        yield url


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_committed_contract(
    case: schemathesis.Case, base_url: str, http: requests.Session
) -> None:
    case.call_and_validate(base_url=base_url, session=http, checks=CHECKS, timeout=30)
