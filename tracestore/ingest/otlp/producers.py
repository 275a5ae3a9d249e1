"""Producer dialects → the canonical attributes the field mapping reads (docs/ingest.md).

Some producers carry what the OTel GenAI conventions name in attributes of their own: the
Vercel AI SDK (``ai.*``), Firebase Genkit (``genkit:*``), Google ADK
(``gcp.vertex.agent.llm_response``), LiveKit Agents (the kind in the span *name*, ``lk.*``),
OpenLLMetry retrievers and vector-DB spans, and every producer that sends message content as
span events. :func:`canonical_attributes` returns the span's attributes with the canonical
keys filled in from those, so that classification (:mod:`.nodes`) and field mapping
(:mod:`.fields`) stay one path. A canonical key the producer set itself always wins: only
absent keys are filled. The producer keys read here stay in ``NodeIn.attributes`` except
those in :data:`CONSUMED_KEYS` (content, which has its own capped fields).

>>> a = canonical_attributes({"ai.operationId": "ai.toolCall", "ai.toolCall.name": "search",
...                           "ai.toolCall.id": "c1"}, "ai.toolCall", ())
>>> a["gen_ai.operation.name"], a["gen_ai.tool.name"], a["gen_ai.tool.call.id"]
('execute_tool', 'search', 'c1')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from tracestore.ingest.otlp.content import as_int, maybe_json

__all__ = ["CONSUMED_KEYS", "canonical_attributes", "event_messages"]

# Vercel AI SDK ai.operationId → gen_ai.operation.name (vercel/ai content/docs/03-ai-sdk-core/
# 60-telemetry.mdx; rerank: packages/ai/src/rerank/rerank.ts). The outer calls wrap the
# provider calls (doGenerate/doStream/doEmbed/doRerank) that carry the usage: they are steps
# (chain), never a second llm node counting the same tokens.
_VERCEL_OPS = {
    "ai.generateText.doGenerate": "chat", "ai.streamText.doStream": "chat",
    "ai.generateObject.doGenerate": "chat", "ai.streamObject.doStream": "chat",
    "ai.embed.doEmbed": "embeddings", "ai.embedMany.doEmbed": "embeddings",
    "ai.rerank.doRerank": "rerank", "ai.toolCall": "execute_tool",
    "ai.generateText": "invoke_workflow", "ai.streamText": "invoke_workflow",
    "ai.generateObject": "invoke_workflow", "ai.streamObject": "invoke_workflow",
    "ai.embed": "invoke_workflow", "ai.embedMany": "invoke_workflow",
    "ai.rerank": "invoke_workflow",
}
# Genkit genkit:metadata:subtype (firebase/genkit js/core/src/action.ts actionType) → operation.
_GENKIT_OPS = {"model": "chat", "embedder": "embeddings", "retriever": "retrieval",
               "reranker": "rerank", "tool": "execute_tool", "tool.v2": "execute_tool",
               "flow": "invoke_workflow", "agent": "invoke_agent"}
# LiveKit Agents span names (livekit-agents llm/llm.py, voice/generation.py); releases before
# 2026-02 (livekit/agents#4759) set no gen_ai.operation.name.
_LIVEKIT_OPS = {"llm_request": "chat", "function_tool": "execute_tool"}
# OpenLLMetry vector-DB instrumentations (db.system values) whose query ops are retrievals.
_VECTOR_DBS = frozenset({"chroma", "pinecone", "qdrant", "weaviate", "milvus", "lancedb",
                         "marqo", "pgvector", "elasticsearch", "opensearch"})
_VECTOR_QUERIES = frozenset({"query", "_query", "search", "similarity_search", "get_relevant"})

_GENAI_EVENTS = frozenset({"gen_ai.system.message", "gen_ai.user.message",
                           "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.choice",
                           "gen_ai.client.inference.operation.details",
                           "gen_ai.content.prompt", "gen_ai.content.completion"})
_TRIGGERS = frozenset({"ai.operationId", "operation.name", "ai.response.providerMetadata",
                       "ai.usage.cachedInputTokens", "genkit:type",
                       "gcp.vertex.agent.llm_response",
                       "gcp.vertex.agent.llm_request", "gcp.vertex.agent.tool_call_args",
                       "lk.function_tool.name", "lk.llm_metrics", "db.system",
                       "traceloop.entity.output", "gen_ai.usage.details.reasoning_tokens",
                       "tool_arguments",
                       "gen_ai.usage.details.cache_read_tokens",
                       "gen_ai.usage.details.cache_write_tokens"})
_LANGFUSE_META = ("langfuse.trace.metadata.", "langfuse.observation.metadata.")

# Producer keys whose content is moved into capped content fields (not kept twice).
CONSUMED_KEYS = frozenset({
    "ai.prompt", "ai.prompt.messages", "ai.response.text", "ai.response.toolCalls",
    "ai.response.object", "ai.toolCall.args", "ai.toolCall.input", "ai.toolCall.result",
    "ai.toolCall.output", "ai.documents", "ai.ranking", "ai.values", "ai.embeddings",
    "ai.result.text", "ai.result.toolCalls", "ai.response.providerMetadata",
    "genkit:input", "genkit:output", "gcp.vertex.agent.llm_request",
    "gcp.vertex.agent.llm_response", "gcp.vertex.agent.tool_call_args",
    "gcp.vertex.agent.tool_response", "lk.pii.function_tool.arguments",
    "lk.pii.function_tool.output", "lk.llm_metrics", "gen_ai.usage.details.reasoning_tokens",
    "gen_ai.usage.details.cache_read_tokens", "gen_ai.usage.details.cache_write_tokens",
    "operation.cost", "gen_ai.usage.cost", "tool_arguments", "tool_response",
})


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "" and out.get(key) in (None, ""):
        out[key] = value


def _dig(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()


def _unquote(v: Any) -> Any:
    """Langfuse SDK v5 JSON-encodes every metadata value: ``'"support"'`` → ``'support'``."""
    if isinstance(v, str) and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
    return v


def canonical_attributes(a: dict[str, Any], name: str,
                         events: Sequence[tuple[str, float | None, dict[str, Any]]],
                         keys: str | None = None) -> dict[str, Any]:
    """``a`` with the canonical keys a producer dialect implies filled in (a copy, only
    when something applies; most spans come back as the same dict). ``keys``: the keys of
    ``a`` joined by newlines, if the caller has them already."""
    if keys is None:
        keys = "\n".join(a)
    lf = _LANGFUSE_META[0] in keys or _LANGFUSE_META[1] in keys
    evs = [e for e in events if e[0] in _GENAI_EVENTS] if events else []
    live = name in _LIVEKIT_OPS and "lk." in keys
    if a.keys().isdisjoint(_TRIGGERS) and not (lf or evs or live):
        return a
    out = dict(a)
    if lf:
        for k, v in a.items():
            if k.startswith(_LANGFUSE_META):
                out[k] = _unquote(v)
        _put(out, "gen_ai.response.finish_reasons",
             out.get("langfuse.observation.metadata.finish_reason"))
    if ("ai.operationId" in a or str(a.get("operation.name", "")).startswith("ai.")
            or "ai.response.providerMetadata" in a or "ai.usage.cachedInputTokens" in a):
        _vercel(out)
    if "genkit:type" in a:
        _genkit(out)
    if "gcp.vertex.agent.llm_response" in a or "gcp.vertex.agent.tool_call_args" in a:
        _adk(out)
    if live or "lk.function_tool.name" in a or "lk.llm_metrics" in a:
        _livekit(out, name)
    if "db.system" in a or "traceloop.entity.output" in a:
        _retrievers(out)
    _details(out)
    if evs:
        ins, outs = event_messages((n, attrs) for n, _, attrs in evs)
        if ins:
            _put(out, "gen_ai.input.messages", ins)
        if outs:
            _put(out, "gen_ai.output.messages", outs)
    return out


def _details(out: dict[str, Any]) -> None:
    # pydantic-ai tool spans before gen_ai.tool.call.arguments/result existed
    if "gen_ai.tool.name" in out:
        _put(out, "gen_ai.tool.call.arguments", out.get("tool_arguments"))
        _put(out, "gen_ai.tool.call.result", out.get("tool_response"))
    # pydantic-ai RequestUsage.opentelemetry_attributes: gen_ai.usage.details.<key>
    # (pydantic/pydantic-ai pydantic_ai_slim/pydantic_ai/usage.py)
    _put(out, "gen_ai.usage.reasoning.output_tokens",
         out.get("gen_ai.usage.details.reasoning_tokens"))
    _put(out, "gen_ai.usage.cache_read.input_tokens",
         out.get("gen_ai.usage.details.cache_read_tokens"))
    _put(out, "gen_ai.usage.cache_creation.input_tokens",
         out.get("gen_ai.usage.details.cache_write_tokens"))


def _vercel_usage(out: dict[str, Any]) -> None:
    """AI SDK usage: ``gen_ai.usage.*`` on provider calls (all versions), else ``ai.usage.*``;
    cache/reasoning from ``ai.usage.inputTokenDetails.*`` (v6), else
    ``ai.usage.cachedInputTokens`` / ``ai.response.providerMetadata`` (<= v5). Whether the
    input count includes the cache is decided by the provider's own numbers (docs/ingest.md,
    "Vercel AI SDK")."""
    _put(out, "gen_ai.usage.input_tokens", as_int(
        out.get("ai.usage.inputTokens", out.get("ai.usage.promptTokens",
                                                out.get("ai.usage.tokens")))))
    _put(out, "gen_ai.usage.output_tokens", as_int(
        out.get("ai.usage.outputTokens", out.get("ai.usage.completionTokens"))))
    v6 = "ai.usage.inputTokenDetails.cacheReadTokens" in out or \
        "ai.usage.inputTokenDetails.cacheWriteTokens" in out
    meta = maybe_json(out.get("ai.response.providerMetadata"))
    anth = _dig(meta, "anthropic")
    bed = _dig(meta, "bedrock", "usage")
    read = as_int(out.get("ai.usage.inputTokenDetails.cacheReadTokens")) if v6 else None
    write = as_int(out.get("ai.usage.inputTokenDetails.cacheWriteTokens")) if v6 else None
    for v in (out.get("ai.usage.cachedInputTokens"), _dig(anth, "cacheReadInputTokens"),
              _dig(anth, "usage", "cache_read_input_tokens"), _dig(bed, "cacheReadInputTokens"),
              _dig(meta, "openai", "cachedPromptTokens")):
        read = read if read is not None else as_int(v)
    for v in (_dig(anth, "cacheCreationInputTokens"),
              _dig(anth, "usage", "cache_creation_input_tokens"),
              _dig(bed, "cacheWriteInputTokens")):
        write = write if write is not None else as_int(v)
    reasoning = None
    for v in (out.get("ai.usage.outputTokenDetails.reasoningTokens"),
              out.get("ai.usage.reasoningTokens"), _dig(meta, "openai", "reasoningTokens")):
        reasoning = reasoning if reasoning is not None else as_int(v)
    inp = as_int(out.get("gen_ai.usage.input_tokens"))
    if not v6 and inp is not None and (read or write):
        cache = (read or 0) + (write or 0)
        raw = as_int(_dig(anth, "usage", "input_tokens"))  # Anthropic's own, cache excluded
        total = as_int(_dig(bed, "totalTokens"))
        total = total if total is not None else as_int(out.get("ai.usage.totalTokens"))
        outp = as_int(out.get("gen_ai.usage.output_tokens")) or 0
        if raw is not None:
            out["gen_ai.usage.input_tokens"] = raw + cache
        elif total is not None and total == inp + outp + cache:  # the total counts the cache
            out["gen_ai.usage.input_tokens"] = inp + cache     # beside the input: exclusive
    _put(out, "gen_ai.usage.cache_read.input_tokens", read)
    _put(out, "gen_ai.usage.cache_creation.input_tokens", write)
    _put(out, "gen_ai.usage.reasoning.output_tokens", reasoning)


def _vercel(out: dict[str, Any]) -> None:
    # ai.operationId; older releases only "operation.name": "<operationId> <functionId>"
    op_id = out.get("ai.operationId") or str(out.get("operation.name", "")).split(" ", 1)[0]
    op = _VERCEL_OPS.get(str(op_id))
    if op is None:  # no operation id, but the AI SDK's usage attributes
        _vercel_usage(out)
        return
    _put(out, "gen_ai.operation.name", op)
    # "openai.chat", "anthropic.messages" → "openai", "anthropic"
    prov = out.get("ai.model.provider") or out.get("gen_ai.system")
    if isinstance(prov, str) and prov:
        out["gen_ai.system"] = prov.split(".", 1)[0]
    if op != "invoke_workflow":
        _put(out, "gen_ai.response.model", out.get("ai.response.model"))
        _put(out, "gen_ai.request.model", out.get("ai.model.id"))
        _vercel_usage(out)
    _put(out, "gen_ai.response.finish_reasons",
          out.get("ai.response.finishReason") or out.get("ai.finishReason"))
    if op == "execute_tool":
        _put(out, "gen_ai.tool.name", out.get("ai.toolCall.name"))
        _put(out, "gen_ai.tool.call.id", out.get("ai.toolCall.id"))
        _put(out, "gen_ai.tool.call.arguments",
             out.get("ai.toolCall.args", out.get("ai.toolCall.input")))
        # JSON.stringify(result): a string result arrives quoted
        _put(out, "gen_ai.tool.call.result",
             _unquote(out.get("ai.toolCall.result", out.get("ai.toolCall.output"))))
        return
    if op == "rerank":
        _put(out, "gen_ai.retrieval.documents", _vercel_ranking(out))
        return
    text = out.get("ai.response.text", out.get("ai.result.text", out.get("ai.response.object")))
    calls = maybe_json(out.get("ai.response.toolCalls", out.get("ai.result.toolCalls")))
    if op == "chat" and (text is not None or isinstance(calls, list)):
        parts: list[dict[str, Any]] = []
        if text is not None:
            parts.append({"type": "text", "content": _text(text)})
        for c in calls if isinstance(calls, list) else ():
            if isinstance(c, dict):
                parts.append({"type": "tool_call", "id": c.get("toolCallId"),
                              "name": c.get("toolName"),
                              "arguments": c.get("args", c.get("input"))})
        _put(out, "gen_ai.output.messages", [{"role": "assistant", "parts": parts}])
    else:
        _put(out, "output.value", _text(text))
    _put(out, "input.value", _text(out.get("ai.prompt.messages", out.get("ai.prompt"))))


def _vercel_ranking(out: dict[str, Any]) -> list[dict[str, Any]] | None:
    """``ai.ranking`` ({index, relevanceScore} JSON strings) over ``ai.documents``."""
    ranking = out.get("ai.ranking")
    if not isinstance(ranking, list | tuple):
        return None
    docs = out.get("ai.documents")
    docs = list(docs) if isinstance(docs, list | tuple) else []
    found = []
    for r in ranking:
        r = maybe_json(r)
        if not isinstance(r, dict):
            continue
        i = as_int(r.get("index"))
        content = _unquote(maybe_json(docs[i])) if i is not None and 0 <= i < len(docs) \
            else None
        found.append({"id": str(i), "score": r.get("relevanceScore"),
                      "content": _text(content)})
    return found


def _genkit(out: dict[str, Any]) -> None:
    """Genkit actions: ``genkit:metadata:subtype``, ``genkit:name`` (``plugin/model`` for a
    model), ``genkit:input``/``genkit:output`` JSON (GenerateRequest / GenerateResponse with
    ``usage{inputTokens, outputTokens, thoughtsTokens, cachedContentTokens}``)."""
    op = _GENKIT_OPS.get(str(out.get("genkit:metadata:subtype") or ""))
    if op is None:
        return
    _put(out, "gen_ai.operation.name", op)
    gname = str(out.get("genkit:name") or "")
    inp, res = out.get("genkit:input"), out.get("genkit:output")
    if op in ("chat", "embeddings", "rerank"):
        plugin, _, model = gname.rpartition("/")
        _put(out, "gen_ai.request.model", model)
        _put(out, "gen_ai.system", plugin or None)
        resp = maybe_json(res)
        u = _dig(resp, "usage")
        if isinstance(u, dict):
            _put(out, "gen_ai.usage.input_tokens", as_int(u.get("inputTokens")))
            _put(out, "gen_ai.usage.output_tokens", as_int(u.get("outputTokens")))
            _put(out, "gen_ai.usage.reasoning.output_tokens", as_int(u.get("thoughtsTokens")))
            _put(out, "gen_ai.usage.cache_read.input_tokens",
                 as_int(u.get("cachedContentTokens")))
        _put(out, "gen_ai.response.finish_reasons", _dig(resp, "finishReason"))
        content = _dig(resp, "message", "content")
        if isinstance(content, list):
            texts = [_text(p["text"]) or "" for p in content
                     if isinstance(p, dict) and "text" in p]
            _put(out, "output.value", "\n".join(texts) if texts else None)
    elif op == "execute_tool":
        _put(out, "gen_ai.tool.name", gname or None)
        _put(out, "gen_ai.tool.call.arguments", inp)
        _put(out, "gen_ai.tool.call.result", res)
        return
    _put(out, "input.value", _text(inp))
    _put(out, "output.value", _text(res))


def _adk(out: dict[str, Any]) -> None:
    """Google ADK ``call_llm`` spans: cached and thinking tokens only in the LlmResponse JSON
    (``usage_metadata.cached_content_token_count``; google/adk-python telemetry.py); tool
    spans' ``gcp.vertex.agent.tool_call_args``/``tool_response``."""
    resp = maybe_json(out.get("gcp.vertex.agent.llm_response"))
    _put(out, "gen_ai.response.model", _dig(resp, "model_version") or _dig(resp, "modelVersion"))
    um = _dig(resp, "usage_metadata") or _dig(resp, "usageMetadata")
    if isinstance(um, dict):
        _put(out, "gen_ai.usage.cache_read.input_tokens", as_int(
            um.get("cached_content_token_count", um.get("cachedContentTokenCount"))))
        _put(out, "gen_ai.usage.reasoning.output_tokens", as_int(
            um.get("thoughts_token_count", um.get("thoughtsTokenCount"))))
        _put(out, "gen_ai.usage.input_tokens", as_int(
            um.get("prompt_token_count", um.get("promptTokenCount"))))
        _put(out, "gen_ai.usage.output_tokens", as_int(
            um.get("candidates_token_count", um.get("candidatesTokenCount"))))
    parts = _dig(resp, "content", "parts")
    if isinstance(parts, list):
        texts = [str(p["text"]) for p in parts if isinstance(p, dict) and p.get("text")]
        _put(out, "output.value", "\n".join(texts) if texts else None)
    req = out.get("gcp.vertex.agent.llm_request")
    if req not in (None, "", "{}"):
        _put(out, "input.value", _text(req))
    _put(out, "gen_ai.tool.call.arguments", out.get("gcp.vertex.agent.tool_call_args"))
    _put(out, "gen_ai.tool.call.result", out.get("gcp.vertex.agent.tool_response"))


