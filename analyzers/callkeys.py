"""Canonical call keys and MinHash/LSH near-duplicate detection.

Methods (docs/methods.md, "Call keys and near-duplicates"):

- **Canonical call keys** as in Gemini CLI's LoopDetectionService (hash of tool name + JSON
  args) and OpenHands' StuckDetector (equality ignoring process ids): arguments are parsed,
  keys sorted, whitespace collapsed, and *volatile* fields — timestamps, request/trace ids,
  uuids, nonces — dropped before hashing, so two calls that differ only in a request id key
  the same. A tool call keys as ``tool:<name>:<hash>``, an LLM call as
  ``llm:<model>:<prompt hash>``.
- **MinHash** (Broder) over word 3-gram shingles (the shingle size of the research prototype,
  docs/methods.md), 128 permutations by universal hashing ``(a·x + b) mod (2^61 − 1)`` on uint64
  (coefficients < 2^32, so the product never overflows), and **LSH banding** with 16 bands of
  8 rows: the candidate knee is ``(1/16)^(1/8) ≈ 0.71`` and a pair at Jaccard 0.8 becomes a
  candidate with probability 0.95 (MMDS ch. 3, docs/methods.md). Candidates are then
  verified on the signature agreement rate. Coefficients derive from BLAKE2b of their index,
  so signatures are identical across runs and machines (no randomness).

>>> canonical_args({"q": "refund  policy", "request_id": "r-1", "b": [2, 1]})
'{"b":[2,1],"q":"refund policy"}'
>>> call_key({"kind": "tool", "tool_name": "search", "args": {"q": "x", "ts": 1}}) == \\
...     call_key({"kind": "tool", "tool_name": "search", "args": {"ts": 2, "q": " x"}})
True
>>> a = minhash(shingles("the quick brown fox jumps over the lazy dog today"))
>>> b = minhash(shingles("the quick brown fox jumps over the lazy dog tonight"))
>>> 0.5 < similarity(a, b) < 1.0
True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BANDS",
    "NUM_PERM",
    "ROWS",
    "SHINGLE_WORDS",
    "VOLATILE_KEYS",
    "call_key",
    "canonical_args",
    "jaccard",
    "key_hash",
    "lsh_pairs",
    "minhash",
    "minhashes",
    "normalize_text",
    "result_key",
    "shingle_set",
    "shingles",
    "similarity",
]

# Field names (lower-cased, "-"/"_" removed) whose values change on every call.
VOLATILE_KEYS = frozenset({
    "timestamp", "ts", "time", "now", "date", "datetime", "createdat", "updatedat", "sentat",
    "requestid", "reqid", "traceid", "spanid", "correlationid", "messageid", "idempotencykey",
    "uuid", "nonce", "pid", "sessionid", "runid", "seed", "cachebuster",
})
NUM_PERM = 128
BANDS, ROWS = 16, 8  # BANDS * ROWS == NUM_PERM
SHINGLE_WORDS = 3
_MINHASH_CHUNK = 8192  # shingles per minhashes() pass: a 128 x 8192 uint64 matrix, 8 MiB
_MERSENNE = np.uint64((1 << 61) - 1)
_WS = re.compile(r"\s+")
# one encoder, built once (json.dumps with options builds a new one per call)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            default=str)
_WORD = re.compile(r"\w+")
# ASCII text (the usual case) is lower-cased and split into _WORD's words by one translate
# and a split, both in C and a few times cheaper than the regex: on ASCII, \w is
# [A-Za-z0-9_], so every other character becomes a space (:func:`_words`).
_ASCII_WORDS = str.maketrans({
    i: (chr(i).lower() if chr(i).isascii() and (chr(i).isalnum() or chr(i) == "_") else " ")
    for i in range(128)})


def _coefficients(n: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    raw = [hashlib.blake2b(f"minhash-{i}".encode(), digest_size=8).digest() for i in range(n)]
    vals = np.array([int.from_bytes(r, "big") for r in raw], dtype=np.uint64)
    a = (vals >> np.uint64(32)) | np.uint64(1)  # odd, < 2^32
    b = vals & np.uint64(0xFFFFFFFF)
    return a, b


_A, _B = _coefficients(NUM_PERM)


def normalize_text(text: str) -> str:
    """Collapse runs of whitespace and strip the ends."""
    return _WS.sub(" ", text).strip()


@lru_cache(maxsize=8192)
def _volatile(key: str) -> bool:
    return key.lower().replace("_", "").replace("-", "") in VOLATILE_KEYS


def _strip(value: Any) -> Any:
    t = type(value)  # exact types first: the common JSON values, without isinstance chains
    if t is str:
        return normalize_text(value)
    if t is dict or isinstance(value, dict):
        return {str(k): _strip(v) for k, v in value.items() if not _volatile(str(k))}
    if t is int or t is float or t is bool or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_strip(v) for v in value]
    if isinstance(value, str):
        return normalize_text(value)
    return value


def _encode(value: Any) -> str:
    """Sorted-key compact JSON of ``value``."""
    return _ENCODER.encode(value)


def canonical_args(args: Any) -> str:
    """Sorted-key compact JSON of ``args`` with whitespace normalised and volatile fields
    dropped. JSON text is parsed first, so ``'{"a": 1}'`` and ``{"a": 1}`` key the same."""
    if isinstance(args, str):
        s = args.strip()
        if s[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                args = json.loads(s)
    if type(args) is dict:
        # the common shape, a flat object of strings and numbers, without the recursion
        flat: dict[str, Any] = {}
        for k, x in args.items():
            if type(k) is not str:
                break
            t = type(x)
            if t is str:
                if not _volatile(k):
                    flat[k] = normalize_text(x)
            elif t is int or t is float or t is bool or x is None:
                if not _volatile(k):
                    flat[k] = x
            else:
                break
        else:
            return _encode(flat)
    # stdlib json, not tracestore.ingest.write.canonical_json: analyzers never import tracestore.
    return _encode(_strip(args))


def key_hash(text: str) -> str:
    """BLAKE2b-64 hex of ``text`` (short, stable)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _prompt_hash(attrs: dict[str, Any]) -> str | None:
    prompt = attrs.get("prompt")
    truncated = (attrs.get("attributes") or {}).get("tracestore.truncated") or {}
    if isinstance(prompt, str) and "prompt" not in truncated:
        return key_hash(normalize_text(prompt))
    ph = attrs.get("prompt_hash")
    return str(ph) if ph else None


