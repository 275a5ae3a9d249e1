"""Digest renderers: Markdown and JSON against exact expected files for a fixed week, the JSON
against its committed schema, and the HTML page opened in real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from analyzers.digest import build_digest
from analyzers.digest_types import WeekAggregates
from tests.tracestore.digest_fixture import BASE_URL, EXPECTED, fixture_digest
from tracestore.digest import digest_json_schema, render, render_html, render_json, render_markdown
from tracestore.digest.markdown import CHAT_LIMIT

ROOT = Path(__file__).resolve().parents[2]


def test_markdown_matches_expected_file() -> None:
    text = render_markdown(fixture_digest(), base_url=BASE_URL)
    assert text == (EXPECTED / "digest_w47.md").read_text()
    assert len(text) < CHAT_LIMIT
    assert f"({BASE_URL}/traces/7a3f00000000000000000000000000a1)" in text


def test_json_matches_expected_file_and_schema() -> None:
    body = render_json(fixture_digest())
    assert body == (EXPECTED / "digest_w47.json").read_bytes()
    doc = orjson.loads(body)
    committed = orjson.loads((ROOT / "api_schema" / "digest.schema.json").read_bytes())
    assert committed == orjson.loads(orjson.dumps(digest_json_schema()))
    _check(doc, committed, committed)


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    """A small JSON Schema walker for the keywords pydantic emits (no extra dependency)."""
    if "$ref" in schema:
        schema = root["$defs"][str(schema["$ref"]).rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                _check(value, option, root)
                return
            except AssertionError as exc:
                errors.append(exc)
        raise AssertionError(f"{value!r} matches no option: {errors}")
    if "const" in schema:
        assert value == schema["const"]
    kind = schema.get("type")
    types: dict[str, Any] = {"object": dict, "array": list, "string": str, "integer": int,
                             "null": type(None), "number": (int, float), "boolean": bool}
    if kind:
        assert isinstance(value, types[kind]), f"{value!r} is not {kind}"
    if kind == "object":
        props = schema.get("properties", {})
        assert set(schema.get("required", [])) <= set(value), schema.get("title")
        assert set(value) <= set(props), set(value) - set(props)
        for k, v in value.items():
            _check(v, props[k], root)
    if kind == "array":
        for item in value:
            _check(item, schema.get("items", {}), root)


def test_schema_check_can_fail() -> None:
    schema = digest_json_schema()
    doc = orjson.loads(render_json(fixture_digest()))
    doc["headline"]["spend_usd"] = "lots"
    with pytest.raises(AssertionError):
        _check(doc, schema, schema)


def test_html_is_self_contained() -> None:
    page = render_html(fixture_digest(), base_url=BASE_URL)
    assert "<script" not in page and "@import" not in page and "<link" not in page
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert urls and all(u.startswith(f"{BASE_URL}/traces/") for u in urls)
    assert page.count("<svg") == 3
    assert "$412.50" in page and "Unit-economic" in page


def test_render_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        render(fixture_digest(), "pdf", base_url=BASE_URL)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI is set but chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium not installed: apt-get install -y chromium to run this test")
    page = tmp_path / "digest.html"
    page.write_text(render_html(fixture_digest(), base_url=BASE_URL))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert "$412.50" in dom and "+$112.50" in dom and "$0.4583" in dom
    for chart in ("spend-by-day", "waste-by-code", "levers"):
        assert re.search(rf'<svg[^>]+data-chart="{chart}"', dom), chart
    assert dom.count("<rect") >= 7 + 3 * 2 + 2 * 3
    shot = tmp_path / "digest.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1000,1800",
                    page.as_uri()], capture_output=True, timeout=60, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    print(f"digest screenshot: {shot}")


def test_empty_digest_renders_in_every_format() -> None:
    d = build_digest(project="p", week="2026-W47", current=WeekAggregates(),
                     previous=WeekAggregates(), findings=())
    md = render_markdown(d, base_url=BASE_URL)
    assert "no workflow ran this week" in md and "No traces were recorded in 2026-W47" in md
    assert orjson.loads(render_json(d))["maturity"]["rung"] == "Blind"
    assert "No findings this week." in render_html(d, base_url=BASE_URL)


def test_a_busy_week_still_fits_one_chat_message() -> None:
    base = fixture_digest()
    paths = tuple(replace(base.paths[0], signature="agent:x > " * 30 + f"llm:step{i}")
                  for i in range(10))
    findings = tuple(replace(base.findings[0], code=f"churn.code{i}", fix="word " * 100)
                     for i in range(10))
    text = render_markdown(replace(base, paths=paths, findings=findings), base_url=BASE_URL)
    assert len(text) < CHAT_LIMIT
    assert text.count("_…and 5 more in the JSON and HTML digest._") == 2
    assert "`…agent:x > llm:step9`" not in text and "llm:step4`" in text
    # The savings section shrank to its total to keep the message under the limit.
    assert "*What the top fixes would have saved*: spend $412.50 → $370.75" in text
