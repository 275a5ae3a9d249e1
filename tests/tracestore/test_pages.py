"""The analyst pages: in headless Chromium (Debian's chromium driven by Playwright) on a demo
store, and over HTTP for keys, isolation and escaping on both backends."""

from __future__ import annotations

import html
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.tracestore.otlp_server import serve
from tracestore.analysis import Window, analyze_window, default_suite
from tracestore.api import create_app
from tracestore.api.pages.routes import DOCS_CSP
from tracestore.config import Settings
from tracestore.demo.run import run_demo
from tracestore.reports.paths import week_window
from tracestore.store.engine import make_engine

EVIL = "<script>alert('x')</script>"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _demo_store(url: str, n: int = 400) -> None:
    settings = Settings(database_url=url, settle_seconds=0)
    run_demo(settings, n=n, echo=lambda _: None)
    engine = make_engine(url)
    try:
        analyze_window(engine, project_id=1, window=Window(), suite=default_suite(),
                       baseline_days=settings.baseline_days, now=time.time())
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('pages') / 'demo.db'}"
    _demo_store(url)
    with serve(Settings(database_url=url, settle_seconds=0)) as base:
        evil = {"trace_id": "evil", "workflow": EVIL, "nodes": [
            {"node_id": "a", "kind": "agent", "name": EVIL, "start": "2026-11-17T10:00:00Z",
             "end": "2026-11-17T10:00:01Z"},
            {"node_id": "b", "parent_id": "a", "kind": "llm", "name": EVIL, "model": "gpt-4o",
             "provider": "openai", "prompt": EVIL, "input_tokens": 10, "output_tokens": 2,
             "start": "2026-11-17T10:00:00.1Z", "end": "2026-11-17T10:00:00.5Z"}]}
        assert httpx.post(f"{base}/api/v1/traces", json=evil, timeout=30).status_code == 200
        yield base


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium not installed: apt-get install -y chromium to run this test")
    return path