def _livekit(out: dict[str, Any], name: str) -> None:
    if name in _LIVEKIT_OPS:
        _put(out, "gen_ai.operation.name", _LIVEKIT_OPS[name])
    _put(out, "gen_ai.tool.name", out.get("lk.function_tool.name"))
    _put(out, "gen_ai.tool.call.id", out.get("lk.function_tool.id"))
    _put(out, "gen_ai.tool.call.arguments", out.get("lk.pii.function_tool.arguments"))
    _put(out, "gen_ai.tool.call.result", out.get("lk.pii.function_tool.output"))
    if out.get("lk.function_tool.is_error") is True:
        _put(out, "error.type", "tool_error")
    m = maybe_json(out.get("lk.llm_metrics"))  # LLMMetrics JSON (livekit metrics/base.py)
    if isinstance(m, dict):
        _put(out, "gen_ai.usage.input_tokens", as_int(m.get("prompt_tokens")))
        _put(out, "gen_ai.usage.output_tokens", as_int(m.get("completion_tokens")))
        _put(out, "gen_ai.usage.cache_read.input_tokens", as_int(m.get("prompt_cached_tokens")))
        meta = m.get("metadata")
        if isinstance(meta, dict):
            _put(out, "gen_ai.request.model", meta.get("model_name"))
            _put(out, "gen_ai.provider.name", meta.get("model_provider"))


