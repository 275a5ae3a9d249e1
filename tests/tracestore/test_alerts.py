"""Alert rules end to end on both backends: PUT/GET, evaluation firing once and clearing,
a real loopback webhook receiving Slack-compatible, escaped text, and the CLI."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from tracestore.alerts.service import evaluate_project
from tracestore.api import create_app
from tracestore.cli.main import cli
from tracestore.config import Settings
from tracestore.ingest.pipeline import project_id_for


@contextmanager
def _hook(delay: float = 0.0) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            time.sleep(delay)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/hook", got
    finally:
        srv.shutdown()
        srv.server_close()


def _trace(tid: str, workflow: str, tokens: int, status: str, ago_s: float,
           model: str = "gpt-4o") -> dict[str, Any]:
    start = time.time() - ago_s
    return {"trace_id": tid, "workflow": workflow, "team": "<!channel>", "nodes": [
        {"node_id": "a", "kind": "llm", "name": "x", "provider": "openai", "model": model,
         "input_tokens": tokens, "output_tokens": 10, "start": start, "end": start + 1}],
        "outcome": {"status": status}}


def test_rules_fire_once_clear_and_post(db_url: str) -> None:
    settings = Settings(database_url=db_url, settle_seconds=0, alert_interval_seconds=0)
    with _hook() as (url, got), TestClient(create_app(settings)) as c:
        rules = {"rules": [
            {"name": "budget", "kind": "spend_over_budget", "dimension": "team",
             "value": "<!channel>", "threshold": 0.01, "window_days": 1, "webhook_url": url},
            {"name": "cpo", "kind": "cost_per_outcome_above_baseline", "workflow": "w",
             "webhook_url": url},
            {"name": "unpriced", "kind": "unpriced_share_over", "threshold": 0.3,
             "webhook_url": url},
            {"name": "rise", "kind": "cost_per_outcome_increase", "workflow": "w",
             "threshold": 50, "window_days": 1, "webhook_url": url}]}
        assert c.put("/api/v1/alerts", json=rules).status_code == 200
        bad = {"rules": [{"name": "x", "kind": "spend_over_budget"}]}
        assert c.put("/api/v1/alerts", json=bad).status_code == 422
        assert c.put("/api/v1/workflows/w", json={"baseline_cost_per_outcome_usd": 0.001}
                     ).status_code == 200
        traces = [_trace("old", "w", 1000, "success", 1.5 * 86400),
                  _trace("t1", "w", 10_000, "success", 3600),
                  _trace("t2", "w", 10_000, "failure", 1800, model="mystery-model-1")]
        assert c.post("/api/v1/traces", json=traces).status_code == 200
        assert c.post("/api/v1/analyze", json={}).status_code == 200  # evaluates too
        fired = {e["rule"]: e for e in c.get("/api/v1/alerts/events").json()}
        assert set(fired) == {"budget", "cpo", "unpriced", "rise"}
        assert all(e["event"] == "fired" and e["status"] == "ok" for e in fired.values())
        assert fired["unpriced"]["value"] == 1 / 3 and fired["cpo"]["threshold"] == 0.001
        assert len(got) == 4
        budget_text = next(g["text"] for g in got if "budget" in g["text"])
        assert "&lt;!channel&gt;" in budget_text and "<!channel>" not in budget_text
        # still true: not posted again
        assert c.post("/api/v1/alerts/evaluate").json() == []
        assert len(got) == 4
        # the budget rises: clears (recorded, not posted)
        rules["rules"][0]["threshold"] = 1000.0
        assert c.put("/api/v1/alerts", json=rules).status_code == 200
        state = {r["name"]: r for r in c.get("/api/v1/alerts").json()["rules"]}
        assert state["budget"]["firing"] is False and state["cpo"]["firing"] is True
        events = c.post("/api/v1/alerts/evaluate").json()
        assert events == [] and len(got) == 4  # a changed rule starts fresh, nothing fires


def test_cli_sets_lists_and_evaluates(db_url: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [
        {"name": "budget", "kind": "spend_over_budget", "threshold": 0.0}]}))
    runner = CliRunner()
    settings = Settings(database_url=db_url, settle_seconds=0, alert_interval_seconds=0)
    with TestClient(create_app(settings)) as c:
        assert c.post("/api/v1/traces", json=_trace("t", "w", 1000, "success", 60)
                      ).status_code == 200
    res = runner.invoke(cli, ["alerts", "set", str(rules), "--database-url", db_url])
    assert res.exit_code == 0 and "1 rule(s) set" in res.output
    res = runner.invoke(cli, ["alerts", "evaluate", "--database-url", db_url])
    assert res.exit_code == 0 and "fired: budget" in res.output and "not_sent" in res.output
    res = runner.invoke(cli, ["alerts", "list", "--database-url", db_url])
    assert json.loads(res.output)[0]["firing"] is True


def test_concurrent_evaluations_post_a_firing_once(db_url: str) -> None:
    """Each server's scheduler and the evaluation after an analysis can run at the same moment
    (three engines of one store here, as three servers): a newly true rule fires, is recorded
    and is posted once. The hook answers after 0.5 s, so without the store-wide lock every
    evaluation would have read "not firing" before the first one recorded it."""
    settings = Settings(database_url=db_url, settle_seconds=0, alert_interval_seconds=0)
    with _hook(delay=0.5) as (url, got):
        with TestClient(create_app(settings)) as c:
            rules = {"rules": [{"name": "budget", "kind": "spend_over_budget",
                                "threshold": 0.0, "webhook_url": url}]}
            assert c.put("/api/v1/alerts", json=rules).status_code == 200
            assert c.post("/api/v1/traces", json=_trace("t", "w", 1000, "success", 60)
                          ).status_code == 200
        engines = [create_engine(db_url) for _ in range(3)]
        pid = project_id_for(engines[0], settings.project)
        start = threading.Barrier(len(engines))
        events: list[list[dict[str, Any]]] = []

        def evaluate(engine: Any) -> None:
            start.wait()
            events.append(evaluate_project(engine, pid, now=time.time()))

        threads = [threading.Thread(target=evaluate, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for e in engines:
            e.dispose()
    assert sorted(len(e) for e in events) == [0, 0, 1]
    assert len(got) == 1 and "budget" in got[0]["text"]
