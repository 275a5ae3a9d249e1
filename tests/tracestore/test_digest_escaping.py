"""Producer strings cannot format, mention, link or break out of the digest in any channel:
Markdown (rendered here with markdown-it-py, CommonMark), Slack mrkdwn (the webhook's ``text``)
and HTML; links point at the configured base URL only, never the request's Host header."""

from __future__ import annotations

import re
from dataclasses import replace

import orjson
from fastapi.testclient import TestClient
from markdown_it import MarkdownIt

from analyzers.digest import build_digest
from analyzers.digest_types import Digest, Savings, SavingsRisk, WeekAggregates
from tests.tracestore.digest_fixture import BASE_URL, fixture_digest
from tracestore.digest import render_html, render_markdown
from tracestore.digest.webhook import webhook_body

EVIL = ("<!channel> <@U123> *bold* _it_ ~gone~ `tick` <https://evil.example|click here> "
        "[x](https://evil.example) &amp; <b>html</b>\n\n# Heading\n- item\r\n> quote")
EVIL_ID = "ev/il|<x>) [y](z"


def hostile_savings() -> Savings:
    s = fixture_digest().savings
    assert s is not None
    return replace(s, fix_codes=(EVIL,),
                   workflows=tuple(replace(w, workflow=EVIL) for w in s.workflows),
                   risks=(SavingsRisk(EVIL, EVIL, EVIL, EVIL),))


def plain_digest() -> Digest:
    """The fixture without its savings section (tested on its own below: with it, the
    hostile message passes the chat limit and the section shrinks to its total)."""
    return replace(fixture_digest(), savings=None)


def hostile_digest():  # type: ignore[no-untyped-def]
    d = plain_digest()
    return replace(
        d, project=EVIL,
        workflows=tuple(replace(w, workflow=EVIL, note=EVIL, levers=None) for w in d.workflows),
        paths=tuple(replace(p, workflow=EVIL, signature=EVIL,
                            example_trace_ids=(EVIL_ID,)) for p in d.paths),
        findings=tuple(replace(g, workflow=EVIL, fix=EVIL, example_trace_ids=(EVIL_ID,))
                       for g in d.findings),
        notes=(EVIL,))


def test_markdown_renders_producer_strings_as_inert_text() -> None:
    md = render_markdown(hostile_digest(), base_url=BASE_URL)
    html = MarkdownIt("commonmark").render(md)
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith(BASE_URL + "/traces/") for h in hrefs), hrefs
    assert "evil.example" not in "".join(hrefs)
    for tag in ("<h1", "<h2", "<blockquote", "<b>", "<em>bold", "<strong>bold", "<em>it",
                "<del"):
        assert tag not in html, tag
    # only our own bullet lists: one per section, no list opened by the producer's "- item"
    assert html.count("<ul>") == 1 and "<li>item" not in html
    assert md.count("\n") == render_markdown(plain_digest(), base_url=BASE_URL).count("\n")


def test_savings_section_renders_producer_strings_as_inert_text() -> None:
    empty = build_digest(project="p", week="2026-W47", current=WeekAggregates(),
                         previous=WeekAggregates(), findings=())
    d = replace(empty, savings=hostile_savings())
    md = render_markdown(d, base_url=BASE_URL)
    assert "Outcomes at risk: `" in md  # the full section, risks included
    html = MarkdownIt("commonmark").render(md)
    assert "href=" not in html
    for tag in ("<h1", "<h2", "<blockquote", "<b>", "<em>bold", "<strong>bold", "<del"):
        assert tag not in html, tag
    assert html.count("<ul>") == 2 and "<li>item" not in html  # workflows, savings
    slack = render_markdown(d, base_url=BASE_URL, flavor="slack")
    assert "<" not in slack and "&lt;!channel&gt;" in slack
    page = render_html(d, base_url=BASE_URL)
    assert "<!channel>" not in page and "<b>html</b>" not in page and "&lt;!channel&gt;" in page


def test_slack_text_escapes_mentions_links_and_markers() -> None:
    body = orjson.loads(webhook_body(hostile_digest(), base_url=BASE_URL))
    text = body["text"]
    assert "<!channel>" not in text and "<@U123>" not in text and "&lt;!channel&gt;" in text
    # every "<" left opens one of our links, under the configured base URL
    opens = [m.start() for m in re.finditer("<", text)]
    assert opens and all(text.startswith("<" + BASE_URL + "/traces/", i) for i in opens)
    for link in re.findall(r"<([^>]*)>", text):
        url, _, label = link.partition("|")
        assert "|" not in label and re.fullmatch(r"[\w:/.%-]+", url), link
    assert "ev%2Fil%7C%3Cx%3E%29%20%5By%5D%28z" in text
    # outside code spans (which Slack does not format) no producer marker can pair up
    prose = re.sub(r"`[^`]*`", "", text)
    assert "*bold*" not in prose and "_it_" not in prose and "~gone~" not in prose
    assert "`tick`" not in text and "ˋtickˋ" in text
    assert text.count("\n") == render_markdown(plain_digest(), base_url=BASE_URL).count("\n")
    assert body["digest"]["project"] == EVIL  # the JSON keeps the raw value


def test_html_escapes_producer_strings() -> None:
    page = render_html(hostile_digest(), base_url=BASE_URL)
    assert "<!channel>" not in page and "<b>html</b>" not in page
    assert "&lt;!channel&gt;" in page
    assert 'href="https://evil.example' not in page


def test_digest_links_ignore_the_host_header(client: TestClient) -> None:
    r = client.post("/api/v1/traces", json={"trace_id": "t1", "workflow": "w", "nodes": [
        {"node_id": "n", "kind": "llm", "model": "gpt-4o", "provider": "openai",
         "input_tokens": 10, "output_tokens": 5, "start": "2026-11-17T09:00:00Z",
         "end": "2026-11-17T09:00:01Z"}]})
    assert r.status_code == 200, r.text
    for fmt in ("md", "html"):
        page = client.get(f"/api/v1/digest/weekly?week=2026-W47&format={fmt}",
                          headers={"host": "evil.example"}).text
        assert "evil.example" not in page, fmt


def test_non_finite_numbers_never_reach_markdown_or_html() -> None:
    d = fixture_digest()
    inf = float("inf")
    d = replace(d, headline=replace(d.headline, spend_usd=inf, change_usd=-inf,
                                    change_pct=float("nan"), waste_pct=inf),
                workflows=tuple(replace(w, cost_per_outcome_usd=inf) for w in d.workflows))
    for out in (render_markdown(d, base_url=BASE_URL),
                render_markdown(d, base_url=BASE_URL, flavor="slack"),
                render_html(d, base_url=BASE_URL)):
        assert not re.search(r"\binf\b|nan", out, re.IGNORECASE), out[:300]
        assert "n/a" in out
