"""Redaction of secrets in trace content, applied at ingest before anything is written (and
so before content is hashed): prompts, outputs, queries, document text, tool arguments and
results, error types, node attributes and trace metadata.

Built-in rules (setting ``redact``; default ``api_keys,card_numbers``):

* ``api_keys`` — token shapes from the gitleaks rule set: OpenAI/Anthropic ``sk-…``, AWS
  ``AKIA…``, GitHub ``gh[pousr]_…``, Slack ``xox?-…``, Google ``AIza…``, Stripe ``sk_live_…``,
  our own ``ts_…``, ``Bearer …`` tokens and PEM private-key blocks;
* ``card_numbers`` — 13–19 digit runs (spaces/dashes allowed) that pass the Luhn check, so
  timestamps and ids are left alone;
* ``emails`` — off by default: support traces often need the address to be useful.

Extra regexes come from ``redact_patterns``. A match becomes ``[REDACTED:<rule>]``.

>>> r = Redactor.from_names("api_keys,card_numbers,emails")
>>> r.text("key sk-abcdefghijklmnopqrstuvwx, card 4242 4242 4242 4242, mail a.b@x.io")
'key [REDACTED:api_key], card [REDACTED:card_number], mail [REDACTED:email]'
>>> r.text("order 1234567890123 shipped")  # fails Luhn: not a card
'order 1234567890123 shipped'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from tracestore.config import Settings
from tracestore.errors import TracestoreError

__all__ = ["BUILTIN_RULES", "Redactor"]

_API_KEY = (
    r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|\b[sr]k_live_[0-9A-Za-z]{16,}"
    r"|\bts_[A-Za-z0-9_-]{43}"
    r"|\bBearer\s+[A-Za-z0-9._~+/-]{20,}=*"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
)
_CARD = r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"
_EMAIL = r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"

# Literal fragments at least one of which every _API_KEY match contains, and the fewest digits
# a _CARD match has: strings without them skip the (slow, ~100 µs per prompt) regex scan.
_API_KEY_HINTS = ("sk-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "AIza",
                  "k_live_", "ts_", "Bearer", "PRIVATE KEY")
_API_KEY_HINT_RX = re.compile("|".join(re.escape(h) for h in _API_KEY_HINTS))
_CARD_MIN_DIGITS = 13
# Cheaper still, one C-level pass over the UTF-8 bytes keeps only the characters the rules
# need: ASCII digits (a card match has >= 13; \d's other Unicode digits were never counted),
# "@" (every email match) and "-", "_", "A", "B", one of which every _API_KEY alternative
# contains literally (sk-/xox…-/PEM: "-"; gh?_/k_live_/ts_: "_"; AKIA/ASIA/AIza: "A";
# Bearer: "B"). ~1.5 ns a byte, against ~15 for the hint regex that runs only after it.
_ANCHORS = b"-_AB"
_NOT_NEEDED = bytes(b for b in range(256) if b not in b"0123456789@" + _ANCHORS)
_NOT_DIGITS = b"@" + _ANCHORS


def _precheck(b: bytes, rules: frozenset[str]) -> tuple[bool, bool]:
    """For UTF-8 bytes ``b``: (a card or email rule in ``rules`` may match a string whose
    bytes are part of ``b``; ``b`` holds an anchor of the API-key rule, when it is in
    ``rules``). Both False: no built-in rule can match."""
    kept = b.translate(None, _NOT_NEEDED)
    if not kept:
        return False, False
    sure = ("card_numbers" in rules
            and len(kept.translate(None, _NOT_DIGITS)) >= _CARD_MIN_DIGITS) or (
        "emails" in rules and b"@" in kept)
    anchor = "api_keys" in rules and (b"-" in kept or b"_" in kept or b"A" in kept
                                      or b"B" in kept)
    return sure, anchor


def _may_match_bytes(b: bytes, rules: frozenset[str]) -> bool:
    """:func:`_may_match` for UTF-8 bytes, without the hint regex: False only when no built-in
    rule in ``rules`` can match any string whose bytes are part of ``b``."""
    return any(_precheck(b, rules))


def _may_match(s: str, rules: frozenset[str]) -> bool:
    """False only when no built-in rule in ``rules`` can match ``s``.

    >>> _may_match("order shipped", frozenset({"api_keys", "card_numbers"}))
    False
    >>> _may_match("card 4242 4242 4242 4242", frozenset({"card_numbers"}))
    True
    >>> _may_match("key sk-abcdefghijklmnopqrstuvwx", frozenset({"api_keys"}))
    True
    """
    sure, anchor = _precheck(s.encode("utf-8", "surrogatepass"), rules)
    return sure or (anchor and _API_KEY_HINT_RX.search(s) is not None)


# The node fields that carry content (documents are handled beside them).
_NODE_FIELDS = ("prompt", "output", "query", "error_type", "args", "result", "attributes")

BUILTIN_RULES: dict[str, tuple[str, str]] = {
    "api_keys": ("api_key", _API_KEY),
    "card_numbers": ("card_number", _CARD),
    "emails": ("email", _EMAIL),
}


def _luhn(digits: str) -> bool:
    """The Luhn checksum every payment card number passes (ISO/IEC 7812-1)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class Redactor:
    """Replaces every match of its rules in strings, recursively through JSON values."""

    def __init__(self, rules: Sequence[tuple[str, str]]) -> None:
        self.rules: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = []
        for label, pattern in rules:
            try:
                rx = re.compile(pattern)
            except re.error as exc:
                raise TracestoreError(f"redaction pattern {pattern!r} is invalid: {exc}") from None
            self.rules.append((rx, self._replacer(label)))
        # One combined search decides whether a string needs work at all (the common case).
        self._any = re.compile("|".join(f"(?:{p})" for _, p in rules)) if rules else None
        # Pre-check only when every rule is built in (extra patterns can match anything).
        builtin = {pattern: name for name, (_, pattern) in BUILTIN_RULES.items()}
        names = [builtin.get(p) for _, p in rules]
        self._hints: frozenset[str] | None = (
            frozenset(n for n in names if n) if all(names) else None
        )

    @staticmethod
    def _replacer(label: str) -> Callable[[re.Match[str]], str]:
        if label == "card_number":
            def card(m: re.Match[str]) -> str:
                digits = re.sub(r"\D", "", m.group(0))
                return "[REDACTED:card_number]" if _luhn(digits) else m.group(0)
            return card
        return lambda _m: f"[REDACTED:{label}]"

    @classmethod
    def from_names(cls, names: str, extra: Sequence[str] = ()) -> Redactor:
        chosen = [n.strip() for n in names.split(",") if n.strip() and n.strip() != "none"]
        unknown = sorted(set(chosen) - set(BUILTIN_RULES))
        if unknown:
            raise TracestoreError(f"unknown redaction rule(s) {unknown}; "
                                  f"known: {', '.join(BUILTIN_RULES)}")
        rules = [BUILTIN_RULES[n] for n in chosen]
        rules += [("pattern", p) for p in extra]
        return cls(rules)

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        return cls.from_names(settings.redact, settings.redact_patterns)

    def __bool__(self) -> bool:
        return self._any is not None

    def text(self, s: str) -> str:
        if self._any is None or (self._hints is not None and not _may_match(s, self._hints)):
            return s
        if not self._any.search(s):
            return s
        for rx, repl in self.rules:
            s = rx.sub(repl, s)
        return s

    def value(self, v: Any) -> Any:
        """Redact every string (values and keys) inside a JSON value."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(x) for x in v]
        return v

    def row(self, row: dict[str, Any], documents: list[dict[str, Any]] | None) -> None:
        """Redact a node row (the ``NodeIn`` field values, before capping and hashing) and its
        documents' dicts in place."""
        if self._hints is not None:
            # One pre-check for the whole node: its content as one JSON text. orjson escapes
            # only '"', '\\' and control characters, so every digit, "@", "-", "_", "A", "B"
            # of every string (keys included) is in it; more digits in all than one string
            # has only makes the check more conservative. Most nodes stop here.
            values = [row[f] for f in _NODE_FIELDS]
            if documents:
                values.append([d["content"] for d in documents])
            try:
                dumped = orjson.dumps(values, option=orjson.OPT_NON_STR_KEYS)
            except TypeError:  # e.g. an int beyond 64 bits: check string by string
                dumped = None
            if dumped is not None and not _may_match_bytes(dumped, self._hints):
                return
        for f in _NODE_FIELDS:
            old = row[f]
            if old is not None:
                row[f] = self.value(old)
        for d in documents or ():
            if d["content"]:
                d["content"] = self.text(d["content"])
