"""One decoded span → the fields of one :class:`~tracestore.schemas.NodeIn`.

Classification, first match wins (docs/ingest.md, "Span classification"):
``tracestore.node.kind`` → ``tracestore.review.decision`` ⇒ human → ``langfuse.observation.type``
→ ``openinference.span.kind`` → ``gen_ai.operation.name`` → ``traceloop.span.kind`` /
``llm.request.type`` → ``gen_ai.tool.*`` present ⇒ tool → a model attribute ⇒ llm → ``chain``.
An evaluator span carrying a human annotation (OpenInference ``annotator_kind=HUMAN``) is a
``human`` node; a ``chain`` span carrying ``tracestore.outcome.status`` is an ``outcome`` node.

>>> classify({"openinference.span.kind": "RERANKER"}, human=False)
('rerank', 'openinference:RERANKER')
>>> classify({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}, human=False)
('tool', 'gen_ai:execute_tool')
>>> classify({"gen_ai.request.model": "gpt-4o"}, human=False)
('llm', 'heuristic:model')
"""

from __future__ import annotations

from typing import Any

from tracestore.ingest.otlp.content import maybe_json
from tracestore.schemas import NODE_KINDS

__all__ = ["MODEL_KEYS", "PROVIDER_KEYS", "classify", "decision_from_label"]

_LANGFUSE = {"generation": "llm", "embedding": "embedding", "agent": "agent", "tool": "tool",
             "chain": "chain", "retriever": "retrieval", "guardrail": "guardrail",
             "span": "chain", "event": "chain", "evaluator": "evaluator"}
_OPENINFERENCE = {"LLM": "llm", "EMBEDDING": "embedding", "CHAIN": "chain",
                  "RETRIEVER": "retrieval", "RERANKER": "rerank", "TOOL": "tool",
                  "AGENT": "agent", "GUARDRAIL": "guardrail", "EVALUATOR": "evaluator",
                  "PROMPT": "chain"}
# gen_ai.operation.name well-known values plus the legacy ones Langfuse's mapper accepts
# (docs/ingest.md, "Span classification"); unknown operations fall through to the heuristics.
_GENAI_OPS = {"chat": "llm", "text_completion": "llm", "generate_content": "llm",
              "completion": "llm", "generate": "llm", "embeddings": "embedding",
              "retrieval": "retrieval", "search_memory": "retrieval", "execute_tool": "tool",
              "invoke_agent": "agent", "create_agent": "agent", "invoke_workflow": "chain",
              "apply_guardrail": "guardrail", "rerank": "rerank",
              # OpenLLMetry's GenAICustomOperationName (semconv_ai/__init__.py)
              "vector_db_retrieve": "retrieval", "execute_task": "chain",
              "llm_request": "llm"}
_TRACELOOP = {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"}
_LLM_REQUEST = {"chat": "llm", "completion": "llm", "embedding": "embedding", "rerank": "rerank"}

MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model", "llm.response.model_name",
              "llm.model_name", "llm.request.model_name", "embedding.model_name",
              "reranker.model_name", "langfuse.observation.model.name", "model")
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")

_DECISIONS = {
    "approve": "approve", "approved": "approve", "accept": "approve", "accepted": "approve",
    "correct": "approve", "pass": "approve", "good": "approve", "thumbs_up": "approve",
    "reject": "reject", "rejected": "reject", "incorrect": "reject", "fail": "reject",
    "bad": "reject", "thumbs_down": "reject", "wrong": "reject",
    "edit": "edit", "edited": "edit", "corrected": "edit",
    "override": "override", "overridden": "override", "replaced": "override",
}


def decision_from_label(label: Any) -> str | None:
    """A review decision from a producer's label (``approve|edit|reject|override``).

    >>> decision_from_label("Thumbs_Up"), decision_from_label("rejected"), decision_from_label(3)
    ('approve', 'reject', None)
    """
    if not isinstance(label, str):
        return None
    return _DECISIONS.get(label.strip().lower().replace(" ", "_").replace("-", "_"))


def _evaluator(kind: str, human: bool) -> str:
    # An evaluator judged by a person is a human review; an LLM/code judge stays a step.
    return ("human" if human else "chain") if kind == "evaluator" else kind


# The keys classify() reads before gen_ai.operation.name (first match wins).
_FIRST_KEYS = ("tracestore.node.kind", "tracestore.review.decision", "langfuse.observation.type",
               "openinference.span.kind")


def classify(a: dict[str, Any], *, human: bool) -> tuple[str, str]:
    """(kind, source_kind) of a span with attributes ``a``; ``human`` = carries a human
    annotation."""
    if not a.keys().isdisjoint(_FIRST_KEYS):  # one C-level test for the rarer producers
        own = a.get("tracestore.node.kind")
        if isinstance(own, str) and own in NODE_KINDS:
            return own, f"tracestore:{own}"
        if a.get("tracestore.review.decision") is not None:
            return "human", "tracestore:review"
        v = a.get("langfuse.observation.type")
        if isinstance(v, str) and v.lower() in _LANGFUSE:
            return _evaluator(_LANGFUSE[v.lower()], human), f"langfuse:{v}"
        v = a.get("openinference.span.kind")
        if isinstance(v, str) and v.upper() in _OPENINFERENCE:
            return _evaluator(_OPENINFERENCE[v.upper()], human), f"openinference:{v.upper()}"
    v = a.get("gen_ai.operation.name")
    if isinstance(v, str):
        if v in _GENAI_OPS:
            return _GENAI_OPS[v], f"gen_ai:{v}"
        if v == "plan":  # plan is an llm call when it names a model (docs/ingest.md)
            return ("llm" if first(a, MODEL_KEYS) is not None else "chain"), "gen_ai:plan"
    v = a.get("traceloop.span.kind")
    if isinstance(v, str) and v in _TRACELOOP:
        return _TRACELOOP[v], f"traceloop:{v}"
    v = a.get("llm.request.type")
    if isinstance(v, str) and v in _LLM_REQUEST:
        return _LLM_REQUEST[v], f"traceloop:{v}"
    if "gen_ai.tool.name" in a or "gen_ai.tool.call.id" in a:
        return "tool", "heuristic:gen_ai.tool"
    if first(a, MODEL_KEYS) is not None:  # model="" names no model (no llm node)
        return "llm", "heuristic:model"
    if a.get("tracestore.outcome.status") is not None:
        return "outcome", "tracestore:outcome"
    return ("human", "openinference:annotation") if human else ("chain", "otel:span")


def first(a: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The first present, non-empty attribute of ``keys``."""
    if a.keys().isdisjoint(keys):  # one C-level test: most spans carry none of them
        return None
    for k in keys:
        v = a.get(k)
        if v is not None and v != "":
            return v
    return None


def str_list(v: Any) -> list[str]:
    """A list of strings from an array attribute, a JSON array string or a comma list.

    >>> str_list('["a","b"]'), str_list("a, b"), str_list(["x", 1])
    (['a', 'b'], ['a', 'b'], ['x', '1'])
    """
    v = maybe_json(v)
    if isinstance(v, str):
        return [p.strip() for p in v.split(",") if p.strip()]
    if isinstance(v, list | tuple):
        return [str(x) for x in v if x is not None and x != ""]
    return []
