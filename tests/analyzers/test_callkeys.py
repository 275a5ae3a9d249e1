"""The fast paths of analyzers.callkeys give what their plain definitions give: the batched
MinHash equals one signature at a time, ASCII words by translate equal the regex's words,
the flat-object canonical_args equals the recursive one."""

from __future__ import annotations

import json
import random
import re
import string

import numpy as np
import pytest

from analyzers import callkeys
from analyzers.callkeys import (
    NUM_PERM,
    canonical_args,
    minhash,
    minhashes,
    normalize_text,
    shingle_set,
    shingles,
)


def _texts(rng: random.Random, n: int) -> list[str]:
    words = ["refund", "policy", "order", "A-1234", "status", "the", "of", "ship_date",
             "naïve", "Straße", "日本", "x", "42"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(0, 60))) for _ in range(n)]


def test_batched_minhash_equals_one_at_a_time() -> None:
    rng = random.Random(5)
    sets = [shingles(t) for t in _texts(rng, 300)]
    sets += [np.array([], dtype=np.uint64), shingles("one"), np.array([], dtype=np.uint64)]
    # a set larger than a chunk, and sets whose sizes straddle the chunk boundary
    big = np.unique(np.array(rng.sample(range(1 << 32), callkeys._MINHASH_CHUNK + 7),
                             dtype=np.uint64))
    sets += [big, shingles("a b c d e f g"), big[:callkeys._MINHASH_CHUNK - 3]]
    got = minhashes(sets)
    assert len(got) == len(sets)
    for sig, sh in zip(got, sets, strict=True):
        want = minhash(sh)
        assert sig.dtype == want.dtype == np.uint64 and sig.shape == (NUM_PERM,)
        assert np.array_equal(sig, want)
    assert minhashes([]) == []


def test_ascii_words_equal_the_regex_words() -> None:
    rng = random.Random(11)
    alphabet = string.printable + "\x00\x7f"
    word = re.compile(r"\w+")
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
               for _ in range(3000)]
    samples += ["Hello, World_2!", "  ", "", "a\tb\nc", "ÀB ç", "ǅx"]  # the last two: not ASCII
    for text in samples:
        assert callkeys._words(text) == word.findall(text.lower()), repr(text)
    assert shingle_set("The quick, brown fox!") == frozenset({"the quick brown",
                                                             "quick brown fox"})


@pytest.mark.parametrize("args", [
    {"q": "refund  policy", "n": 3, "ok": True, "none": None, "x": 1.5},
    {"request_id": "r-1", "b": "  spaced\ttext ", "a": 0},
    {"nested": {"b": 1, "a": [1, {"ts": 2, "k": "v"}]}, "q": "x"},  # leaves the fast path
    {1: "int key", "q": "y"},  # a non-str key leaves the fast path
    '{"q": "json  text", "trace_id": "t"}', "plain text", [3, 1, 2], None,
])
def test_flat_canonical_args_equal_the_recursive_form(args: object) -> None:
    parsed = json.loads(args) if isinstance(args, str) and args[:1] == "{" else args
    assert canonical_args(args) == callkeys._encode(callkeys._strip(parsed))


def test_normalize_text_collapses_every_kind_of_whitespace() -> None:
    assert normalize_text("  a  b\tc\n") == "a b c"
    assert normalize_text("a\x0cb\u00a0c ") == "a b c"
    assert normalize_text("plain text") == "plain text"