def call_key(attrs: dict[str, Any]) -> str | None:
    """The canonical key of a tool or LLM call, or None when the node is neither or its
    input is unknown (no args, no prompt and no prompt hash)."""
    kind = attrs.get("kind")
    if kind == "tool":
        name = attrs.get("tool_name") or attrs.get("name") or ""
        args = attrs.get("args")
        if args is None:
            return f"tool:{name}:{attrs['args_hash']}" if attrs.get("args_hash") else None
        return f"tool:{name}:{key_hash(canonical_args(args))}"
    if kind in ("llm", "embedding"):
        ph = _prompt_hash(attrs)
        return f"llm:{attrs.get('model') or ''}:{ph}" if ph else None
    return None


def result_key(attrs: dict[str, Any]) -> str | None:
    """A key of what the call returned (status and error type included), or None if unknown."""
    if attrs.get("status") == "error":
        return f"error:{attrs.get('error_type') or ''}"
    if attrs.get("kind") == "tool":
        r = attrs.get("result")
        if isinstance(r, str) and r.lstrip()[:1] not in ("{", "["):
            return key_hash(normalize_text(r))
        if r is not None:
            return key_hash(canonical_args(r))
        h = attrs.get("result_hash")
        return str(h) if h else None
    out = attrs.get("output")
    if isinstance(out, str):
        return key_hash(normalize_text(out))
    h = attrs.get("output_hash")
    return str(h) if h else None


def _words(text: str) -> list[str]:
    """``_WORD.findall(text.lower())``: the lower-cased words of ``text``."""
    if text.isascii():
        return text.translate(_ASCII_WORDS).split()
    return _WORD.findall(text.lower())


