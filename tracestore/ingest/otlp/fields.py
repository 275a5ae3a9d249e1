"""The per-kind fields of one span's node (docs/ingest.md, "Field mapping"; first match wins).

:func:`node_fields` returns the ``NodeIn`` fields of the span, the extra ``human`` nodes its
human annotations stand for, and the tool-call ids an LLM span decided to make.
"""

from __future__ import annotations

from typing import Any

import orjson

from tracestore.ingest.otlp.content import (
    FLAT_RE,
    as_float,
    as_int,
    bounded_attributes,
    documents,
    genai_messages,
    maybe_json,
    openinference_messages,
    openllmetry_messages,
    output_text,
    usage,
)
from tracestore.ingest.otlp.decode import Span
from tracestore.ingest.otlp.nodes import (
    MODEL_KEYS,
    PROVIDER_KEYS,
    classify,
    decision_from_label,
    first,
    str_list,
)
from tracestore.ingest.otlp.producers import CONSUMED_KEYS

__all__ = ["MAPPED_KEYS", "node_fields"]

# Attributes read by some rule below; whatever else a span carries goes to ``attributes``.
MAPPED_KEYS = frozenset({
    *MODEL_KEYS, *PROVIDER_KEYS,
    "tracestore.node.kind", "tracestore.workflow", "tracestore.task.id", "tracestore.team",
    "tracestore.feature", "tracestore.step", "tracestore.retry_of", "tracestore.uses",
    "tracestore.review.decision", "tracestore.review.target", "tracestore.review.minutes",
    "tracestore.outcome.status", "tracestore.outcome.type", "tracestore.outcome.value_usd",
    "langfuse.observation.type", "openinference.span.kind", "gen_ai.operation.name",
    "traceloop.span.kind", "llm.request.type",
    "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
    "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
    "gen_ai.usage.cache_read.input_tokens", "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.cache_creation.input_tokens",
    "llm.token_count.prompt_details.cache_write", "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.reasoning.output_tokens", "llm.token_count.completion_details.reasoning",
    "gen_ai.usage.reasoning_tokens", "gen_ai.usage.thoughts_tokens",
    "langfuse.observation.usage_details", "langfuse.observation.cost_details",
    "llm.cost.total", "llm.cost.prompt", "llm.cost.completion",
    "gen_ai.response.finish_reasons", "llm.finish_reason", "llm.response.finish_reason",
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "input.value", "output.value", "langfuse.observation.input", "langfuse.observation.output",
    "traceloop.entity.input", "traceloop.entity.output", "traceloop.entity.name",
    "gen_ai.retrieval.documents", "gen_ai.retrieval.query.text", "reranker.query",
    "gen_ai.request.top_k", "reranker.top_k", "db.vector.query.top_k",
    "gen_ai.tool.name", "tool.name", "gen_ai.tool.call.id", "tool.id",
    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "error.type",
    "langfuse.observation.level", "gen_ai.prompt.name", "langfuse.observation.prompt.name",
    "gen_ai.workflow.name", "langfuse.trace.name", "traceloop.workflow.name", "user.id",
    "session.id", "gen_ai.conversation.id", "langfuse.environment", "tag.tags",
    "langfuse.trace.tags", "metadata", "langfuse.user.id", "langfuse.session.id",
    *CONSUMED_KEYS,
})
_MAPPED_PREFIXES = ("llm.cost.", "langfuse.trace.metadata.", "traceloop.association.properties.")
_MODEL_KINDS = ("llm", "embedding")
_PRICED_KINDS = ("llm", "embedding", "rerank")
_INPUT_VALUE = ("input.value", "langfuse.observation.input", "traceloop.entity.input")
_OUTPUT_VALUE = ("output.value", "langfuse.observation.output", "traceloop.entity.output")


