"""Producer dialects through the one mapping path (docs/ingest.md, "Producers").

Each attribute set is what the named producer's source sets (file cited beside it); the test
checks the node the mapping makes of it, and prices it where the producer reports tokens.
"""

from __future__ import annotations

import json
from typing import Any

from tracestore.ingest.otlp import spans_to_traces
from tracestore.ingest.otlp.decode import Span
from tracestore.ingest.write import node_row
from tracestore.pricing.pricer import Pricer
from tracestore.schemas import NodeIn, TraceIn

TRACE = "ab" * 16
T0 = 1_750_000_000.0


def _span(attrs: dict[str, Any], *, sid: str = "0000000000000001", name: str = "span",
          parent: str | None = None,
          events: tuple[tuple[str, float | None, dict[str, Any]], ...] = ()) -> Span:
    return Span(TRACE, sid, parent, name, 1, T0, T0 + 1, attrs, events=events)


def _traces(*spans: Span) -> list[TraceIn]:
    traces, rejected = spans_to_traces(list(spans))
    assert rejected == []
    return traces


def _node(attrs: dict[str, Any], **kw: Any) -> NodeIn:
    return _traces(_span(attrs, **kw))[0].nodes[0]


def _cost(node: NodeIn) -> float | None:
    row = node_row(1, TRACE, node, 10_000)
    Pricer().price_rows([row])
    cost: float | None = row["cost_usd"]
    return cost


# --- Langfuse SDK (langfuse-python langfuse/_client/attributes.py, langfuse/openai.py) -----

def test_langfuse_nested_usage_details_keep_cache_and_reasoning_tokens() -> None:
    usage = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
             "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 200}}
    n = _node({"langfuse.observation.type": "generation",
               "langfuse.observation.model.name": "gpt-4o-mini",
               "langfuse.observation.usage_details": json.dumps(usage)})
    assert (n.input_tokens, n.cache_read_tokens, n.output_tokens, n.reasoning_tokens) == (
        1200, 1000, 300, 200)
    # gpt-4o-mini: $0.15/M input, $0.075/M cached, $0.60/M output
    assert abs((_cost(n) or 0) - (200 * 0.15e-6 + 1000 * 0.075e-6 + 300 * 0.6e-6)) < 1e-12


def test_langfuse_langchain_style_nested_details() -> None:
    usage = {"input_tokens": 500, "output_tokens": 50,
             "input_token_details": {"cache_read": 300, "cache_creation": 100},
             "output_token_details": {"reasoning": 20}}
    n = _node({"langfuse.observation.type": "generation",
               "langfuse.observation.usage_details": json.dumps(usage)})
    assert (n.input_tokens, n.cache_read_tokens, n.cache_write_tokens, n.reasoning_tokens) == (
        500, 300, 100, 20)


def test_langfuse_embedding_without_provider_is_priced_from_the_model() -> None:
    n = _node({"langfuse.observation.type": "embedding",
               "langfuse.observation.model.name": "text-embedding-3-small",
               "langfuse.observation.usage_details": '{"input": 1000}'})
    assert (n.kind, n.provider, n.input_tokens) == ("embedding", "openai", 1000)
    assert abs((_cost(n) or 0) - 1000 * 0.02e-6) < 1e-12


def test_langfuse_retriever_input_and_output_become_query_and_documents() -> None:
    docs = [{"page_content": "Refunds take 5 days.", "metadata": {"source": "faq"},
             "type": "Document"}, {"page_content": "Ship in 2 days.", "metadata": {}}]
    n = _node({"langfuse.observation.type": "retriever",
               "langfuse.observation.input": "how long do refunds take?",
               "langfuse.observation.output": json.dumps(docs)})
    assert n.kind == "retrieval" and n.query == "how long do refunds take?"
    assert [d.content for d in n.documents or []] == ["Refunds take 5 days.", "Ship in 2 days."]



