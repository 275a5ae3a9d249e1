"""GET /metrics: Prometheus text from the real app, values checked after real traffic."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tracestore.api import create_app
from tracestore.api.metrics import Metrics
from tracestore.config import Settings


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_count_requests_writes_findings_and_lag(db_url: str) -> None:
    good = {"trace_id": "t1", "workflow": "w", "nodes": [
        {"node_id": f"n{i}", "kind": "tool", "name": "search", "tool_name": "search",
         "args": {"q": "same"}, "result": "same", "start": 1794787200 + i,
         "end": 1794787200.5 + i} for i in range(4)]}
    bad = {"trace_id": "t2", "nodes": [{"node_id": "a", "kind": "nonsense"}]}
    app = create_app(Settings(database_url=db_url, settle_seconds=0))
    app.state.metrics = Metrics(app.state, scrape_cache_s=0)  # every scrape reads the store
    with TestClient(app) as c:
        assert c.post("/api/v1/traces", json=good).status_code == 200
        assert c.post("/api/v1/traces", json=bad).status_code == 422
        before = _samples(c.get("/metrics").text)
        lag = before[("tracestore_analysis_lag_seconds", (("project_id", "1"),))]
        assert lag > 0  # t1 waits for analysis
        assert c.post("/api/v1/analyze", json={}).status_code == 200
        text = c.get("/metrics").text
    s = _samples(text)
    post = (("method", "POST"), ("route", "/api/v1/traces"))
    assert s[("tracestore_http_requests_total", (*post, ("status", "2xx")))] == 1
    assert s[("tracestore_http_requests_total", (*post, ("status", "4xx")))] == 1
    assert s[("tracestore_ingest_nodes_written_total", ())] == 4
    assert s[("tracestore_write_batch_seconds_count", ())] == 1
    assert s[("tracestore_admission_rejections_total", ())] == 0
    assert s[("tracestore_ingest_in_flight_requests", ())] == 0
    codes = {dict(k[1])["code"]: v for k, v in s.items() if k[0] == "tracestore_findings"}
    assert sum(codes.values()) >= 1 and set(codes) <= {
        "churn.exact_repeat", "churn.tight_loop", "churn.dead_end", "churn.near_duplicate"}


def test_metrics_apps_do_not_share_counters(tmp_path: object) -> None:
    urls = [f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"]
    apps = [create_app(Settings(database_url=u, settle_seconds=0)) for u in urls]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        a.get("/healthz")
        a.get("/healthz")
        b.get("/healthz")
        sa, sb = _samples(a.get("/metrics").text), _samples(b.get("/metrics").text)
    key = ("tracestore_http_requests_total",
           (("method", "GET"), ("route", "/healthz"), ("status", "2xx")))
    assert (sa[key], sb[key]) == (2, 1)
