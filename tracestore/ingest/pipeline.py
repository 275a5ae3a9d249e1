"""The ingest pipeline shared by the REST API and the CLI:

    bytes → decompress (bounded) → decode (orjson) → validate each item (``TraceIn``)
          → redact + normalise into rows (:func:`tracestore.ingest.write.build_rows`)
          → price + upsert + roll-ups, one writer at a time
            (:func:`tracestore.ingest.write.write_rows`)

OTLP bodies take the same two steps: rows are built in worker processes
(:mod:`tracestore.ingest.otlp.prepare`) and stored by :meth:`Writer.write_rows`.

Bad items are reported with their index and field path and never sink the good ones.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.exc import DataError

from tracestore.config import Settings
from tracestore.errors import BadRequest, PayloadTooLarge, ValidationFailed
from tracestore.ingest.redact import Redactor
from tracestore.ingest.write import TraceRows, build_rows, write_outcomes, write_rows
from tracestore.limits import Limits
from tracestore.pricing.pricer import Pricer
from tracestore.schemas import ItemError, OutcomeIn, TraceIn
from tracestore.store.engine import WalCheckpointer, session_scope, upsert, writer_engine
from tracestore.store.tables import PROJECT_T

__all__ = [
    "IngestReport",
    "Writer",
    "decode_json",
    "decompress",
    "listed_errors",
    "project_id_for",
    "validate_items",
]


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip/deflate/identity), refusing to inflate past ``limit``
    bytes, so a gzip bomb costs at most ``limit`` bytes of memory.

    >>> import gzip
    >>> decompress(gzip.compress(b"abc"), "gzip", 100)
    b'abc'
    """
    if len(body) > limit:
        raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {limit} bytes "
                              "(setting max_body_bytes)", extra={"limit_bytes": limit})
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}; use gzip or identity")
    wbits = 16 + zlib.MAX_WBITS if enc != "deflate" else zlib.MAX_WBITS
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid {enc} data: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body exceeds the limit of {limit} bytes (setting "
                              "max_body_bytes)", extra={"limit_bytes": limit})
    return out


# A line of NDJSON holding something: found from its first non-blank byte, so blank lines
# cost no Python work (a gzip of newlines inflates to millions of them).
_LINE = re.compile(rb"[^ \t\r\n][^\n]*")


def decode_json(body: bytes, limits: Limits | None = None, *, lines: bool = False) -> Any:
    """Parse a JSON body (one JSON value a line when ``lines``: NDJSON) with orjson; an
    undecodable body is a 400. With ``limits``, a request over the values, items or nodes
    per request is refused (413) before anything is built (:meth:`Limits.check_body`), or,
    for items and nodes, before any item is validated (:meth:`Limits.check_items`).

    >>> decode_json(b'{"a": 1}\\n\\n  [2]\\n', lines=True)
    [{'a': 1}, [2]]
    """
    if limits is not None:
        limits.check_body(body, lines=lines)
    if lines:
        data: Any = [decode_json(m.group()) for m in _LINE.finditer(body)]
    elif not body.strip():
        raise BadRequest("request body is empty; send a JSON object or array")
    else:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from None
    if limits is not None:
        limits.check_items(data if isinstance(data, list) else [data])
    return data


def _errors(item: int, trace_id: Any, exc: ValidationError) -> list[ItemError]:
    return [
        ItemError(
            item=item,
            trace_id=trace_id if isinstance(trace_id, str) else None,
            loc=[p for p in e["loc"]],
            msg=e["msg"],
        )
        for e in exc.errors(include_url=False)
    ]


def validate_items(
    data: Any, model: type[TraceIn] | type[OutcomeIn], *, max_nodes: int | None = None,
    limits: Limits | None = None,
) -> tuple[list[Any], list[ItemError]]:
    """Validate one object or a list of objects; return (valid items, errors of the rest)."""
    items = data if isinstance(data, list) else [data]
    ok: list[Any] = []
    errors: list[ItemError] = []
    for i, item in enumerate(items):
        tid = item.get("trace_id") if isinstance(item, dict) else None
        if not isinstance(item, dict):
            errors.append(ItemError(item=i, loc=[], msg="each item must be a JSON object"))
            continue
        if max_nodes is not None and isinstance(item.get("nodes"), list) and len(
            item["nodes"]
        ) > max_nodes:
            errors.append(
                ItemError(item=i, trace_id=tid if isinstance(tid, str) else None, loc=["nodes"],
                          msg=f"{len(item['nodes'])} nodes exceed the limit of {max_nodes} "
                              "per trace (setting max_nodes_per_trace)")
            )
            continue
        broken = limits.errors(i, item) if limits is not None else []
        if broken:
            errors.extend(broken)
            continue
        try:
            ok.append(model.model_validate(item))
        except ValidationError as exc:
            errors.extend(_errors(i, tid, exc))
    return ok, errors


@dataclass
class IngestReport:
    accepted_traces: int = 0
    accepted_nodes: int = 0
    rejected_traces: int = 0
    errors: list[ItemError] = field(default_factory=list)

    def raise_if_rejected(self) -> None:
        if self.errors:
            raise ValidationFailed(
                f"{self.rejected_traces} item(s) rejected, {self.accepted_traces} stored; "
                "see errors[] for each item and field",
                extra={
                    "accepted_traces": self.accepted_traces,
                    "accepted_nodes": self.accepted_nodes,
                    "rejected_traces": self.rejected_traces,
                    **listed_errors(self.errors),
                },
            )