def test_langfuse_tool_without_call_id_is_joined_by_name_under_the_same_parent() -> None:
    # langfuse/openai.py records the generation's output as the OpenAI message (tool_calls with
    # id and function.name); a tool observation (start_as_current_observation(as_type="tool"))
    # carries no call id. Two calls of the same tool: each tool takes the next unclaimed call.
    out = json.dumps({"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": "{}"}},
        {"id": "call_b", "type": "function",
         "function": {"name": "get_weather", "arguments": "{}"}}]})
    gen = {"langfuse.observation.type": "generation", "langfuse.observation.model.name": "gpt-4o",
           "langfuse.observation.output": out}
    tool = {"langfuse.observation.type": "tool", "langfuse.observation.input": "{}"}
    root = "00000000000000aa"
    spans = [_span({"langfuse.observation.type": "agent"}, sid=root, name="agent"),
             _span(gen, sid="00000000000000bb", parent=root),
             Span(TRACE, "00000000000000cc", root, "get_weather", 1, T0 + 2, T0 + 3, tool),
             Span(TRACE, "00000000000000dd", root, "get_weather", 1, T0 + 4, T0 + 5, tool),
             # another parent's tool of that name is not joined
             Span(TRACE, "00000000000000ee", "00000000000000cc", "get_weather", 1, T0 + 6,
                  T0 + 7, tool)]
    (t,) = _traces(*spans)
    tools = {n.node_id: n for n in t.nodes if n.kind == "tool"}
    assert tools["00000000000000cc"].tool_call_id == "call_a"
    assert tools["00000000000000dd"].tool_call_id == "call_b"
    assert (tools["00000000000000cc"].attributes or {})["tracestore.tool_call.inferred"] is True
    assert tools["00000000000000ee"].tool_call_id is None
    assert {(e.src, e.dst) for e in t.edges if e.kind == "tool_call"} == {
        ("00000000000000bb", "00000000000000cc"), ("00000000000000bb", "00000000000000dd")}


def test_langfuse_v5_quoted_metadata_and_streamed_finish_reason() -> None:
    t = _traces(_span({"langfuse.observation.type": "generation",
                       "langfuse.observation.model.name": "gpt-4o",
                       "langfuse.trace.metadata.team": '"support"',
                       "langfuse.trace.metadata.tier": "2",
                       "langfuse.observation.metadata.finish_reason": '"stop"'}))[0]
    assert t.team == "support" and (t.metadata or {})["team"] == "support"
    assert (t.metadata or {})["tier"] == "2"  # not a quoted JSON string: kept as sent
    assert t.nodes[0].finish_reason == "stop"


def test_explicit_langfuse_session_wins_over_conversation_id() -> None:
    t = _traces(_span({"gen_ai.conversation.id": "conv-auto", "langfuse.session.id": "s-1",
                       "langfuse.user.id": "u-1", "user.id": "u-other"}))[0]
    assert (t.session_id, t.user_id) == ("s-1", "u-1")


# --- Vercel AI SDK (vercel/ai content/docs/03-ai-sdk-core/60-telemetry.mdx) ---------------

def _vercel_call(**extra: Any) -> dict[str, Any]:
    return {"ai.operationId": "ai.generateText.doGenerate",
            "operation.name": "ai.generateText.doGenerate",
            "ai.model.id": "claude-3-5-haiku-latest",
            "ai.model.provider": "anthropic.messages", "gen_ai.system": "anthropic.messages",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20,
            "ai.response.text": "Checking the weather.",
            "ai.response.toolCalls": json.dumps([{"toolCallType": "function",
                                                  "toolCallId": "call-1",
                                                  "toolName": "weather",
                                                  "args": '{"city":"Paris"}'}]),
            "ai.prompt.messages": json.dumps([{"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris?"}]}]), **extra}


def test_vercel_tool_call_is_a_tool_node_joined_to_the_llm_call() -> None:
    llm = _span(_vercel_call(), sid="0000000000000002", name="ai.generateText.doGenerate")
    tool = _span({"ai.operationId": "ai.toolCall", "operation.name": "ai.toolCall",
                  "ai.toolCall.name": "weather", "ai.toolCall.id": "call-1",
                  "ai.toolCall.args": '{"city":"Paris"}', "ai.toolCall.result": '"sunny"'},
                 sid="0000000000000003", name="ai.toolCall")
    outer = _span({"ai.operationId": "ai.generateText", "ai.model.id": "claude-3-5-haiku-latest",
                   "ai.prompt": '{"prompt":"Weather in Paris?"}',
                   "ai.response.text": "It is sunny.", "ai.usage.promptTokens": 100},
                  sid="0000000000000001", name="ai.generateText")
    t = _traces(outer, llm, tool)[0]
    kinds = {n.node_id: n for n in t.nodes}
    root, call, ran = kinds["0000000000000001"], kinds["0000000000000002"], kinds[
        "0000000000000003"]
    assert (root.kind, call.kind, ran.kind) == ("chain", "llm", "tool")
    assert root.input_tokens == 0 and root.output == "It is sunny."
    assert call.provider == "anthropic" and call.output == "Checking the weather."
    assert ran.tool_name == "weather" and ran.args == {"city": "Paris"} and ran.result == "sunny"
    assert [(e.src, e.dst, e.kind) for e in t.edges] == [
        ("0000000000000002", "0000000000000003", "tool_call")]


