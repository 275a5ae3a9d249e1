"""Reading the content-bearing attributes of a span: messages, documents, token usage.

Producers flatten lists into indexed keys (OpenInference ``llm.input_messages.0.message.role``,
``retrieval.documents.0.document.id``; OpenLLMetry ``gen_ai.prompt.0.content``) or send them as
structured values or JSON strings (OTel GenAI ``gen_ai.input.messages``). Everything here turns
them into one shape: messages are ``{"role", "content", "tool_calls", "tool_call_id"}`` dicts;
documents are ``{"id", "score", "content"}`` dicts; usage is inclusive token counts.

>>> unflatten({"llm.input_messages.1.message.role": "user",
...            "llm.input_messages.0.message.role": "system"})["llm.input_messages"]
[{'message.role': 'system'}, {'message.role': 'user'}]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import orjson

from tracestore.ingest.write import content_hash

__all__ = [
    "FLAT_PREFIXES",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_CHARS",
    "as_float",
    "as_int",
    "bounded_attributes",
    "documents",
    "genai_messages",
    "maybe_json",
    "openinference_messages",
    "openllmetry_messages",
    "output_text",
    "unflatten",
    "usage",
]

# Indexed (flattened) list attributes: OpenInference spec/semantic_conventions.md "Lists are
# flattened", OpenLLMetry gen_ai.prompt.{i}/gen_ai.completion.{i} (docs/ingest.md, field mapping).
FLAT_PREFIXES = (
    "llm.input_messages", "llm.output_messages", "retrieval.documents",
    "reranker.input_documents", "reranker.output_documents", "llm.tools",
    "embedding.embeddings", "annotations", "evaluations", "gen_ai.prompt", "gen_ai.completion",
    "llm.prompts", "llm.choices",
)
FLAT_RE = re.compile(r"^(" + "|".join(re.escape(p) for p in FLAT_PREFIXES) + r")\.(\d+)\.(.+)$")
# One search over all of a span's keys joined by newlines: cheaper than a match per key for
# the many spans that carry no flattened list at all. ``_DOT_DIGIT`` goes first: a literal
# "." lets the regex engine skip ahead, where ``_FLAT_ANY``'s "^" is tried at every
# character (~4x slower on a chat span's keys, which have no index at all).
_FLAT_ANY = re.compile(r"^(?:" + "|".join(re.escape(p) for p in FLAT_PREFIXES) + r")\.\d+\.",
                       re.MULTILINE)
_DOT_DIGIT = re.compile(r"\.\d")
# An index that large is a hostile or broken producer, not a list; OTel's default attribute
# count limit (OTEL_ATTRIBUTE_COUNT_LIMIT=128) bounds real lists far below it.
_MAX_INDEX = 10_000
# OTel SDK default span attribute count limit (OTEL_ATTRIBUTE_COUNT_LIMIT = 128).
MAX_ATTRIBUTES = 128
# Per kept value: enough for ids, URLs and short JSON; long content has its own fields,
# capped by max_content_chars. 128 × 1 KiB bounds one node's leftovers to ~128 KiB.
MAX_ATTRIBUTE_CHARS = 1024


def as_int(v: Any) -> int | None:
    """An attribute as an int (ints, integral floats, numeric strings), else ``None``.

    >>> as_int(3), as_int("42"), as_int(2.0), as_int(True), as_int("x")
    (3, 42, 2, None, None)
    """
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if v == v and abs(v) < 1e18 else None
    if isinstance(v, str):
        try:
            return int(float(v)) if "." in v else int(v)
        except ValueError:
            return None
    return None


def as_float(v: Any) -> float | None:
    """An attribute as a finite float, else ``None`` (NaN and infinities are not numbers
    a cost or a score can be).

    >>> as_float("0.5"), as_float(2), as_float("nan"), as_float(float("inf"))
    (0.5, 2.0, None, None)
    """
    if type(v) is float:  # the usual case (a score), without the conversions below
        return v if math.isfinite(v) else None
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float | str):
        try:
            f = float(v)
        except (ValueError, OverflowError):
            return None
        return f if math.isfinite(f) else None
    return None


def maybe_json(v: Any) -> Any:
    """Parse a string holding a JSON object or array; anything else is returned as is."""
    if isinstance(v, str) and v[:1] in ("{", "["):
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
    return v


def unflatten(flat: dict[str, Any], keys: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Group ``prefix.N.rest`` keys into ``{prefix: [ {rest: value}, ... ]}`` in index order.
    ``keys``: the keys of ``flat`` joined by newlines, if the caller has them already."""
    if keys is None:
        keys = "\n".join(flat)
    if _DOT_DIGIT.search(keys) is None or _FLAT_ANY.search(keys) is None:
        return {}
    groups: dict[str, dict[int, dict[str, Any]]] = {}
    for key, value in flat.items():
        m = FLAT_RE.match(key)
        if m is None:
            continue
        idx = int(m.group(2))
        if idx > _MAX_INDEX:
            continue
        groups.setdefault(m.group(1), {}).setdefault(idx, {})[m.group(3)] = value
    return {p: [items[i] for i in sorted(items)] for p, items in groups.items()}