def _text(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()


def _messages(a: dict[str, Any], flat: dict[str, list[dict[str, Any]]],
              side: str) -> list[dict[str, Any]]:
    genai, oi, ollm = (("gen_ai.input.messages", "llm.input_messages", "gen_ai.prompt")
                       if side == "input" else
                       ("gen_ai.output.messages", "llm.output_messages", "gen_ai.completion"))
    msgs: list[dict[str, Any]] = []
    if a.get(genai) is not None:
        msgs = genai_messages(a[genai])
    elif oi in flat:
        msgs = openinference_messages(flat[oi])
    elif ollm in flat:
        msgs = openllmetry_messages(flat[ollm])
    if side == "input" and a.get("gen_ai.system_instructions") is not None:
        msgs.insert(0, {"role": "system", "content": _text(a["gen_ai.system_instructions"])})
    return msgs


def _model_fields(a: dict[str, Any], flat: dict[str, list[dict[str, Any]]],
                  n: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Tokens, content, finish reason of an llm/embedding span; returns decided tool calls
    (id, tool name).
    Like :func:`node_fields`, sets only the fields that are not ``None``."""
    details = maybe_json(a.get("langfuse.observation.usage_details"))
    n.update(usage(a, details if isinstance(details, dict) else None))
    ins, outs = _messages(a, flat, "input"), _messages(a, flat, "output")
    prompt = orjson.dumps(ins).decode() if ins else _text(first(a, _INPUT_VALUE))
    output = output_text(outs) if outs else _text(first(a, _OUTPUT_VALUE))
    if prompt is None and "llm.prompts" in flat:
        prompt = "\n".join(str(p.get("prompt.text", "")) for p in flat["llm.prompts"])
    if output is None and "llm.choices" in flat:
        output = "\n".join(str(c.get("completion.text", "")) for c in flat["llm.choices"])
    if prompt is not None:
        n["prompt"] = prompt
    if output is not None:
        n["output"] = output
    fr = a.get("gen_ai.response.finish_reasons")
    if isinstance(fr, list):
        fr = fr[0] if fr else None
    fr = fr or first(a, ("llm.finish_reason", "llm.response.finish_reason"))
    calls: list[tuple[str, str | None]] = []
    for m in outs:
        if fr is None and m.get("finish_reason"):
            fr = m["finish_reason"]
        for c in m.get("tool_calls", ()):
            if c.get("id"):
                name = c.get("name")
                calls.append((c["id"], name if isinstance(name, str) else None))
    if not outs:
        calls = _chat_message_calls(maybe_json(a.get("langfuse.observation.output")))
    if fr is not None:
        n["finish_reason"] = str(fr)
    return calls


def _chat_message_calls(out: Any) -> list[tuple[str, str | None]]:
    """Tool calls of an OpenAI chat message (or a list of them) as Langfuse's OpenAI
    integration records a generation's output (``{"role": "assistant", "tool_calls": [{"id",
    "function": {"name", "arguments"}}]}``): (id, tool name)."""
    calls: list[tuple[str, str | None]] = []
    for m in out if isinstance(out, list) else (out,):
        tcs = m.get("tool_calls") if isinstance(m, dict) else None
        for c in tcs if isinstance(tcs, list) else ():
            if isinstance(c, dict) and isinstance(c.get("id"), str) and c["id"]:
                fn = c.get("function")
                name = fn.get("name") if isinstance(fn, dict) else c.get("name")
                calls.append((c["id"], name if isinstance(name, str) else None))
    return calls


_COST_KEYS = frozenset({"llm.cost.total", "llm.cost.prompt", "llm.cost.completion",
                        "langfuse.observation.cost_details", "operation.cost",
                        "gen_ai.usage.cost"})


def _reported_cost(a: dict[str, Any], kind: str) -> float | None:
    if a.keys().isdisjoint(_COST_KEYS):
        return None
    cost = as_float(a.get("llm.cost.total"))
    if cost is None:
        parts = [as_float(a.get(k)) for k in ("llm.cost.prompt", "llm.cost.completion")]
        if any(p is not None for p in parts):
            cost = sum(p for p in parts if p is not None)
    if cost is None:
        details = maybe_json(a.get("langfuse.observation.cost_details"))
        if isinstance(details, dict) and details:
            vals = {k: as_float(v) for k, v in details.items()}
            cost = vals.get("total")
            if cost is None:
                cost = sum(v for v in vals.values() if v is not None)
    if cost is None and kind in _PRICED_KINDS:
        # pydantic-ai/logfire operation.cost, OpenLIT gen_ai.usage.cost. Read on model calls
        # only: pydantic-ai also puts the run's summed cost on its agent span, and the trace
        # roll-up sums reported cost over nodes.
        cost = as_float(first(a, ("operation.cost", "gen_ai.usage.cost")))
    return cost if cost is None or cost >= 0 else None


def _as_docs(raw: Any) -> list[dict[str, Any]] | None:
    """Documents from a retriever's output: a list (of dicts or strings) or
    ``{"documents": [...]}`` (LangChain ``Document``s as Langfuse/OpenLLMetry serialise them)."""
    raw = maybe_json(raw)
    if isinstance(raw, dict):
        raw = raw.get("documents")
    if not isinstance(raw, list):
        return None
    return documents([x if isinstance(x, dict) else {"content": x} for x in raw])


def _documents(sp: Span, a: dict[str, Any], flat: dict[str, list[dict[str, Any]]],
               kind: str) -> list[dict[str, Any]] | None:
    if kind == "rerank" and "reranker.output_documents" in flat:
        return documents(flat["reranker.output_documents"])
    if "retrieval.documents" in flat:
        return documents(flat["retrieval.documents"])
    raw = maybe_json(a.get("gen_ai.retrieval.documents"))
    if isinstance(raw, list):
        return documents(raw)
    # OpenLLMetry vector-db spans: one db.query.result event per document
    evs = [{k.removeprefix("db.query.result."): v for k, v in attrs.items()}
           for name, _, attrs in sp.events if name == "db.query.result"]
    if evs:
        return documents(evs)
    # Langfuse retriever observations: the documents are the observation's output
    return _as_docs(first(a, ("langfuse.observation.output", "output.value",
                              "traceloop.entity.output")))


def _query(a: dict[str, Any]) -> str | None:
    v = maybe_json(first(a, ("gen_ai.retrieval.query.text", "reranker.query", "input.value",
                             "langfuse.observation.input", "traceloop.entity.input")))
    if isinstance(v, dict):  # {"query": ...} inputs (LangChain retrievers via Langfuse)
        v = v.get("query", v.get("input", v))
    return _text(v)


def _annotations(flat: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for prefix, key in (("annotations", "annotation."), ("evaluations", "evaluation.")):
        for it in flat.get(prefix, ()):
            out.append({k.removeprefix(key): v for k, v in it.items()})
    return out


def _error(sp: Span, a: dict[str, Any], n: dict[str, Any]) -> None:
    level = a.get("langfuse.observation.level")
    if sp.status_code == 2 or (isinstance(level, str) and level.upper() == "ERROR"):
        n["status"] = "error"
        exc = next((attrs.get("exception.type") for name, _, attrs in sp.events
                    if name == "exception"), None)
        et = a.get("error.type") or exc or sp.status_message or "error"
        n["error_type"] = str(et)[:200]


def _model_name(v: str | None) -> str | None:
    """Vertex AI resource paths name the model last:
    ``projects/p/locations/l/publishers/google/models/gemini-2.5-flash`` → ``gemini-2.5-flash``
    (also the Gemini API's ``models/gemini-2.5-flash``)."""
    if v is not None and "models/" in v:
        tail = v.rsplit("models/", 1)[1]
        return tail or v
    return v


# A model's provider when the producer sent none (the Langfuse SDK's embedding observations,
# for one): model-name prefixes that only one provider uses, else genai-prices' own match.
_MODEL_PROVIDERS = (("text-embedding-", "openai"), ("gpt-", "openai"), ("o1", "openai"),
                    ("o3", "openai"), ("o4", "openai"), ("claude-", "anthropic"),
                    ("gemini-", "google"), ("text-embedding-004", "google"),
                    ("embed-", "cohere"), ("voyage-", "voyage"), ("mistral-", "mistral"))


def _infer_provider(model: str) -> str | None:
    m = model.lower()
    found = [p for prefix, p in _MODEL_PROVIDERS if m.startswith(prefix)]
    return found[-1] if found else None  # the longer, later prefix wins


def _base_fields(sp: Span, a: dict[str, Any], kind: str, source: str) -> dict[str, Any]:
    """Identity, timing, step, provider/model, reported cost, relations."""
    n: dict[str, Any] = {
        "node_id": sp.span_id, "kind": kind, "source_kind": source, "name": sp.name[:1000],
    }
    if sp.parent_id is not None:
        n["parent_id"] = sp.parent_id
    if sp.start is not None:
        n["start"] = sp.start
    if sp.end is not None:
        n["end"] = sp.end
    v: Any = _text(first(a, ("tracestore.step", "gen_ai.prompt.name",
                             "langfuse.observation.prompt.name")))
    if v is not None:
        n["step"] = v
    model = _model_name(_text(first(a, MODEL_KEYS)))
    if model is not None:
        n["model"] = model
    v = _text(first(a, PROVIDER_KEYS))
    if v is None and model is not None and kind in _PRICED_KINDS:
        v = _infer_provider(model)
    if v is not None:
        n["provider"] = v
    v = _reported_cost(a, kind)
    if v is not None:
        n["reported_cost_usd"] = v
    if "tracestore.retry_of" in a:
        v = _text(a["tracestore.retry_of"])
        if v is not None:
            n["retry_of"] = v
    if "tracestore.uses" in a:
        n["uses"] = str_list(a["tracestore.uses"])
    return n


def _retrieval_fields(sp: Span, a: dict[str, Any], flat: dict[str, list[dict[str, Any]]],
                      kind: str, n: dict[str, Any]) -> None:
    v: Any = _documents(sp, a, flat, kind)
    if v is not None:
        n["documents"] = v
    v = as_int(first(a, ("gen_ai.request.top_k", "reranker.top_k", "db.vector.query.top_k")))
    if v is not None:
        n["top_k"] = v
    v = _query(a)
    if v is not None:
        n["query"] = v


def _tool_fields(sp: Span, a: dict[str, Any], n: dict[str, Any]) -> None:
    n["tool_name"] = _text(first(a, ("gen_ai.tool.name", "tool.name",
                                     "traceloop.entity.name"))) or sp.name
    v: Any = _text(first(a, ("gen_ai.tool.call.id", "tool.id")))
    if v is not None:
        n["tool_call_id"] = v
    v = maybe_json(first(a, ("gen_ai.tool.call.arguments", "input.value",
                             "langfuse.observation.input", "traceloop.entity.input")))
    if v is not None:
        n["args"] = v
    v = maybe_json(first(a, ("gen_ai.tool.call.result", "output.value",
                             "langfuse.observation.output", "traceloop.entity.output")))
    if v is not None:
        n["result"] = v


def _io_fields(a: dict[str, Any], flat: dict[str, list[dict[str, Any]]],
               n: dict[str, Any]) -> None:
    """Input and output of an agent/chain/workflow step, kept as prompt/output (the same
    content caps and hashes as an LLM call's): its messages, else the framework's value."""
    ins, outs = _messages(a, flat, "input"), _messages(a, flat, "output")
    prompt = orjson.dumps(ins).decode() if ins else _text(first(a, _INPUT_VALUE))
    output = output_text(outs) if outs else _text(first(a, _OUTPUT_VALUE))
    if prompt is not None:
        n["prompt"] = prompt
    if output is not None:
        n["output"] = output


def _human_fields(sp: Span, a: dict[str, Any], kind: str, human: list[dict[str, Any]],
                  n: dict[str, Any]) -> list[dict[str, Any]]:
    """A human node's review; else the extra human nodes a person's annotations on this
    span stand for."""
    extra: list[dict[str, Any]] = []
    if kind == "human":
        label = human[0].get("label") if human else None
        n["decision"] = decision_from_label(a.get("tracestore.review.decision") or label)
        n["review_target"] = _text(a.get("tracestore.review.target")) or next(
            (ls for lt, ls, _ in sp.links if lt == sp.trace_id), None)
        n["review_minutes"] = as_float(a.get("tracestore.review.minutes"))
        return extra
    for i, h in enumerate(human):
        extra.append({
            "node_id": f"{sp.span_id}.annotation.{i}", "parent_id": sp.span_id,
            "kind": "human", "source_kind": "openinference:annotation",
            "name": str(h.get("name") or "annotation")[:1000], "start": sp.end or sp.start,
            "decision": decision_from_label(h.get("label")), "review_target": sp.span_id,
            "attributes": {k: v for k, v in h.items() if k != "name"},
        })
    return extra


def _rest(sp: Span, a: dict[str, Any], anns: list[dict[str, Any]],
          human: list[dict[str, Any]], n: dict[str, Any]) -> None:
    """Whatever no rule read, bounded, into ``attributes``."""
    rest = [(k, v) for k, v in a.items() if k not in MAPPED_KEYS
            and not k.startswith(_MAPPED_PREFIXES) and FLAT_RE.match(k) is None]
    if anns:
        others = [x for x in anns if x not in human]
        if others:
            rest.append(("annotations", others))
    if sp.links:
        cross = [{"trace_id": lt, "span_id": ls} for lt, ls, _ in sp.links if lt != sp.trace_id]
        if cross:
            rest.append(("otel.links", cross))
    if rest:
        attrs = bounded_attributes(rest)
        if attrs:
            n["attributes"] = attrs


def node_fields(sp: Span, a: dict[str, Any], flat: dict[str, list[dict[str, Any]]]
                ) -> tuple[dict[str, Any], list[dict[str, Any]], list[tuple[str, str | None]]]:
    """(NodeIn fields, extra human nodes, decided tool calls as (id, tool name)) of one span.

    The fields dict holds only the fields that are not ``None`` (all of them default to
    ``None``): a key fewer is less for pydantic to validate, ~0.7 µs a node (bench/RESULTS.md).
    """
    anns = _annotations(flat) if flat else []
    human = [x for x in anns if str(x.get("annotator_kind", "")).upper() == "HUMAN"]
    kind, source = classify(a, human=bool(human))
    n = _base_fields(sp, a, kind, source)
    _error(sp, a, n)
    calls: list[tuple[str, str | None]] = []
    if kind in _MODEL_KINDS:
        calls = _model_fields(a, flat, n)
    elif kind in ("retrieval", "rerank"):
        _retrieval_fields(sp, a, flat, kind, n)
    elif kind == "tool":
        _tool_fields(sp, a, n)
    elif kind == "outcome":
        n["outcome_status"] = a.get("tracestore.outcome.status")
        n["outcome_type"] = _text(a.get("tracestore.outcome.type"))
        n["outcome_value_usd"] = as_float(a.get("tracestore.outcome.value_usd"))
    elif kind != "human":
        _io_fields(a, flat, n)
    extra = _human_fields(sp, a, kind, human, n)
    _rest(sp, a, anns, human, n)
    return n, extra, calls