def _grams(text: str, n: int) -> Any:
    """Word ``n``-grams of ``text`` (fewer words: the whole text is one gram)."""
    words = _words(text)
    if len(words) <= n:
        return (" ".join(words),)
    if n == 3:  # the default, without slicing per gram
        return map(" ".join, zip(words, words[1:], words[2:], strict=False))
    return (" ".join(words[i:i + n]) for i in range(len(words) - n + 1))


def shingles(text: str, n: int = SHINGLE_WORDS) -> npt.NDArray[np.uint64]:
    """CRC32 of word ``n``-grams (fewer words: the whole text is one shingle)."""
    return np.unique(np.array([zlib.crc32(g.encode()) for g in _grams(text, n)],
                              dtype=np.uint64))


def shingle_set(text: str, n: int = SHINGLE_WORDS) -> frozenset[str]:
    """Word ``n``-grams of ``text`` as a set (for exact Jaccard on small groups)."""
    return frozenset(_grams(text, n))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Exact Jaccard similarity of two sets.

    >>> jaccard(shingle_set("a b c d"), shingle_set("a b c e"))
    0.3333333333333333
    """
    return len(a & b) / len(a | b) if a or b else 1.0


def minhash(sh: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """A ``NUM_PERM``-long MinHash signature of a shingle set."""
    if sh.size == 0:
        return np.full(NUM_PERM, _MERSENNE, dtype=np.uint64)
    h = (np.outer(_A, sh) + _B[:, None]) % _MERSENNE
    return np.asarray(h.min(axis=1), dtype=np.uint64)


def similarity(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> float:
    """Estimated Jaccard similarity: the share of agreeing signature rows."""
    return float(np.count_nonzero(a == b)) / NUM_PERM


def minhashes(shingle_sets: Sequence[npt.NDArray[np.uint64]]) -> list[npt.NDArray[np.uint64]]:
    """:func:`minhash` of each shingle set, the same values, computed a chunk of sets at a
    time (one outer product and one ``minimum.reduceat`` per chunk instead of one per set)."""
    out: list[npt.NDArray[np.uint64]] = [np.full(NUM_PERM, _MERSENNE, dtype=np.uint64)
                                         for _ in shingle_sets]
    todo = [k for k, sh in enumerate(shingle_sets) if sh.size]
    start = 0
    while start < len(todo):
        # at most _MINHASH_CHUNK shingles per pass (bounds the NUM_PERM × chunk matrix)
        end, total = start, 0
        while end < len(todo) and (end == start or total + shingle_sets[todo[end]].size
                                   <= _MINHASH_CHUNK):
            total += shingle_sets[todo[end]].size
            end += 1
        chunk = [shingle_sets[k] for k in todo[start:end]]
        offsets = np.cumsum([0] + [sh.size for sh in chunk[:-1]])
        h = (np.outer(_A, np.concatenate(chunk)) + _B[:, None]) % _MERSENNE
        mins = np.ascontiguousarray(np.minimum.reduceat(h, offsets, axis=1).T, dtype=np.uint64)
        for row, k in enumerate(todo[start:end]):
            out[k] = mins[row]
        start = end
    return out


def lsh_pairs(signatures: Sequence[npt.NDArray[np.uint64]]) -> list[tuple[int, int]]:
    """Candidate pairs ``(i, j)``, ``i < j``, sharing at least one LSH band, sorted."""
    if len(signatures) < 2:
        return []
    sig = np.stack(signatures).reshape(len(signatures), BANDS, ROWS)
    out: set[tuple[int, int]] = set()
    row_bytes = np.dtype((np.void, ROWS * sig.itemsize))
    for band in range(BANDS):
        # signatures agreeing on the band's rows, grouped by numpy rather than a dict
        rows = np.ascontiguousarray(sig[:, band, :]).view(row_bytes).ravel()
        _, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
        for g in np.flatnonzero(counts > 1):
            members = np.flatnonzero(inverse.ravel() == g).tolist()
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    out.add((members[x], members[y]))
    return sorted(out)