def test_vercel_anthropic_cache_tokens_in_provider_metadata() -> None:
    meta = {"anthropic": {"cacheCreationInputTokens": 50, "cacheReadInputTokens": 400}}
    n = _node(_vercel_call(**{"ai.response.providerMetadata": json.dumps(meta)}))
    # AI SDK <= 5 passes Anthropic's input_tokens through: exclusive of cache reads/writes
    assert (n.input_tokens, n.cache_read_tokens, n.cache_write_tokens) == (550, 400, 50)


def test_vercel_v6_input_token_details_are_inclusive() -> None:
    n = _node(_vercel_call(**{"ai.usage.inputTokenDetails.cacheReadTokens": 60,
                              "ai.usage.inputTokenDetails.cacheWriteTokens": 0}))
    assert (n.input_tokens, n.cache_read_tokens) == (100, 60)


def test_vercel_embed_and_rerank() -> None:
    emb = _node({"ai.operationId": "ai.embed.doEmbed", "ai.model.id": "text-embedding-3-small",
                 "ai.model.provider": "openai.embedding", "ai.usage.tokens": 12,
                 "ai.values": ['"hello"']})
    assert (emb.kind, emb.provider, emb.model, emb.input_tokens) == (
        "embedding", "openai", "text-embedding-3-small", 12)
    rr = _node({"ai.operationId": "ai.rerank.doRerank", "ai.model.id": "rerank-v3.5",
                "ai.model.provider": "cohere.reranking",
                "ai.documents": ['"apples"', '"pears"'],
                "ai.ranking": ['{"index":1,"relevanceScore":0.9}',
                               '{"index":0,"relevanceScore":0.2}']})
    assert rr.kind == "rerank"
    assert [(d.id, d.score, d.content) for d in rr.documents or []] == [
        ("1", 0.9, "pears"), ("0", 0.2, "apples")]



def test_vercel_session_and_user_from_metadata_and_runtime_context() -> None:
    # ai 4-6: experimental_telemetry.metadata → ai.telemetry.metadata.* (packages/ai
    # core/telemetry/get-base-telemetry-attributes.ts); ai 7: runtimeContext let through by
    # includeRuntimeContext → ai.settings.context.* (@ai-sdk/otel getRuntimeContextAttributes,
    # on legacy ai.* spans and, with runtimeContext: true, on the GenAI-semconv spans)
    for prefix, attrs in (("ai.telemetry.metadata.", {"ai.operationId": "ai.generateText"}),
                          ("ai.settings.context.", {"ai.operationId": "ai.generateText"}),
                          ("ai.settings.context.", {"gen_ai.operation.name": "invoke_agent"})):
        (t,) = _traces(_span({**attrs, prefix + "sessionId": "s-1", prefix + "userId": "u-9"}))
        assert (t.session_id, t.user_id) == ("s-1", "u-9"), prefix


def test_model_operation_wrapper_of_the_same_kind_is_a_step() -> None:
    # @ai-sdk/otel OpenTelemetry: embed's operation span and its provider call are both
    # "embeddings <model>" with gen_ai.operation.name embeddings; only the inner one has usage
    # (onEmbedEnd sets gen_ai.usage.input_tokens; onEmbedOperationEnd sets none).
    op = {"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
          "gen_ai.request.model": "text-embedding-3-small"}
    (t,) = _traces(_span({}, sid="00000000000000aa", name="agent"),
                   _span(op, sid="00000000000000bb", parent="00000000000000aa"),
                   _span({**op, "gen_ai.usage.input_tokens": 8}, sid="00000000000000cc",
                         parent="00000000000000bb"))
    kinds = {n.node_id: (n.kind, n.input_tokens) for n in t.nodes}
    assert kinds["00000000000000bb"] == ("chain", 0)
    assert kinds["00000000000000cc"] == ("embedding", 8)
    # a usage-less model span with no model-call descendant stays a model call, and a
    # descendant of another kind does not make a wrapper
    (t,) = _traces(_span(op, sid="00000000000000bb"),
                   _span({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                          "gen_ai.usage.input_tokens": 5}, sid="00000000000000cc",
                         parent="00000000000000bb"))
    assert sorted(n.kind for n in t.nodes) == ["embedding", "llm"]


