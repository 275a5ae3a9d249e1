"""One OTLP request body → the rows the writer stores, in a worker process.

Decoding, span mapping, validation, redaction, content capping and hashing are pure functions
of the body's bytes (and of a few settings), and they are most of ingest's CPU time
(bench/RESULTS.md). :func:`prepare` does all of them; the route runs it in a
:class:`PreparePool` of worker processes (setting ``ingest_workers``), so that on a multi-core
machine the single writer (pricing, upserts, roll-ups, commit) stores one request while the
workers prepare the next ones. With ``ingest_workers=0`` the route calls :func:`prepare` in the
request thread: the same function, hence the same rows.

What stays in the server process: the tool-call join (:class:`ToolCallJoiner` remembers
unmatched ids across requests, see :mod:`tracestore.ingest.otlp.mapping`) and everything touching
the database.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from tracestore.config import Settings
from tracestore.ingest.otlp.decode import decode_json_request, decode_protobuf_request
from tracestore.ingest.otlp.mapping import map_spans
from tracestore.ingest.redact import Redactor
from tracestore.ingest.write import TraceRows, build_rows
from tracestore.limits import Limits
from tracestore.pricing.pricer import Pricer

__all__ = ["MAX_REASONS", "PrepareConfig", "PreparePool", "Prepared", "prepare", "pricer_for",
           "redactor_for"]

log = logging.getLogger("tracestore")

_T = TypeVar("_T")

# Rejection reasons quoted in partialSuccess.errorMessage; the count is always exact.
MAX_REASONS = 5


@dataclass(frozen=True, slots=True)
class PrepareConfig:
    """The settings :func:`prepare` depends on (small, sent with every request)."""

    max_nodes_per_trace: int
    max_content_chars: int
    redact: str
    redact_patterns: tuple[str, ...]
    # setting reported_cost_tolerance, for pricing (its default when not given)
    cost_tolerance: float = Settings.model_fields["reported_cost_tolerance"].default
    # per-item limits of native items (settings max_attributes, max_string_chars; their
    # defaults when not given)
    limits: Limits | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PrepareConfig:
        return cls(settings.max_nodes_per_trace, settings.max_content_chars, settings.redact,
                   tuple(settings.redact_patterns), settings.reported_cost_tolerance,
                   Limits.from_settings(settings))


@dataclass(slots=True)
class Prepared:
    """Rows of one request, its rejected-span count and first reasons, and the tool-call ids
    left for the server process to join (``(trace id, call id) → span id``)."""

    rows: TraceRows
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    decided: dict[tuple[str, str], str] = field(default_factory=dict)
    executed: dict[tuple[str, str], str] = field(default_factory=dict)


_redactors: dict[tuple[str, tuple[str, ...]], Redactor] = {}
_pricers: dict[float, Pricer] = {}


def redactor_for(cfg: PrepareConfig) -> Redactor:
    """The redactor of ``cfg``, made once per process."""
    key = (cfg.redact, cfg.redact_patterns)
    r = _redactors.get(key)
    if r is None:
        r = _redactors[key] = Redactor.from_names(cfg.redact, cfg.redact_patterns)
    return r


def pricer_for(cfg: PrepareConfig) -> Pricer:
    """A pricer with ``cfg``'s tolerance, made once per process."""
    p = _pricers.get(cfg.cost_tolerance)
    if p is None:
        p = _pricers[cfg.cost_tolerance] = Pricer(cost_tolerance=cfg.cost_tolerance)
    return p


def prepare(body: bytes, encoding: str, project_id: int, cfg: PrepareConfig) -> Prepared:
    """Decode (``encoding`` is ``"protobuf"`` or ``"json"``), map, validate, redact, cap and
    hash one request, then price the nodes by the library's rates and encode them as the
    node upsert's tuples (:meth:`TraceRows.encode_nodes`: the single writer then only runs
    the statements; tuples also pickle back smaller and faster than dicts). Raises
    :class:`~tracestore.errors.BadRequest` for an undecodable body; spans that fail are
    counted as rejected."""
    decode = decode_protobuf_request if encoding == "protobuf" else decode_json_request
    spans, rejected = decode(body, cfg.limits)  # bounded before parsing (docs/limits.md)
    mapped = map_spans(spans, max_nodes_per_trace=cfg.max_nodes_per_trace)
    rejected += mapped.rejected
    rows = build_rows(project_id, mapped.traces, max_content_chars=cfg.max_content_chars,
                      redactor=redactor_for(cfg))
    rows.encode_nodes(pricer_for(cfg))
    return Prepared(rows, len(rejected), [r.reason for r in rejected[:MAX_REASONS]],
                    mapped.decided, mapped.executed)


