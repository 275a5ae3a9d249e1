"""Identity check for the OTLP/native row path: a speed-up must not change one stored row.

It runs :func:`tracestore.ingest.otlp.prepare.prepare` over the OTLP bench's pre-encoded requests
(fixed seeds) and over every OTLP body the tests send (hex and base64 ids, OTLP/JSON,
OpenInference lists, bad spans…), with four settings (default redaction; all built-in rules
plus extra patterns, which turns the redaction pre-check off; emails only; no redaction with a
60-character content cap and a 5-node trace limit). It also maps the span lists the tests
hand to ``map_spans`` and builds rows from the native traces the tests ingest and from demo
traffic (``validate_items`` + ``build_rows``, three redactors, two caps). Results are compared
type-strictly (``1`` is not ``1.0``, dict key order counts) with a pickle of an earlier run::

    python -m bench.otlp_identity record DIR   # the tests' inputs -> DIR/corpus.pkl (pytest)
    python -m bench.otlp_identity save DIR     # results of this code -> DIR/baseline.pkl
    python -m bench.otlp_identity check DIR    # compare this code's results with it

Record and save on the old code (say a ``git worktree`` of main), then check on the new one
with the same DIR. Exit status 1 when anything differs.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for bench.*

# Test files whose OTLP bodies, span lists and native traces make the corpus.
TEST_FILES = [
    "tests/tracestore/test_ingest_otlp.py", "tests/tracestore/test_ingest_otlp_json.py",
    "tests/tracestore/test_otlp_mapping.py", "tests/tracestore/test_otlp_prepare.py",
    "tests/tracestore/test_fuzz_ingest.py", "tests/tracestore/test_ingest_native.py",
    "tests/tracestore/test_limits.py",
]

# ---------------------------------------------------------------- pytest plugin (record)

_CORPUS: dict[str, list[Any]] = {"bodies": [], "spans": [], "traces": []}
_SEEN: set[tuple[bytes, str]] = set()


def _body(body: bytes, encoding: str) -> None:
    key = (bytes(body), encoding)
    if key not in _SEEN:
        _SEEN.add(key)
        _CORPUS["bodies"].append(key)


def _keep(kind: str, obj: Any) -> None:
    with contextlib.suppress(Exception):
        _CORPUS[kind].append(pickle.dumps(obj))


def pytest_configure(config: Any) -> None:
    """Wrap the entry points the tests go through so that their inputs are recorded."""
    import tracestore.api.routes.otlp as route
    import tracestore.ingest.otlp as pkg
    import tracestore.ingest.otlp.decode as dec
    import tracestore.ingest.otlp.mapping as mapping
    import tracestore.ingest.otlp.prepare as prep
    import tracestore.ingest.pipeline as ingest

    dj, dp = dec.decode_json_request, dec.decode_protobuf_request

    def json_request(body: bytes) -> Any:
        _body(body, "json")
        return dj(body)

    def protobuf_request(body: bytes) -> Any:
        _body(body, "protobuf")
        return dp(body)

    for mod in (dec, pkg, prep):
        if getattr(mod, "decode_json_request", None) is dj:
            mod.decode_json_request = json_request  # type: ignore[attr-defined]
        if getattr(mod, "decode_protobuf_request", None) is dp:
            mod.decode_protobuf_request = protobuf_request  # type: ignore[attr-defined]
    prepare, pool_prepare = prep.prepare, prep.PreparePool.prepare

    def route_prepare(body: bytes, encoding: str, *args: Any) -> Any:
        _body(body, encoding)
        return prepare(body, encoding, *args)

    def pooled(self: Any, body: bytes, encoding: str, *args: Any) -> Any:
        _body(body, encoding)
        return pool_prepare(self, body, encoding, *args)

    route.prepare = route_prepare  # type: ignore[assignment]
    prep.PreparePool.prepare = pooled  # type: ignore[method-assign]
    map_spans, build_rows = mapping.map_spans, ingest.build_rows

    def recorded_map(spans: Any, **kw: Any) -> Any:
        spans = list(spans)
        _keep("spans", (spans, kw))
        return map_spans(spans, **kw)

    def recorded_rows(project_id: int, traces: Any, **kw: Any) -> Any:
        _keep("traces", (project_id, list(traces), kw.get("max_content_chars")))
        return build_rows(project_id, traces, **kw)

    mapping.map_spans = recorded_map  # type: ignore[assignment]
    ingest.build_rows = recorded_rows  # type: ignore[assignment]


def pytest_unconfigure(config: Any) -> None:
    out = Path(os.environ["OTLP_IDENTITY_DIR"]) / "corpus.pkl"
    out.write_bytes(pickle.dumps(_CORPUS))
    print(f"\nrecorded {len(_CORPUS['bodies'])} bodies, {len(_CORPUS['spans'])} span lists, "
          f"{len(_CORPUS['traces'])} native trace lists -> {out}")


# ---------------------------------------------------------------- save / check


def _norm(x: Any) -> Any:
    """A type-strict, order-keeping plain structure of ``x`` (models, dataclasses, floats by
    repr so that NaN equals NaN and -0.0 differs from 0.0)."""
    from pydantic import BaseModel

    if isinstance(x, BaseModel):
        return ("model", type(x).__name__, _norm(x.__dict__),
                _norm(x.__pydantic_fields_set__))
    if hasattr(x, "__dataclass_fields__"):
        return ("dc", type(x).__name__,
                tuple((f, _norm(getattr(x, f))) for f in x.__dataclass_fields__))
    if isinstance(x, dict):
        return ("dict", tuple((_norm(k), _norm(v)) for k, v in x.items()))
    if isinstance(x, list | tuple):
        return (type(x).__name__, tuple(_norm(v) for v in x))
    if isinstance(x, set | frozenset):
        return (type(x).__name__, tuple(sorted(repr(v) for v in x)))
    if isinstance(x, float):
        return ("float", repr(x))
    if x is None or isinstance(x, str | int | bool | bytes):
        return (type(x).__name__, x)
    return ("other", type(x).__name__, repr(x))


def compute(corpus: dict[str, list[Any]]) -> dict[tuple[Any, ...], Any]:
    import orjson

    from bench.ingest_otlp import build_requests
    from tracestore.config import Settings
    from tracestore.demo import generate
    from tracestore.errors import TracestoreError
    from tracestore.ingest.otlp.mapping import map_spans
    from tracestore.ingest.otlp.prepare import PrepareConfig, prepare
    from tracestore.ingest.pipeline import Limits, validate_items
    from tracestore.ingest.redact import Redactor
    from tracestore.ingest.write import build_rows
    from tracestore.schemas import TraceIn

    d = PrepareConfig.from_settings(Settings())
    cfgs = {
        "default": d,
        "redact_all": PrepareConfig(d.max_nodes_per_trace, d.max_content_chars,
                                    "api_keys,card_numbers,emails", (r"order \d+", "refund")),
        "emails_only": PrepareConfig(d.max_nodes_per_trace, d.max_content_chars, "emails", ()),
        "tight": PrepareConfig(5, 60, "none", ()),
    }

    def run(body: bytes, encoding: str, cfg: PrepareConfig) -> Any:
        try:
            return _norm(prepare(body, encoding, 1, cfg))
        except TracestoreError as exc:
            return ("error", type(exc).__name__, str(exc))

    out: dict[tuple[Any, ...], Any] = {}
    bench7 = [b for b, _ in build_requests(20000, 500, seed=7)]
    bench11 = [b for b, _ in build_requests(3000, 200, seed=11)]
    for name, cfg in cfgs.items():
        t = time.process_time()
        for i, b in enumerate(bench7 if name in ("default", "redact_all") else bench7[:6]):
            out[("bench7", name, i)] = run(b, "protobuf", cfg)
        for i, b in enumerate(bench11):
            out[("bench11", name, i)] = run(b, "protobuf", cfg)
        for i, (b, enc) in enumerate(corpus["bodies"]):
            out[("tests", name, i)] = run(b, enc, cfg)
        print(f"{name}: {time.process_time() - t:.1f}s CPU", file=sys.stderr)
    for i, blob in enumerate(corpus["spans"]):
        spans, kw = pickle.loads(blob)
        m = map_spans(spans, **kw)
        out[("spans", "traces", i)] = _norm([t.model_dump() for t in m.traces])
        out[("spans", "mapped", i)] = _norm((m.rejected, m.decided, m.executed))
        for rules in ("api_keys,card_numbers", "api_keys,card_numbers,emails"):
            m = map_spans(pickle.loads(blob)[0], **kw)
            out[("spans", rules, i)] = _norm(build_rows(
                1, m.traces, max_content_chars=100, redactor=Redactor.from_names(rules)))
    redactors = {"none": None, "default": Redactor.from_names("api_keys,card_numbers"),
                 "all": Redactor.from_names("api_keys,card_numbers,emails", [r"order \d+"])}
    for i, blob in enumerate(corpus["traces"]):
        pid, traces, cap = pickle.loads(blob)
        for rn, r in redactors.items():
            out[("native-tests", rn, i)] = _norm(build_rows(
                pid, traces, max_content_chars=cap or 16384, redactor=r))
    s = Settings()
    demo = generate(seed=11, n_traces=600).traces
    for j in range(0, len(demo), 100):
        items = orjson.loads(orjson.dumps(demo[j:j + 100]))
        traces, errors = validate_items(items, TraceIn, max_nodes=s.max_nodes_per_trace,
                                        limits=Limits.from_settings(s))
        out[("native-demo", "validate", j)] = _norm(([t.model_dump() for t in traces], errors))
        for rn, r in redactors.items():
            for cap in (16384, 80):
                out[("native-demo", rn, cap, j)] = _norm(build_rows(
                    3, traces, max_content_chars=cap, redactor=r))
    return out


def _first_diff(a: Any, b: Any, path: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{path}: {a!r:.200} vs {b!r:.200}"
    if isinstance(a, tuple):
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _first_diff(x, y, f"{path}/{i}")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r:.300} vs {b!r:.300}"


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("record", "save", "check"):
        raise SystemExit(__doc__)
    mode, folder = sys.argv[1], Path(sys.argv[2]).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "record":
        env = {**os.environ, "OTLP_IDENTITY_DIR": str(folder)}
        raise SystemExit(subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "-p", "bench.otlp_identity", *TEST_FILES], env=env))
    out = compute(pickle.loads((folder / "corpus.pkl").read_bytes()))
    if mode == "save":
        (folder / "baseline.pkl").write_bytes(pickle.dumps(out))
        print(f"saved {len(out)} cases to {folder / 'baseline.pkl'}")
        return
    ref = pickle.loads((folder / "baseline.pkl").read_bytes())
    bad = [k for k in ref if out.get(k) != ref[k]] + [k for k in out if k not in ref]
    for k in bad[:5]:
        print("DIFF", k, _first_diff(ref.get(k), out.get(k)))
    print(f"{len(ref)} cases, {len(bad)} differ" + ("" if bad else ": identical"))
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