# --- OpenLLMetry (traceloop/openllmetry packages/*) ---------------------------------------

def test_openllmetry_langchain_retriever_task_documents() -> None:
    out = {"documents": [{"page_content": "doc one", "metadata": {}},
                         {"page_content": "doc two", "metadata": {}}], "count": 2}
    n = _node({"traceloop.span.kind": "task", "traceloop.entity.name": "VectorStoreRetriever",
               "traceloop.entity.input": json.dumps({"query": "q?", "tags": []}),
               "traceloop.entity.output": json.dumps(out)})
    assert n.kind == "retrieval" and n.query == "q?"
    assert [d.content for d in n.documents or []] == ["doc one", "doc two"]


def test_openllmetry_chroma_query_span_documents_from_events() -> None:
    evs = tuple(("db.query.result", T0, {"db.query.result.id": i, "db.query.result.distance": d,
                                         "db.query.result.document": doc})
                for i, d, doc in (("id1", 0.1, "first"), ("id2", 0.2, "second")))
    n = _node({"db.system": "chroma", "db.operation": "query",
               "db.chroma.query.n_results": 2}, name="chroma.query", events=evs)
    assert n.kind == "retrieval"
    assert [(d.id, d.content) for d in n.documents or []] == [("id1", "first"), ("id2", "second")]


def test_openllmetry_association_properties_and_completion_finish_reason() -> None:
    t = _traces(_span({"llm.request.type": "chat", "gen_ai.system": "openai",
                       "gen_ai.request.model": "gpt-4o",
                       "traceloop.association.properties.user_id": "u-7",
                       "traceloop.association.properties.session_id": "s-7",
                       "gen_ai.completion.0.role": "assistant",
                       "gen_ai.completion.0.content": "hi",
                       "gen_ai.completion.0.finish_reason": "length"}))[0]
    assert (t.user_id, t.session_id) == ("u-7", "s-7")
    assert t.nodes[0].finish_reason == "length"


# --- pydantic-ai / logfire, OpenLIT ------------------------------------------------------

def test_pydantic_ai_usage_details_and_operation_cost() -> None:
    n = _node({"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
               "gen_ai.request.model": "o3-mini", "gen_ai.usage.input_tokens": 50,
               "gen_ai.usage.output_tokens": 400,
               "gen_ai.usage.details.reasoning_tokens": 320, "operation.cost": 0.00181})
    assert (n.reasoning_tokens, n.reported_cost_usd) == (320, 0.00181)
    agent = _node({"gen_ai.operation.name": "invoke_agent", "operation.cost": 0.5,
                   "gen_ai.agent.name": "a"})
    assert agent.reported_cost_usd is None  # a run's summed cost is not a second charge


def test_openlit_usage_cost() -> None:
    n = _node({"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
               "gen_ai.request.model": "gpt-4o", "gen_ai.usage.cost": 0.0042})
    assert n.reported_cost_usd == 0.0042


# --- Genkit, Google ADK, LiveKit ----------------------------------------------------------

def test_genkit_model_action_is_an_llm_with_model_and_tokens() -> None:
    out = {"message": {"role": "model", "content": [{"text": "Bonjour"}]},
           "finishReason": "stop",
           "usage": {"inputTokens": 42, "outputTokens": 17, "thoughtsTokens": 3,
                     "cachedContentTokens": 10}}
    n = _node({"genkit:type": "action", "genkit:metadata:subtype": "model",
               "genkit:name": "googleai/gemini-2.5-flash",
               "genkit:input": json.dumps({"messages": [{"role": "user",
                                                         "content": [{"text": "hi"}]}]}),
               "genkit:output": json.dumps(out)})
    assert (n.kind, n.provider, n.model) == ("llm", "googleai", "gemini-2.5-flash")
    assert (n.input_tokens, n.output_tokens, n.reasoning_tokens, n.cache_read_tokens) == (
        42, 17, 3, 10)
    assert n.output == "Bonjour" and n.finish_reason == "stop"
    assert _cost(n) is not None