def _retrievers(out: dict[str, Any]) -> None:
    """OpenLLMetry: vector-DB query spans (``db.system`` + ``db.operation``; documents in
    ``db.query.result`` events) and LangChain retriever tasks (``traceloop.entity.output``
    ``{"documents": [{page_content, metadata}]}``, input ``{"query": …}``)."""
    system, op = out.get("db.system"), out.get("db.operation", out.get("db.operation.name"))
    if isinstance(system, str) and isinstance(op, str) and system in _VECTOR_DBS \
            and op in _VECTOR_QUERIES:
        _put(out, "gen_ai.operation.name", "retrieval")
    res = maybe_json(out.get("traceloop.entity.output"))
    docs = res.get("documents") if isinstance(res, dict) else None
    if out.get("traceloop.span.kind") == "task" and isinstance(docs, list):
        _put(out, "gen_ai.operation.name", "retrieval")
        _put(out, "gen_ai.retrieval.documents", docs)
        query = maybe_json(out.get("traceloop.entity.input"))
        _put(out, "gen_ai.retrieval.query.text",
             query.get("query") if isinstance(query, dict) else None)
    elif out.get("gen_ai.operation.name") == "vector_db_retrieve" and isinstance(docs, list):
        _put(out, "gen_ai.retrieval.documents", docs)
        query = maybe_json(out.get("traceloop.entity.input"))
        _put(out, "gen_ai.retrieval.query.text",
             query.get("query") if isinstance(query, dict) else None)