def _tool_calls(item: dict[str, Any], prefix: str, id_k: str, name_k: str,
                args_k: str) -> list[dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for key, value in item.items():
        if not key.startswith(prefix):
            continue
        idx_s, _, rest = key[len(prefix):].partition(".")
        if not idx_s.isdigit():
            continue
        call = calls.setdefault(int(idx_s), {})
        if rest == id_k:
            call["id"] = str(value)
        elif rest == name_k:
            call["name"] = value
        elif rest == args_k:
            call["arguments"] = maybe_json(value)
    return [calls[i] for i in sorted(calls)]


def _message(role: Any, content: Any, tool_calls: list[dict[str, Any]],
             tool_call_id: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": role if isinstance(role, str) else None, "content": content}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    if tool_call_id is not None:
        msg["tool_call_id"] = str(tool_call_id)
    return msg


def openinference_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenInference ``llm.*_messages.N.message.*`` items (already unflattened)."""
    out = []
    for it in items:
        content = it.get("message.content")
        if content is None:  # multi-part: message.contents.J.message_content.text
            parts = [v for k, v in sorted(it.items())
                     if k.startswith("message.contents.") and k.endswith("message_content.text")]
            content = "\n".join(str(p) for p in parts) if parts else None
        calls = _tool_calls(it, "message.tool_calls.", "tool_call.id",
                            "tool_call.function.name", "tool_call.function.arguments")
        out.append(_message(it.get("message.role"), content, calls,
                            it.get("message.tool_call_id")))
    return out


def openllmetry_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenLLMetry ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` items."""
    out = []
    for it in items:
        msg = _message(it.get("role"), it.get("content"),
                       _tool_calls(it, "tool_calls.", "id", "name", "arguments"),
                       it.get("tool_call_id"))
        if it.get("finish_reason"):  # gen_ai.completion.N.finish_reason (older releases)
            msg["finish_reason"] = it["finish_reason"]
        out.append(msg)
    return out


def genai_messages(value: Any) -> list[dict[str, Any]]:
    """OTel GenAI ``gen_ai.input.messages``/``gen_ai.output.messages`` (structured or JSON).

    Written out rather than through :func:`_message`: half of a chat span's mapping time is
    here (bench/RESULTS.md), so the loop keeps its look-ups local and builds each message dict
    once, with the keys in the order :func:`_message` gives them.
    """
    value = maybe_json(value)
    if not isinstance(value, list):
        return []
    out = []
    for m in value:
        if not isinstance(m, dict):
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        call_id = m.get("tool_call_id")
        parts = m.get("parts")
        if isinstance(parts, list):
            for p in parts:
                if not isinstance(p, dict):
                    continue
                ptype = p.get("type")
                if ptype == "text":
                    text = p.get("content")
                    if text is not None:
                        texts.append(str(text))
                elif ptype == "tool_call":
                    call: dict[str, Any] = {}
                    pid = p.get("id")
                    if pid is not None:
                        call["id"] = str(pid)
                    name = p.get("name")
                    if name is not None:
                        call["name"] = name
                    args = maybe_json(p.get("arguments"))
                    if args is not None:
                        call["arguments"] = args
                    calls.append(call)
                elif ptype == "tool_call_response":
                    call_id = p.get("id")
                    res = p.get("response", p.get("result"))
                    texts.append(res if isinstance(res, str) else orjson.dumps(res).decode())
        role = m.get("role")
        msg: dict[str, Any] = {"role": role if isinstance(role, str) else None,
                               "content": "\n".join(texts) if texts else m.get("content")}
        if calls:
            msg["tool_calls"] = calls
        if call_id is not None:
            msg["tool_call_id"] = str(call_id)
        finish = m.get("finish_reason")
        if finish is not None:
            msg["finish_reason"] = finish
        out.append(msg)
    return out


def output_text(messages: list[dict[str, Any]]) -> str | None:
    """The text an LLM produced: its messages' text, else its tool calls as JSON."""
    texts = [str(m["content"]) for m in messages if m.get("content") not in (None, "")]
    if texts:
        return "\n".join(texts)
    calls = [c for m in messages for c in m.get("tool_calls", ())]
    return orjson.dumps(calls).decode() if calls else None


def _doc(raw: dict[str, Any], i: int) -> dict[str, Any]:
    if "content" in raw:
        content = raw["content"]
    elif "document" in raw:
        content = raw["document"]
    elif "page_content" in raw or "pageContent" in raw:  # LangChain Document (Python / JS)
        content = raw.get("page_content", raw.get("pageContent"))
    else:
        content = raw.get("text")
    if content is not None and not isinstance(content, str):
        content = orjson.dumps(content).decode()
    doc_id = raw.get("id")
    if doc_id is None or doc_id == "":
        # No id sent: the content hash identifies the document across traces; else position.
        doc_id = content_hash(content) if content else str(i)
    score = raw.get("score")
    doc: dict[str, Any] = {"id": (doc_id if type(doc_id) is str else str(doc_id))[:512],
                           "score": None if score is None else as_float(score)}
    if content is not None:
        doc["content"] = content
    return doc


def documents(items: list[dict[str, Any]], prefix: str = "document.") -> list[dict[str, Any]]:
    """Documents from unflattened ``...documents.N.document.*`` items (or plain dicts)."""
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            continue
        # Plain dicts (a JSON documents attribute) are read as they are; only items with
        # prefixed keys are renamed (a copy per document otherwise).
        for k in it:
            if k.startswith(prefix):
                it = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in it.items()}
                break
        out.append(_doc(it, i))
    return out


_CACHE_READ = ("gen_ai.usage.cache_read.input_tokens", "llm.token_count.prompt_details.cache_read",
               "gen_ai.usage.cache_read_input_tokens")
_CACHE_WRITE = ("gen_ai.usage.cache_creation.input_tokens",
                "llm.token_count.prompt_details.cache_write",
                "gen_ai.usage.cache_creation_input_tokens")
_REASONING = ("gen_ai.usage.reasoning.output_tokens",
              "llm.token_count.completion_details.reasoning", "gen_ai.usage.reasoning_tokens",
              "gen_ai.usage.thoughts_tokens")
_INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
_OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
           "llm.token_count.completion")