def test_google_adk_cached_tokens_from_llm_response() -> None:
    resp = {"content": {"role": "model", "parts": [{"text": "ok"}]},
            "usage_metadata": {"cached_content_token_count": 800, "prompt_token_count": 1000,
                               "candidates_token_count": 5, "total_token_count": 1005}}
    n = _node({"gen_ai.system": "gcp.vertex.agent", "gen_ai.request.model": "gemini-2.5-flash",
               "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 5,
               "gcp.vertex.agent.llm_request": '{"contents": []}',
               "gcp.vertex.agent.llm_response": json.dumps(resp)}, name="call_llm")
    assert (n.kind, n.input_tokens, n.cache_read_tokens, n.output) == ("llm", 1000, 800, "ok")


def test_livekit_kind_in_the_span_name_and_choice_events() -> None:
    choice = ("gen_ai.choice", T0, {"role": "assistant", "content": "",
                                    "tool_calls": [json.dumps({"function": {
                                        "name": "lookup", "arguments": "{}"},
                                        "id": "fc-1", "type": "function"})]})
    user = ("gen_ai.user.message", T0, {"content": "book a table"})
    llm = _span({"lk.llm_metrics": json.dumps({"prompt_tokens": 30, "completion_tokens": 4,
                                               "prompt_cached_tokens": 0,
                                               "metadata": {"model_name": "gpt-4o-mini",
                                                            "model_provider": "openai"}})},
                sid="0000000000000001", name="llm_request", events=(user, choice))
    tool = _span({"lk.function_tool.id": "fc-1", "lk.function_tool.name": "lookup",
                  "lk.pii.function_tool.arguments": "{}",
                  "lk.pii.function_tool.output": "table 4"},
                 sid="0000000000000002", name="function_tool")
    t = _traces(llm, tool)[0]
    a, b = t.nodes
    assert (a.kind, a.model, a.input_tokens, b.kind, b.tool_name) == (
        "llm", "gpt-4o-mini", 30, "tool", "lookup")
    assert a.prompt is not None and "book a table" in a.prompt
    assert [(e.src, e.dst) for e in t.edges] == [("0000000000000001", "0000000000000002")]


# --- span events, Vertex paths, empty model ----------------------------------------------