def _event_payload(attrs: dict[str, Any]) -> dict[str, Any]:
    """An event's fields: a log record's body (decoded to ``attrs["body"]``) or the event's
    attributes; older OTel instrumentations put the body in ``gen_ai.event.content``."""
    body = attrs.get("body")
    if isinstance(body, dict):
        return body
    inner = maybe_json(attrs.get("gen_ai.event.content"))
    return inner if isinstance(inner, dict) else attrs


def _calls(raw: Any) -> list[dict[str, Any]]:
    parts = []
    for c in raw if isinstance(raw, list | tuple) else ():
        c = maybe_json(c)
        if not isinstance(c, dict):
            continue
        fn: dict[str, Any] = c["function"] if isinstance(c.get("function"), dict) else c
        parts.append({"type": "tool_call", "id": c.get("id"), "name": fn.get("name"),
                      "arguments": fn.get("arguments")})
    return parts


def _message(role: str, body: dict[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    content = body.get("content")
    if role == "tool":
        parts.append({"type": "tool_call_response", "id": body.get("id"),
                      "response": content})
    elif content is not None:
        parts.append({"type": "text", "content": _text(content)})
    parts.extend(_calls(body.get("tool_calls")))
    return {"role": role, "parts": parts}


def event_messages(events: Iterable[tuple[str, dict[str, Any]]]
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(input, output) messages in the OTel GenAI ``parts`` form from GenAI events, span
    events or log records: ``gen_ai.{system,user,assistant,tool}.message`` and
    ``gen_ai.choice`` (semconv <= 1.36 events), ``gen_ai.client.inference.operation.details``
    (its ``gen_ai.input.messages``/``gen_ai.output.messages``), Semantic Kernel's
    ``gen_ai.content.prompt``/``gen_ai.content.completion``."""
    ins: list[dict[str, Any]] = []
    outs: list[dict[str, Any]] = []
    for name, attrs in events:
        body = _event_payload(attrs)
        if name == "gen_ai.choice":
            inner = maybe_json(body.get("message"))  # Semantic Kernel: a JSON string
            msg: dict[str, Any] = inner if isinstance(inner, dict) else body
            m = _message("assistant", msg)
            if body.get("finish_reason") is not None:
                m["finish_reason"] = body["finish_reason"]
            outs.append(m)
        elif name == "gen_ai.client.inference.operation.details":
            for key, into in (("gen_ai.input.messages", ins), ("gen_ai.output.messages", outs)):
                v = maybe_json(body.get(key))
                if isinstance(v, list):
                    into.extend(x for x in v if isinstance(x, dict))
            sys = body.get("gen_ai.system_instructions")
            if sys is not None:
                ins.insert(0, {"role": "system", "parts": [{"type": "text",
                                                            "content": _text(sys)}]})
        elif name in ("gen_ai.content.prompt", "gen_ai.content.completion"):
            key = "gen_ai.prompt" if name == "gen_ai.content.prompt" else "gen_ai.completion"
            v = maybe_json(body.get(key))
            into = ins if key == "gen_ai.prompt" else outs
            role = "user" if key == "gen_ai.prompt" else "assistant"
            if isinstance(v, list):
                into.extend(_message(str(m.get("role") or role), m)
                            for m in v if isinstance(m, dict))
            elif v is not None:
                into.append(_message(role, {"content": v}))
        else:  # gen_ai.<role>.message
            role = str(body.get("role") or name.split(".")[1])
            ins.append(_message(role, body))
    return ins, outs
