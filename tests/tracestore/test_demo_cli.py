"""`tracestore demo` as a newcomer runs it: dated the last two complete weeks, says where to
look, and refuses a taken port before loading anything."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from analyzers.digest import previous_week, week_of
from tracestore.api import create_app
from tracestore.cli.main import cli
from tracestore.config import Settings


def test_demo_is_dated_the_last_two_complete_weeks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    res = CliRunner().invoke(cli, ["demo", "--no-serve", "--traces", "150",
                                   "--database-url", url])
    assert res.exit_code == 0, res.output
    last = previous_week(week_of(time.time()))
    first = previous_week(last)
    assert f"ISO weeks {first} and {last}" in res.output
    assert "http://127.0.0.1:8000/" in res.output and f"--week {last}" in res.output
    with TestClient(create_app(Settings(database_url=url, settle_seconds=0))) as c:
        page = c.get("/")
        assert page.status_code == 200 and f'name="week" value="{last}"' in page.text
        spend = re.search(r'data-kpi="spend">\$([0-9.,]+)<', page.text)
        assert spend and float(spend.group(1).replace(",", "")) > 0
        digest = c.get("/api/v1/digest/weekly").json()  # default: the last complete week
        assert digest["week"] == last and digest["headline"]["spend_usd"] > 0


def test_demo_fixed_dates_keep_the_generators_weeks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    res = CliRunner().invoke(cli, ["demo", "--no-serve", "--traces", "100", "--fixed-dates",
                                   "--database-url", url])
    assert res.exit_code == 0, res.output
    assert "ISO weeks 2026-W46 and 2026-W47" in res.output


def test_taken_port_is_refused_before_loading(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        res = CliRunner().invoke(cli, ["demo", "--port", str(port), "--traces", "50",
                                       "--database-url", f"sqlite:///{db}"])
    finally:
        holder.close()
    assert res.exit_code != 0
    assert f"cannot listen on 127.0.0.1:{port}" in res.output and "--port" in res.output
    assert "generated" not in res.output
    assert not db.exists() or "traces" not in inspect(create_engine(f"sqlite:///{db}")
                                                       ).get_table_names()
