"""Make the previous-release store fixture of ``test_schema_rules`` (run once, with the code
of that release importable; the test itself needs neither git nor that code)::

    git worktree add --detach /some/dir ab8862f
    PYTHONPATH=/some/dir python tests/tracestore/previous_release/make.py ab8862f

It writes, beside this file, ``schema.sqlite.sql`` and ``schema.postgresql.sql`` (that
release's tables and indexes, as its ``create_schema`` made them) and ``store.json`` (every
row of a store that release's writer and analysis made: 24 demo traces of seed 7 and three
traces around the turn of October to November 2026, one of them with its root sent last and
starting in October, its children in November; their outcomes, findings and summaries).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import SQLModel

from tracestore.analysis.run import analyze_traces
from tracestore.analysis.suite import default_suite
from tracestore.config import Settings
from tracestore.demo import generate
from tracestore.ingest.pipeline import Writer, project_id_for, validate_items
from tracestore.schemas import OutcomeIn
from tracestore.store.engine import create_schema, make_engine

HERE = Path(__file__).resolve().parent
OCT31 = 1_793_491_000.0  # 2026-10-31 23:56:40 UTC; November starts at 1_793_491_200


def _ddl(dialect: Any) -> str:
    out = []
    for table in SQLModel.metadata.sorted_tables:
        out.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";")
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            out.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";")
    return "\n\n".join(out) + "\n"


def _node(nid: str, parent: str | None, start: float, **extra: Any) -> dict[str, Any]:
    return {"node_id": nid, "parent_id": parent, "kind": "llm" if parent else "agent",
            "name": f"step {nid}", "start": start, "end": start + 30,
            **({"provider": "openai", "model": "gpt-4o", "input_tokens": 1200,
                "output_tokens": 300} if parent else {}), **extra}


def _turn_of_month() -> list[list[dict[str, Any]]]:
    """Requests (sent in order): a trace in October, one in November, and one whose children
    (November) come before its root (October)."""
    return [
        [{"trace_id": "oct-1", "workflow": "edge", "nodes": [
            _node("r", None, OCT31 - 86_400), _node("a", "r", OCT31 - 86_390)]}],
        [{"trace_id": "nov-1", "nodes": [_node("r", None, OCT31 + 3_600),
                                         _node("a", "r", OCT31 + 3_610)]}],
        [{"trace_id": "split", "nodes": [_node("a", "r", OCT31 + 300),
                                         _node("b", "r", OCT31 + 400)]}],
        [{"trace_id": "split", "task_id": "T-split", "nodes": [_node("r", None, OCT31)],
          "outcome": {"status": "success", "type": "ticket_resolved"}}],
    ]


def main(release: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/old.db"
        settings = Settings(database_url=url, settle_seconds=0, ingest_workers=0)
        engine = make_engine(url)
        create_schema(engine)
        pid = project_id_for(engine, settings.project)
        writer = Writer(engine, settings)
        data = generate(7, 24)
        writer.ingest_native(pid, data.traces).raise_if_rejected()
        for request in _turn_of_month():
            writer.ingest_native(pid, request).raise_if_rejected()
        outcomes, errors = validate_items(data.outcomes, OutcomeIn)
        assert not errors
        writer.write_outcomes(pid, outcomes)
        ids = sorted([t["trace_id"] for t in data.traces] + ["oct-1", "nov-1", "split"])
        analyze_traces(engine, project_id=pid, trace_ids=ids, baselines={},
                       suite=default_suite(), now=OCT31 + 86_400 * 20)
        writer.close()
        md = MetaData()
        md.reflect(engine)
        rows: dict[str, Any] = {"release": release, "tables": {}}
        with engine.connect() as conn:
            for name, table in sorted(md.tables.items()):
                cols = [c.name for c in table.columns]
                order = list(table.primary_key.columns) or list(table.columns)
                data_rows = [list(r) for r in conn.execute(select(table).order_by(*order))]
                rows["tables"][name] = {"columns": cols, "rows": data_rows}
        engine.dispose()
    (HERE / "schema.sqlite.sql").write_text(_ddl(sqlite.dialect()))
    (HERE / "schema.postgresql.sql").write_text(_ddl(postgresql.dialect()))
    (HERE / "store.json").write_text(json.dumps(rows, indent=0, sort_keys=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