def test_prompts_in_span_events_semconv_details_and_semantic_kernel() -> None:
    details = ("gen_ai.client.inference.operation.details", T0, {
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
            {"type": "text", "content": "2+2?"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
            {"type": "text", "content": "4"}], "finish_reason": "stop"}])})
    n = _node({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
              events=(details,))
    assert n.prompt is not None and "2+2?" in n.prompt and n.output == "4"
    sk = (("gen_ai.content.prompt", T0, {"gen_ai.prompt": json.dumps(
              [{"role": "user", "content": "hello"}])}),
          ("gen_ai.content.completion", T0, {"gen_ai.completion": json.dumps(
              [{"role": "assistant", "content": "hi there"}])}))
    n = _node({"gen_ai.operation.name": "chat_completions", "gen_ai.request.model": "gpt-4o",
               "gen_ai.system": "openai"}, events=sk)
    assert n.prompt is not None and "hello" in n.prompt and n.output == "hi there"


def test_vertex_model_paths_are_priced() -> None:
    n = _node({"gen_ai.operation.name": "generate_content", "gen_ai.system": "gcp.vertex_ai",
               "gen_ai.request.model":
                   "projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-flash",
               "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100})
    assert n.model == "gemini-2.5-flash" and _cost(n) is not None


def test_empty_model_does_not_make_an_llm_node() -> None:
    assert _node({"model": "", "gen_ai.request.model": ""}).kind == "chain"


def test_agent_and_chain_input_output_are_kept() -> None:
    agent = _node({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
                   "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                       {"type": "text", "content": "refund?"}]}]),
                   "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                       {"type": "text", "content": "Refund issued."}]}])})
    assert agent.kind == "agent" and agent.output == "Refund issued."
    assert agent.prompt is not None and "refund?" in agent.prompt
    chain = _node({"openinference.span.kind": "CHAIN", "input.value": "x",
                   "output.value": "y"})
    assert (chain.prompt, chain.output) == ("x", "y")
    wf = _node({"traceloop.span.kind": "workflow", "traceloop.entity.input": '{"a":1}',
                "traceloop.entity.output": '"done"'})
    assert (wf.prompt, wf.output) == ('{"a":1}', '"done"')
    row = node_row(1, TRACE, wf, 3)
    assert row["prompt"] == '{"a' and row["prompt_hash"] is not None


def test_vercel_anthropic_raw_usage_decides_the_input_count() -> None:
    """Langfuse's capture (fixtures/otlp_corpus/langfuse_otel_mapping.json), with a model: the
    AI SDK's 18,495 input tokens are Anthropic's 7 + 2,089 cache writes + 16,399 cache reads."""
    meta = {"anthropic": {"usage": {"input_tokens": 7, "cache_creation_input_tokens": 2089,
                                    "cache_read_input_tokens": 16399, "output_tokens": 445},
                          "cacheCreationInputTokens": 2089}}
    n = _node({"gen_ai.request.model": "claude-sonnet-4-20250514",
               "gen_ai.usage.input_tokens": 18495, "gen_ai.usage.output_tokens": 445,
               "ai.usage.cachedInputTokens": "16399",
               "ai.response.providerMetadata": json.dumps(meta)}, name="bedrock-generation")
    assert (n.kind, n.input_tokens, n.cache_read_tokens, n.cache_write_tokens) == (
        "llm", 18495, 16399, 2089)
    assert _cost(n) is not None


_PRODUCER_KEYS = ["ai.operationId", "operation.name", "ai.toolCall.args", "ai.response.toolCalls",
                  "ai.response.providerMetadata", "ai.usage.cachedInputTokens", "ai.ranking",
                  "ai.documents", "genkit:type", "genkit:metadata:subtype", "genkit:output",
                  "genkit:name", "gcp.vertex.agent.llm_response", "lk.llm_metrics",
                  "lk.function_tool.name", "db.system", "db.operation", "traceloop.entity.output",
                  "traceloop.span.kind", "langfuse.trace.metadata.team",
                  "langfuse.observation.usage_details", "langfuse.observation.output",
                  "langfuse.observation.type", "gen_ai.operation.name", "tool_arguments",
                  "gen_ai.tool.name"]
_EVENT_NAMES = ["gen_ai.user.message", "gen_ai.choice", "gen_ai.tool.message",
                "gen_ai.client.inference.operation.details", "gen_ai.content.prompt",
                "db.query.result"]


def _json_values() -> Any:
    from hypothesis import strategies as st

    leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(
        allow_nan=False) | st.text(max_size=8) | st.sampled_from(
        ["ai.toolCall", "ai.rerank.doRerank", "model", "tool", "task", "chroma", "query",
         "retriever", '{"documents": [1, {"page_content": 2}]}', '"quoted"', "[1, {}]"])
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["content", "role", "tool_calls", "message", "usage", "anthropic",
                         "index", "documents", "usage_metadata", "parts", "id"]), inner,
                        max_size=3), max_leaves=8)


def test_hostile_producer_attributes_and_events_never_escape() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    attrs = st.dictionaries(st.sampled_from(_PRODUCER_KEYS), _json_values(), max_size=8)
    events = st.lists(st.tuples(st.sampled_from(_EVENT_NAMES), st.dictionaries(
        st.sampled_from(["content", "message", "gen_ai.prompt", "gen_ai.input.messages",
                         "finish_reason", "tool_calls", "id", "role"]), _json_values(),
        max_size=4)), max_size=3)

    @settings(max_examples=300, deadline=None)
    @given(attrs, events, st.sampled_from(["llm_request", "function_tool", "span"]))
    def run(a: dict[str, Any], evs: list[tuple[str, dict[str, Any]]], name: str) -> None:
        a = {k: v for k, v in a.items() if v is not None}
        sp = Span(TRACE, "0000000000000001", None, name, 1, T0, T0 + 1, a,
                  events=tuple((n, T0, x) for n, x in evs))
        traces, rejected = spans_to_traces([sp])
        assert len(traces) + len(rejected) >= 1

    run()