# How long a new pool's workers may take to start, all of them (see PreparePool._start).
START_TIMEOUT_S = 120.0

# The workers' garbage-collector thresholds (see _init_worker).
WORKER_GC_THRESHOLD = (20_000, 20, 20)


# The barrier the pool's first tasks meet at (see PreparePool._start); one per pool, set by
# _init_worker in each worker process.
_start_barrier: list[Any] = []


def _ready(timeout: float) -> bool:
    """A pool's first tasks, one per worker: each waits until all the workers run one, so
    that every worker process is started before the pool serves a request."""
    _start_barrier[0].wait(timeout)
    return True


def _init_worker(lifeline: Connection, barrier: Any) -> None:
    """Set up a worker process.

    * Exit when the server does: ``lifeline`` is the read end of a pipe only the server
      holds, so it reads EOF once the server is gone, even after a SIGKILL. A pool's own
      workers would otherwise wait forever for work.
    * Garbage collection tuned for the job: the imported modules are frozen out of it, and a
      collection runs every 20,000 allocations rather than 700. A request allocates ~100k
      short-lived objects; at the default threshold the collector's passes cost ~20% of
      :func:`prepare` (bench/RESULTS.md). Cyclic garbage is still collected, later.
    """

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv_bytes()
        os._exit(0)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
    _start_barrier[:] = [barrier]
    # Process-local (a pool worker runs only prepare(), never the server's requests); kept:
    # OTLP server CPU 102-108 vs 114-115 us a span without it (bench.ingest_otlp, 50k spans).
    gc.freeze()
    gc.set_threshold(*WORKER_GC_THRESHOLD)


class PreparePool:
    """``workers`` processes running :func:`prepare`. They are forked from a ``forkserver``
    that has imported this module once, so starting them is cheap and never forks a
    multi-threaded server. All of them are started before the pool serves a request (a
    :class:`~concurrent.futures.ProcessPoolExecutor` starts a process only when no worker is
    idle: the second would start once the first is busy, and a first burst would wait for
    it, ~0.3 s of imports of the server's main module). A worker that dies (say, killed for
    memory) breaks the executor: the request it had is then prepared in the calling thread
    and a new pool is started."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload([__name__, "tracestore.ingest.native"])
        # Only this process holds the write end: the workers see EOF when it is gone.
        self._lifeline, self._alive = self._ctx.Pipe(duplex=False)
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        barrier = self._ctx.Barrier(self.workers)
        pool = ProcessPoolExecutor(self.workers, mp_context=self._ctx, initializer=_init_worker,
                                   initargs=(self._lifeline, barrier))
        # One task a worker, none of which ends before all run: the executor starts a process
        # for each (it starts one only when no worker is idle), so all are up and warm.
        for ready in [pool.submit(_ready, START_TIMEOUT_S) for _ in range(self.workers)]:
            ready.result()
        return pool

    def prepare(self, body: bytes, encoding: str, project_id: int,
                cfg: PrepareConfig) -> Prepared:
        return self.run(prepare, body, encoding, project_id, cfg)

    def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in a worker (``fn`` a module-level function, so it pickles: OTLP's
        :func:`prepare`, native ingest's :func:`~tracestore.ingest.native.prepare_native`)."""
        pool = self._pool
        try:
            return pool.submit(fn, *args).result()
        except BrokenProcessPool:
            log.warning("an ingest worker process died; preparing this request in the server "
                        "process and starting new workers")
            with self._lock:
                if self._pool is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._start()
            return fn(*args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._alive.close()
        self._lifeline.close()

    def __enter__(self) -> PreparePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
