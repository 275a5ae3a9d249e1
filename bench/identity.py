"""Identity check for a clean-up that must not change behaviour: stored rows, findings,
summaries, digests and API answers before and after, compared value for value.

It loads the demo store (``tracestore demo --no-serve``) into a fresh SQLite file and, when
``TRACESTORE_TEST_POSTGRES_URL`` is set, into a fresh PostgreSQL database, and dumps every row
of every table (clock-stamped columns such as ``created_at``/``analyzed_at`` left out), the
demo's printed summary (timings left out) and the answers of the read API (traces, one trace
and its graph, findings, attribution, paths, prices, the weekly digest as JSON and Markdown)
on the SQLite store. It then runs the analyzers over the labelled finding fixtures
(``fixtures/findings``) and the seeded labelled set (``fixtures/labelled``) under three
configs, with and without baselines, and dumps every field of every finding::

    python -m bench.identity save DIR    # this code's results -> DIR/identity.pkl
    python -m bench.identity check DIR   # compare this code's results with DIR/identity.pkl

Save on the old code (a ``git worktree`` with its own ``PYTHONPATH``), check on the new one.
Floats compare by ``repr`` (NaN equals NaN, -0.0 differs from 0.0), dict key order counts.
Exit status 1 when anything differs.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for fixtures.*

from bench.otlp_identity import _first_diff, _norm

# Columns stamped with the clock of the run, not derived from the data.
CLOCK_COLUMNS = {"created_at", "updated_at", "analyzed_at", "summarized_at", "delivered_at",
                 "generated_at"}
_TIMING = re.compile(r" in \d+\.\d+s")


def _demo(url: str) -> list[str]:
    """Run ``tracestore demo --no-serve`` into ``url`` in a child process; its output lines
    with the timings blanked."""
    code = "import sys; from tracestore.cli.main import main; sys.argv[0] = 'tracestore'; main()"
    out = subprocess.run([sys.executable, "-c", code, "demo", "--no-serve", "--database-url",
                          url], check=True, capture_output=True, text=True).stdout
    return [_TIMING.sub(" in _s", line).replace(url, "URL") for line in out.splitlines()]


def _tables(url: str) -> dict[str, Any]:
    """Every table's rows in primary-key order, clock columns left out."""
    from sqlalchemy import MetaData, create_engine, select

    engine = create_engine(url)
    md = MetaData()
    md.reflect(engine)
    out: dict[str, Any] = {}
    with engine.connect() as c:
        for name, t in sorted(md.tables.items()):
            cols = [col for col in t.columns if col.name not in CLOCK_COLUMNS]
            order = list(t.primary_key.columns) or cols
            rows = c.execute(select(*cols).order_by(*order)).all()
            out[name] = _norm(([col.name for col in cols], [tuple(r) for r in rows]))
    engine.dispose()
    return out


def _scrub(x: Any) -> Any:
    """A JSON answer without its clock-stamped keys."""
    if isinstance(x, dict):
        return {k: _scrub(v) for k, v in x.items() if k not in CLOCK_COLUMNS}
    if isinstance(x, list):
        return [_scrub(v) for v in x]
    return x


def _api(url: str) -> dict[str, Any]:
    """Answers of the read API over the demo store at ``url``."""
    from fastapi.testclient import TestClient

    from tracestore.api.app import create_app
    from tracestore.config import Settings

    out: dict[str, Any] = {}
    with TestClient(create_app(Settings(database_url=url))) as client:
        def get(path: str) -> Any:
            r = client.get(path)
            ctype = r.headers.get("content-type", "")
            body = _scrub(r.json()) if "json" in ctype else r.text
            out[path] = _norm((r.status_code, body))
            return body

        page = get("/api/v1/traces?limit=200")
        tid = page["items"][0]["trace_id"]
        get(f"/api/v1/traces/{tid}")
        get(f"/api/v1/traces/{tid}/graph")
        get("/api/v1/traces?limit=50&workflow=code_review")
        get("/api/v1/findings?limit=1000")
        get("/api/v1/findings?limit=100&order=created&code=churn.exact_repeat")
        get("/api/v1/findings?limit=100&analyzer=bloat&min_cost=0.01")
        for q in ("", "?group_by=workflow,week", "?group_by=model", "?compare=previous&period=week",
                  "?group_by=team,feature"):
            get(f"/api/v1/attribution{q}")
        get("/api/v1/paths")
        get("/api/v1/paths?order=cost_per_outcome&limit=10")
        get("/api/v1/prices/unpriced")
        for week in ("2026-W46", "2026-W47", "2026-W48"):
            get(f"/api/v1/digest/weekly?week={week}&format=json")
            get(f"/api/v1/digest/weekly?week={week}&format=md")
    return out