def _first_int(a: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    if a.keys().isdisjoint(keys):  # one C-level test for the usual absent bucket
        return None
    for k in keys:
        v = a.get(k)
        if v is not None:
            v = v if type(v) is int else as_int(v)
            if v is not None:
                return int(v)
    return None


def _sum_int(d: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    vals = [as_int(d.get(k)) for k in keys if d.get(k) is not None]
    found = [v for v in vals if v is not None]
    return sum(found) if found else None


# Nested token details as the Langfuse SDK's integrations pass usage through
# (langfuse-python langfuse/openai.py _parse_usage keeps OpenAI's and LangChain's nested
# dicts): (outer key, inner key) pairs, first present wins.
_NESTED_CACHE_READ = (("prompt_tokens_details", "cached_tokens"),
                      ("input_tokens_details", "cached_tokens"),
                      ("input_token_details", "cache_read"))
_NESTED_CACHE_WRITE = (("input_token_details", "cache_creation"),
                       ("prompt_tokens_details", "cache_creation_tokens"))
_NESTED_REASONING = (("completion_tokens_details", "reasoning_tokens"),
                     ("output_tokens_details", "reasoning_tokens"),
                     ("output_token_details", "reasoning"))


def _nested_int(d: dict[str, Any], pairs: tuple[tuple[str, str], ...]) -> int | None:
    for outer, inner in pairs:
        sub = d.get(outer)
        if isinstance(sub, dict) and sub.get(inner) is not None:
            return as_int(sub[inner])
    return None


def _detail_buckets(d: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(cache read, cache write, reasoning) from Langfuse ``usage_details``: its flat keys
    (server-side names) or the nested OpenAI / LangChain details the SDK passes through."""
    cr = _sum_int(d, ("input_cached_tokens", "cache_read_input_tokens"))
    if cr is None:
        cr = _nested_int(d, _NESTED_CACHE_READ)
    cw = _sum_int(d, ("input_cache_creation", "cache_creation_input_tokens"))
    if cw is None:
        cw = _sum_int(d, ("input_cache_creation_5m", "input_cache_creation_1h"))
    if cw is None:
        cw = _nested_int(d, _NESTED_CACHE_WRITE)
    rs = _sum_int(d, ("output_reasoning_tokens", "reasoning_tokens"))
    if rs is None:
        rs = _nested_int(d, _NESTED_REASONING)
    return cr, cw, rs


def usage(a: dict[str, Any], details: dict[str, Any] | None) -> dict[str, int]:
    """Token counts, normalised to inclusive semantics (docs/ingest.md, field mapping).

    ``input_tokens`` includes cache reads and writes; ``output_tokens`` includes reasoning. A
    producer whose input is smaller than its own cache counts evidently sent exclusive buckets
    (Langfuse's server does), so the buckets are added back.

    >>> usage({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.cache_read.input_tokens": 30},
    ...       None)  # doctest: +NORMALIZE_WHITESPACE
    {'input_tokens': 40, 'output_tokens': 0, 'cache_read_tokens': 30, 'cache_write_tokens': 0,
     'reasoning_tokens': 0}
    """

    d = details or {}
    dcr, dcw, drs = _detail_buckets(d) if d else (None, None, None)
    cache_read = _first_int(a, _CACHE_READ)
    if cache_read is None:
        cache_read = dcr
    cache_write = _first_int(a, _CACHE_WRITE)
    if cache_write is None:
        cache_write = dcw
    reasoning = _first_int(a, _REASONING)
    if reasoning is None:
        reasoning = drs
    inp = _first_int(a, _INPUT)
    out = _first_int(a, _OUTPUT)
    cr, cw, rs = cache_read or 0, cache_write or 0, reasoning or 0
    if inp is None:
        # Langfuse's own keys are exclusive buckets ("input" excludes cache, §4.4); the
        # OpenAI-style keys users also send are inclusive.
        excl = as_int(d.get("input"))
        inp = excl + cr + cw if excl is not None else _sum_int(d, ("input_tokens",
                                                                      "prompt_tokens"))
    if out is None:
        excl = as_int(d.get("output"))
        out = excl + rs if excl is not None else _sum_int(d, ("output_tokens",
                                                                    "completion_tokens"))
    inp, out = inp or 0, out or 0
    if inp < cr + cw:
        inp += cr + cw
    if out < rs:
        out += rs
    return {"input_tokens": inp, "output_tokens": out, "cache_read_tokens": cr,
            "cache_write_tokens": cw, "reasoning_tokens": rs}


def bounded_attributes(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """At most :data:`MAX_ATTRIBUTES` entries, long values cut to a marked string.

    >>> bounded_attributes([("a", "x" * 2000)])["a"][-13:]
    '…[2000 chars]'
    """
    out: dict[str, Any] = {}
    for k, v in items:
        if len(out) >= MAX_ATTRIBUTES:
            break
        if isinstance(v, str):
            if len(v) > MAX_ATTRIBUTE_CHARS:
                v = f"{v[:MAX_ATTRIBUTE_CHARS]}…[{len(v)} chars]"
        elif isinstance(v, list | dict):
            text = orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()
            if len(text) > MAX_ATTRIBUTE_CHARS:
                v = f"{text[:MAX_ATTRIBUTE_CHARS]}…[{len(text)} chars]"
        out[k] = v
    return out