# Errors listed in a 422 body: the first ones name the problem; a million bad items must not
# make a 74 MB answer (the counts stay exact).
MAX_LISTED_ERRORS = 100


def listed_errors(errors: Sequence[ItemError | dict[str, Any]]) -> dict[str, Any]:
    """The ``errors`` member of a 422 body, the first :data:`MAX_LISTED_ERRORS` of them,
    and ``errors_omitted``, how many more there were (when any)."""
    out: dict[str, Any] = {"errors": [e.model_dump() if isinstance(e, ItemError) else e
                                      for e in errors[:MAX_LISTED_ERRORS]]}
    if len(errors) > MAX_LISTED_ERRORS:
        out["errors_omitted"] = len(errors) - MAX_LISTED_ERRORS
    return out


def project_id_for(engine: Engine, name: str) -> int:
    """The integer id of project ``name``, creating the project on first use (one indexed
    read when it exists; no cache, so a dropped or recreated store is never answered from
    memory)."""
    find = select(PROJECT_T.c.id).where(PROJECT_T.c.name == name)
    with session_scope(engine) as s:
        pid = s.execute(find).scalar_one_or_none()
        if pid is None:
            upsert(s, PROJECT_T, [{"name": name, "created_at": time.time()}],
                   keys=["name"], update=[])
            pid = s.execute(find).scalar_one()
    return int(pid)


class Writer:
    """Owns the write path of one database. SQLite allows one writer at a time, so writes are
    serialised here rather than left to contend on the file lock."""

    def __init__(self, engine: Engine, settings: Settings, pricer: Pricer | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.pricer = pricer or Pricer(cost_tolerance=settings.reported_cost_tolerance)
        self._lock = threading.Lock()
        self._engine = writer_engine(engine)  # SQLite: one connection kept open
        # SQLite: WAL checkpoints in a background thread, not inside the writer's commits.
        self._checkpointer = WalCheckpointer(engine) if self._engine is not engine else None
        self.limits = Limits.from_settings(settings)
        self.redactor = Redactor.from_settings(settings)  # applied before anything is written
        # Called with (nodes written, seconds) after each committed batch (operator metrics).
        self.on_write: Callable[[int, float], None] | None = None

    def close(self) -> None:
        """Stop the checkpoint thread and close the writer's own connection (if any)."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self._engine is not self.engine:
            self._engine.dispose()

    def rows(self, project_id: int, traces: Sequence[TraceIn]) -> TraceRows:
        """Validated traces → redacted, capped, hashed rows (CPU only, no lock, no I/O)."""
        return build_rows(project_id, traces, max_content_chars=self.settings.max_content_chars,
                          redactor=self.redactor)

    def write(self, project_id: int, traces: Sequence[TraceIn]) -> int:
        if not traces:
            return 0
        return self.write_rows(project_id, self.rows(project_id, traces))

    def write_rows(self, project_id: int, rows: TraceRows) -> int:
        """Store the rows of :meth:`rows` (or of the OTLP worker processes, which build them
        the same way), one writer at a time."""
        if not rows.traces:
            return 0
        t0 = time.perf_counter()
        try:
            with self._lock, session_scope(self._engine) as session:
                written = write_rows(session, project_id=project_id, rows=rows,
                                     pricer=self.pricer, now=time.time(),
                                     batch_size=self.settings.write_batch_size)
        except DataError as exc:  # e.g. PostgreSQL refuses NUL (U+0000) in text: bad input
            reason = str(exc.orig).splitlines()[0] if exc.orig else "invalid value"
            raise ValidationFailed(f"the database refused a value of this request ({reason}); "
                                   "nothing of it was stored") from None
        if self._checkpointer is not None:
            self._checkpointer.poke()
        if self.on_write is not None:
            self.on_write(written, time.perf_counter() - t0)
        return written

    def write_outcomes(self, project_id: int, outcomes: Sequence[OutcomeIn]) -> int:
        with self._lock, session_scope(self._engine) as session:
            return write_outcomes(session, project_id=project_id, outcomes=outcomes,
                                  now=time.time())

    def ingest_native(self, project_id: int, data: Any) -> IngestReport:
        """Validate and store native traces (decoded items, one object or a list) in this
        thread, as the API's worker processes prepare them; invalid items are reported,
        valid ones stored."""
        # imported here: tracestore.ingest.native imports this module (validate_items)
        from tracestore.ingest.native import prepare_native_items
        from tracestore.ingest.otlp.prepare import PrepareConfig

        p = prepare_native_items(data, project_id, PrepareConfig.from_settings(self.settings))
        return self.store_native(project_id, p.rows, p.accepted_traces, p.errors)

    def store_native(self, project_id: int, rows: TraceRows, accepted_traces: int,
                     errors: list[ItemError]) -> IngestReport:
        """Store the rows of a prepared native request; the report counts its items."""
        nodes = self.write_rows(project_id, rows)
        return IngestReport(accepted_traces, nodes, len({e.item for e in errors}), errors)