def _api(base: str, path: str, **params: Any) -> Any:
    r = httpx.get(f"{base}{path}", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _money(text: str) -> float:
    return float(re.sub(r"[^0-9.\-]", "", text))


def test_pages_in_a_real_browser(demo_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
        outside: list[str] = []  # any answer from beyond loopback (a CDN, say) is a failure
        page.on("response", lambda r: None if r.url.startswith(
            ("http://127.0.0.1", "data:", "blob:http://127.0.0.1")) else outside.append(r.url))

        page.goto(demo_url + "/")
        week = page.input_value("input[name=week]")
        assert re.fullmatch(r"\d{4}-W\d{2}", week)
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
        _check_overview_numbers(page, demo_url, week)

        # overview → workflow → its paths → a path's traces → a trace
        page.click("table[data-table=workflows] a >> nth=0")
        assert page.locator("h1").inner_text().startswith("Workflow ")
        _check_fix_saving(page, demo_url, week)
        assert page.locator("table[data-table=latency] tr").count() > 1
        page.screenshot(path=str(tmp_path / "workflow.png"), full_page=True)
        page.click("table[data-table=paths] a >> nth=0")
        assert page.locator("table[data-table=path-traces] a").count() > 0
        page.click("table[data-table=path-traces] a >> nth=0")
        assert page.locator("svg[data-chart=waterfall]").count() == 1

        # findings page → the trace with the finding's nodes marked
        page.goto(f"{demo_url}/findings?week={week}")
        first = page.locator("table[data-table=findings] tr[data-finding] >> nth=0")
        fid = first.get_attribute("data-finding")
        first.locator("a[href^='/traces/']").click()
        page.screenshot(path=str(tmp_path / "trace.png"), full_page=True)
        trace_id = page.url.split("/traces/")[1].split("#")[0]
        api_trace = _api(demo_url, f"/api/v1/traces/{trace_id}")
        flagged = {n for f in api_trace["findings"] for n in f["node_ids"]}
        marked = {e.get_attribute("data-node") for e in
                  page.locator("svg[data-chart=waterfall] g[data-flagged]").all()}
        assert flagged and marked == flagged
        assert page.locator(f"#finding-{fid}").count() == 1

        for path in ("/prices", "/paths", f"/digest?week={week}", "/docs"):
            page.goto(demo_url + path)
            page.wait_for_load_state("networkidle")
        assert page.locator("#swagger-ui .opblock").count() > 10  # Swagger UI rendered, offline
        page.goto(demo_url + "/redoc")
        page.wait_for_load_state("networkidle")
        page.wait_for_selector("text=Ingest native traces", state="attached",
                               timeout=30_000)  # ReDoc rendered the operations
        # ReDoc's bundle points its "API docs by Redocly" logo at a CDN: our CSP blocks it
        # (it never answers, checked below), and Chromium logs the block; nothing else may.
        errors[:] = [e for e in errors if not ("cdn.redoc.ly" in e and "Content Security" in e)]

        page.goto(demo_url + "/traces/evil")
        assert EVIL in page.locator("body").inner_text()  # shown as text, never run
        assert page.locator("script").count() == 0
        assert errors == [], errors
        assert outside == [], outside
        browser.close()


def _check_overview_numbers(page: Any, base: str, week: str) -> None:
    from analyzers.digest import week_bounds

    _, _, since, until = week_bounds(week)
    report = _api(base, "/api/v1/attribution", since=since, until=until, group_by="workflow")
    spend = sum(g["spend_usd"] for g in report["groups"])
    waste = sum(sum(g["waste_usd"].values()) for g in report["groups"])
    assert _money(page.inner_text("[data-kpi=spend]")) == pytest.approx(spend, abs=0.006)
    assert _money(page.inner_text("[data-kpi=waste]")) == pytest.approx(waste, abs=0.006)
    shown = {c.get_attribute("data-cpo") for c in page.locator("td[data-cpo]").all()}
    assert shown == {str(g["cost_per_outcome_usd"]) for g in report["groups"]}


def _check_fix_saving(page: Any, base: str, week: str) -> None:
    """The workflow page's "what the fixes would have saved" equals the simulator's answer and
    the workflow's waste in /findings for the week (fixing every code removes its waste)."""
    from analyzers.digest import week_bounds

    _, _, since, until = week_bounds(week)
    name = page.locator("h1").inner_text().removeprefix("Workflow ")
    shown = _money(page.inner_text("[data-kpi=fix-saving]"))
    findings = _api(base, "/api/v1/findings", workflow=name, since=since, until=until,
                    limit=1000)["items"]
    waste = sum(f["wasted_cost_usd"] for f in findings)
    assert shown == pytest.approx(waste, abs=0.006), (shown, waste)


@pytest.fixture
def keyed(db_url: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    from click.testing import CliRunner

    from tracestore.cli.main import cli

    keys: dict[str, str] = {}
    runner = CliRunner()
    for project, scope in (("p1", "read"), ("p2", "read"), ("p1", "ingest")):
        r = runner.invoke(cli, ["keys", "create", "--project", project, "--scope", scope,
                                "--database-url", db_url])
        assert r.exit_code == 0, r.output
        keys[f"{project}:{scope}"] = re.findall(r"ts_[A-Za-z0-9_\-]+", r.output)[0]
    with TestClient(create_app(Settings(database_url=db_url, settle_seconds=0))) as c:
        yield c, keys


def test_pages_need_a_key_and_keep_projects_apart(
        keyed: tuple[TestClient, dict[str, str]]) -> None:
    c, keys = keyed
    body = {"trace_id": "t1", "workflow": "w", "nodes": [
        {"node_id": "a", "kind": "llm", "name": EVIL, "model": "gpt-4o", "provider": "openai",
         "start": "2026-11-17T10:00:00Z", "end": "2026-11-17T10:00:02Z"}]}
    ingest = {"authorization": f"Bearer {keys['p1:ingest']}"}
    r = c.post("/api/v1/traces", json=body, headers=ingest)
    assert r.status_code == 200, r.text
    r = c.get("/traces/t1")
    assert r.status_code == 401 and "API key is needed" in r.text
    r = c.post("/login", content="key=bogus&next=/traces/t1",
               headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 401
    r = c.post("/login", content=f"key={keys['p1:read']}&next=/traces/t1",
               headers={"content-type": "application/x-www-form-urlencoded"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/traces/t1"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = c.get("/traces/t1")
    assert page.status_code == 200
    assert EVIL not in page.text and "&lt;script&gt;" in page.text
    assert "'none'" in page.headers["content-security-policy"]
    assert "http" not in page.headers["content-security-policy"]
    c.cookies.clear()
    other = c.get("/traces/t1", headers={"authorization": f"Bearer {keys['p2:read']}"})
    assert other.status_code == 404 and "<h1>" in other.text
    mine = c.get("/traces/t1", headers={"authorization": f"Bearer {keys['p1:read']}"})
    assert mine.status_code == 200


def test_default_week_is_the_latest_complete_week_with_data(db_url: str) -> None:
    with TestClient(create_app(Settings(database_url=db_url, settle_seconds=0))) as c:
        for tid, start in (("a", "2026-11-10T10:00:00Z"), ("b", "2026-11-18T10:00:00Z")):
            r = c.post("/api/v1/traces", json={"trace_id": tid, "workflow": "w", "nodes": [
                {"node_id": "n", "kind": "llm", "model": "gpt-4o", "provider": "openai",
                 "input_tokens": 1000, "start": start}]})
            assert r.status_code == 200
        page = c.get("/")
        assert page.status_code == 200
        assert 'name="week" value="2026-W47"' in page.text
        assert c.get("/?week=9999-W99").status_code == 422
        docs = c.get("/docs")
        assert docs.status_code == 200 and "cdn" not in docs.text.lower()
        assert docs.headers["content-security-policy"] == DOCS_CSP  # set by HtmlCsp
        assert "content-security-policy" not in c.get("/healthz").headers  # HTML only


def test_overview_reads_agree_with_the_reports(db_url: str) -> None:
    """The overview's own aggregates equal the API's: untagged spend is the ``team: null`` group
    of /attribution?group_by=team, spend by day sums to the traces' spend of the week."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from tracestore.api.pages import data
    from tracestore.api.pages.window import page_window
    from tracestore.reports.paths import attribution_report
    from tracestore.store.tables import TRACE_T

    _demo_store(db_url, n=120)
    engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            w = page_window(s, 1, time.time(), week=None)
        start = w.since + 3600  # one trace without a team (every demo trace has one)
        with TestClient(create_app(Settings(database_url=db_url, settle_seconds=0))) as c:
            r = c.post("/api/v1/traces", json={"trace_id": "no-team", "workflow": "w", "nodes": [
                {"node_id": "a", "kind": "llm", "model": "gpt-4o", "provider": "openai",
                 "input_tokens": 1000, "output_tokens": 100, "start": start,
                 "end": start + 2}]})
            assert r.status_code == 200, r.text
        analyze_window(engine, project_id=1, window=Window(), suite=default_suite(),
                       baseline_days=28.0, now=time.time())
        with Session(engine) as s:
            groups = attribution_report(s, project_id=1, group_by="team", since=w.since,
                                        until=w.until).groups
            untagged = [g.spend_usd for g in groups if g.key["team"] is None]
            assert untagged and untagged[0] > 0  # the demo has traffic without a team
            assert data.untagged_spend(s, 1, w) == pytest.approx(untagged[0], rel=1e-12)
            t = TRACE_T.c
            spend = s.execute(select(func.sum(t.cost_usd)).where(
                t.project_id == 1, t.started_at >= w.since, t.started_at < w.until)).scalar()
            days = data.spend_by_day(s, 1, w)
            assert len(days) == 7 and sum(v for _, v in days) == pytest.approx(spend, abs=1e-5)
            assert sum(v > 0 for _, v in days) >= 5  # the demo spreads over the week
    finally:
        engine.dispose()


def test_every_windowed_page_takes_the_filters_the_api_takes(db_url: str) -> None:
    """workflow, team, feature and model (a trace's primary model) on the overview, paths,
    findings and workflow pages: the overview's spend and waste under a model filter equal
    /attribution's with the same filter, the paths page lists /paths' signatures, and none of
    the filters is refused (the pages' query parameters are checked like the API's)."""
    _demo_store(db_url, n=120)
    with TestClient(create_app(Settings(database_url=db_url, settle_seconds=0))) as c:
        week = re.search(r'name="week" value="([^"]+)"', c.get("/").text)[1]  # type: ignore[index]
        since, until = week_window(week)
        window = {"since": since, "until": until}
        groups = c.get("/api/v1/attribution",
                       params={**window, "group_by": "model"}).json()["groups"]
        model = max((g for g in groups if g["key"]["model"]), key=lambda g: g["spend_usd"])
        model_name = model["key"]["model"]
        one = c.get("/api/v1/attribution", params={**window, "model": model_name}).json()
        spend = sum(g["spend_usd"] for g in one["groups"])
        waste = sum(sum(g["waste_usd"].values()) for g in one["groups"])
        assert spend == pytest.approx(model["spend_usd"], rel=1e-9)
        page = c.get("/", params={"week": week, "model": model_name})
        assert page.status_code == 200
        kpi = dict(re.findall(r'data-kpi="(spend|waste)">([^<]+)<', page.text))
        assert _money(kpi["spend"]) == pytest.approx(spend, abs=0.006)
        assert _money(kpi["waste"]) == pytest.approx(waste, abs=0.006)
        assert f'name="model" value="{model_name}"' in page.text
        api_paths = c.get("/api/v1/paths", params={**window, "model": model_name,
                                                   "limit": 100}).json()["paths"]
        paths_page = c.get("/paths", params={"week": week, "model": model_name}).text
        shown = html.unescape(paths_page)  # the page shows a signature's first 120 characters
        assert api_paths and all(p["signature"][:120] in shown for p in api_paths)
        assert paths_page.count("data-waste=") == len(api_paths)
        for path in ("/", "/paths", "/findings", "/workflows/support_triage"):
            r = c.get(path, params={"week": week, "team": "nobody", "feature": "none",
                                    "model": model_name})
            assert r.status_code == 200, (path, r.text[:300])
        r = c.get("/workflows/support_triage", params={"week": week, "model": model_name})
        assert "do not take the team, feature or model filter" in r.text