def _finding(f: Any) -> Any:
    return _norm({name: getattr(f, name) for name in f.__dataclass_fields__})


def _fixtures() -> dict[str, Any]:
    """Every field of every finding on the labelled fixtures and the labelled set."""
    from dataclasses import replace

    from analyzers.run import AnalyzerConfig, analyze_trace, collect_samples, compute_baselines
    from fixtures.findings import load
    from fixtures.labelled import PRICES, generate

    out: dict[str, Any] = {}
    for code in load.codes():
        for which in ("positive", "negative"):
            G, base, _ = load.case(code, which)
            for bname, b in (("base", base), ("none", None)):
                found = analyze_trace(G, baseline=b, config=load.config())
                out[f"fixture/{code}/{which}/{bname}"] = [_finding(f) for f in found]
    data = generate(seed=7)
    baselines = compute_baselines(s for x in data for s in collect_samples(x.graph))
    plain = AnalyzerConfig(price_table=PRICES)
    configs = {"default": AnalyzerConfig(), "prices": plain,
               "tight": replace(plain, tight_loop_min=4, near_dup_args=0.7, near_dup_result=0.8,
                                oversize_z=3.0, routing_min_samples=10)}
    for cname, cfg in configs.items():
        for bname, use in (("base", True), ("none", False)):
            out[f"labelled/{cname}/{bname}"] = [
                [_finding(f) for f in analyze_trace(
                    x.graph, baseline=baselines.get(x.graph.graph["workflow"]) if use else None,
                    config=cfg)]
                for x in data]
    return out


def compute() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/demo.db"
        out["sqlite/demo"] = _demo(url)
        out["sqlite/tables"] = _tables(url)
        out["sqlite/api"] = _api(url)
        print("sqlite demo, tables and API dumped", file=sys.stderr)
    pg = os.environ.get("TRACESTORE_TEST_POSTGRES_URL")
    if pg:
        import psycopg

        name = f"identity_{uuid.uuid4().hex[:10]}"
        plain = pg.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        base = pg.rsplit("/", 1)[0]
        try:
            out["postgres/demo"] = _demo(f"{base}/{name}")
            out["postgres/tables"] = _tables(f"{base}/{name}")
        finally:
            with psycopg.connect(plain, autocommit=True) as c:
                c.execute(f"DROP DATABASE {name} WITH (FORCE)")
        print("postgres demo and tables dumped", file=sys.stderr)
    else:
        print("TRACESTORE_TEST_POSTGRES_URL not set: PostgreSQL not checked", file=sys.stderr)
    out["fixtures"] = _fixtures()
    return out


def _leaves(x: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in x.items():
        if isinstance(v, dict) and k in ("sqlite/tables", "sqlite/api", "postgres/tables",
                                           "fixtures"):
            flat.update({f"{k}/{kk}": vv for kk, vv in v.items()})
        else:
            flat[prefix + k] = v
    return flat


def main() -> None:
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("save", "check"):
        raise SystemExit(__doc__)
    mode, folder = sys.argv[1], Path(sys.argv[2]).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    out = _leaves(compute())
    if mode == "save":
        (folder / "identity.pkl").write_bytes(pickle.dumps(out))
        print(f"saved {len(out)} cases to {folder / 'identity.pkl'}")
        return
    ref = pickle.loads((folder / "identity.pkl").read_bytes())
    bad = [k for k in ref if out.get(k) != ref[k]] + [k for k in out if k not in ref]
    for k in bad[:8] if len(sys.argv) < 4 else bad:
        print("DIFF", k, _first_diff(_norm(ref.get(k)), _norm(out.get(k))))
    print(f"{len(ref)} cases, {len(bad)} differ" + ("" if bad else ": identical"))
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
