"""PostgreSQL bulk path (issue 18 item 5): the node upsert as ``executemany`` of ``INSERT … ON
CONFLICT`` (the row-by-row statement) against ``COPY`` into a temporary staging table plus one
``INSERT … SELECT … ON CONFLICT`` per batch (what ``tracestore.store.engine.upsert`` does on
PostgreSQL from ``COPY_MIN_ROWS`` rows).

Both write the same node rows (the demo's traces, built, priced and encoded as the OTLP
worker processes do) in request-sized batches into a fresh schema, first as inserts, then
again as updates of every row; each batch one transaction. Runs alternate A/B/A/B... in the
same minutes. Rows written by both are compared (identical tables).

    python -m bench.pg_copy --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.common import machine, pg_schema, spread, write_json
from tracestore.demo.run import generate_demo_traces
from tracestore.ingest.write import NodeTuples, _first_months, _with_months, build_rows
from tracestore.pricing.pricer import Pricer
from tracestore.schemas import TraceIn
from tracestore.store.engine import (
    _upsert_sql,
    create_schema,
    make_engine,
    upsert,
)
from tracestore.store.partitions import ensure_partitions
from tracestore.store.tables import NODE_T

KEYS = ("project_id", "trace_id", "node_id", "trace_month")


def batches(n_traces: int, per_batch: int) -> list[NodeTuples]:
    """The node tuples of ``n_traces`` demo traces, ``per_batch`` traces a batch."""
    data = generate_demo_traces(seed=11, n=n_traces)
    out = []
    for i in range(0, len(data.traces), per_batch):
        traces = [TraceIn.model_validate(t) for t in data.traces[i : i + per_batch]]
        rows = build_rows(1, traces, max_content_chars=16384)
        rows.encode_nodes(Pricer())
        assert rows.encoded is not None
        # each row with its trace's month, as the writer gives a new trace
        months = _first_months(rows.encoded, sorted(rows.traces), 0.0)
        out.append(_with_months(rows.encoded, months))
    return out


def copy_upsert(session: Session, nodes: NodeTuples) -> None:
    """``tracestore.store.engine.upsert`` as it is: on PostgreSQL a batch of at least
    ``COPY_MIN_ROWS`` goes through COPY into a staging table and one merge statement."""
    upsert(session, NODE_T, nodes.values, columns=nodes.columns, keys=KEYS, encode_json=None,
           nulls=nodes.nulls)


def executemany_upsert(session: Session, nodes: NodeTuples) -> None:
    """The same rows through the driver's ``executemany`` of the one-row ``INSERT … ON
    CONFLICT`` statement (the upsert's path below ``COPY_MIN_ROWS``, and before the bulk
    path)."""
    sets = tuple(c for c in nodes.columns if c not in KEYS)
    sql = _upsert_sql(NODE_T, tuple(nodes.columns), KEYS, sets, frozenset(),
                      frozenset(nodes.nulls), "%s")
    session.connection().exec_driver_sql(sql, nodes.values)


def run(url: str, data: Sequence[NodeTuples], write: Any) -> tuple[float, float, str]:
    """(insert seconds, update seconds, a digest of the table) for one fresh schema."""
    engine = make_engine(url)
    create_schema(engine)
    with engine.begin() as conn:
        ensure_partitions(conn, {v[-1] for nodes in data for v in nodes.values})
    times = []
    for _ in range(2):  # inserts, then the same rows again (every one an update)
        t0 = time.perf_counter()
        for nodes in data:
            with Session(engine) as s, s.begin():
                write(s, nodes)
        times.append(time.perf_counter() - t0)
    with engine.connect() as conn:
        digest = conn.execute(text(
            "SELECT md5(string_agg(t::text, '|' ORDER BY project_id, trace_id, node_id)) "
            "FROM nodes t")).scalar_one()
    engine.dispose()
    return times[0], times[1], digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--postgres", default=os.environ.get("TRACESTORE_BENCH_POSTGRES_URL"),
                    required=False)
    ap.add_argument("--traces", type=int, default=3000)
    ap.add_argument("--per-batch", type=int, default=100, help="traces a batch (a request)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not args.postgres:
        raise SystemExit("--postgres URL is required (this compares PostgreSQL write paths)")
    data = batches(args.traces, args.per_batch)
    nodes = sum(len(b.values) for b in data)
    res: dict[str, dict[str, list[float]]] = {"executemany": {"insert": [], "update": []},
                                             "copy": {"insert": [], "update": []}}
    digests = set()
    loads = [machine()["loadavg"]]
    for _ in range(args.rounds):
        for name, write in (("executemany", executemany_upsert), ("copy", copy_upsert)):
            with pg_schema(args.postgres) as url:
                ins, upd, digest = run(url, data, write)
            res[name]["insert"].append(nodes / ins)
            res[name]["update"].append(nodes / upd)
            digests.add(digest)
            print(f"{name:12s} insert {nodes / ins:8.0f} nodes/s  update {nodes / upd:8.0f} "
                  f"nodes/s  load {os.getloadavg()[0]:.2f}", flush=True)
        loads.append(machine()["loadavg"])
    out = {"nodes": nodes, "batches": len(data), "identical_tables": len(digests) == 1,
           "machine": machine(), "loads": loads,
           **{f"{k}_{op}_nodes_per_s": spread(v) for k, d in res.items()
              for op, v in d.items()}}
    write_json(__import__("pathlib").Path("bench/out/pg_copy.json"), out)
    print(out)


if __name__ == "__main__":
    main()
