"""One agent run instrumented by a real client library, sending its spans to tracestore.

    python py_clients.py openinference|otel-genai-off|otel-genai-event|langfuse|langchain|
                         pydantic-ai

Environment: ``FAKE_BASE`` (the fake provider's ``…/v1``), ``TRACESTORE_URL`` (the server).
The run: a chat call, a tool round (the model asks for ``get_weather``, the tool answers, the
model answers), a streamed chat with usage, and an embedding — each against the fake provider,
whose usage is known (tests/clients/fake_provider.py). Runs in its own virtualenv (the client
libraries' pins), so nothing here imports tracestore.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

# Read when run (pytest's doctest collection imports this module without them).
FAKE = os.environ.get("FAKE_BASE", "http://127.0.0.1:9/v1")
SERVER = os.environ.get("TRACESTORE_URL", "http://127.0.0.1:9")
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
QUESTION = [{"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "What is the capital of France?"}]


def workload(client: Any, tool: Any = None) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    first = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    result = tool(call) if tool else '{"temp_c": 18}'
    client.chat.completions.create(model="gpt-4o-mini", tools=TOOLS, messages=[
        *QUESTION, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": result}])
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True,
                                            stream_options={"include_usage": True})
    for _ in stream:
        pass
    client.embeddings.create(model="text-embedding-3-small", input="capital of France")


def otel_provider(service: str) -> Any:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # the batch processor, as the OTel SDK's setup guides use (shutdown flushes it): a tool and
    # the model call that asked for it arrive together, which an inferred join needs
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{SERVER}/v1/traces")))
    trace.set_tracer_provider(provider)
    return provider


def run_openinference() -> None:
    from openai import OpenAI
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry import trace

    provider = otel_provider("openinference-agent")
    from openinference.instrumentation import using_attributes

    OpenAIInstrumentor().instrument(tracer_provider=provider)
    with (using_attributes(session_id="session-7", user_id="user-42"),
          trace.get_tracer("agent").start_as_current_span("qa_agent")):
        workload(OpenAI(api_key="sk-fake", base_url=FAKE))
    provider.shutdown()


def run_otel_genai(mode: str) -> None:
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "false"
    from openai import OpenAI
    from opentelemetry import trace
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    provider = otel_provider("otel-genai-agent")
    logger_provider = None
    if mode == "event":  # content as OTLP log events, the instrumentation's default mode
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(
            OTLPLogExporter(endpoint=f"{SERVER}/v1/logs")))
        set_logger_provider(logger_provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    with trace.get_tracer("agent").start_as_current_span("qa_agent"):
        workload(OpenAI(api_key="sk-fake", base_url=FAKE))
    provider.shutdown()
    if logger_provider is not None:
        logger_provider.shutdown()


def run_langfuse() -> None:
    os.environ.update(LANGFUSE_PUBLIC_KEY="pk-lf-local", LANGFUSE_SECRET_KEY="sk-lf-local",
                      LANGFUSE_HOST=SERVER, LANGFUSE_BASE_URL=SERVER)
    import langfuse
    from langfuse.openai import OpenAI

    lf = langfuse.get_client()
    propagate = getattr(langfuse, "propagate_attributes", None)  # Langfuse 4+
    ids = {"session_id": "session-7", "user_id": "user-42"}
    with (lf.start_as_current_observation(as_type="agent", name="qa_agent"),
          propagate(**ids) if propagate else contextlib.nullcontext()):
        if propagate is None:  # Langfuse 3: trace attributes on the current trace
            lf.update_current_trace(**ids)

        def tool(call: Any) -> str:
            with lf.start_as_current_observation(as_type="tool", name="get_weather",
                                                 input={"city": "Paris"}) as t:
                t.update(output={"temp_c": 18})
            return '{"temp_c": 18}'

        workload(OpenAI(api_key="sk-fake", base_url=FAKE), tool)
        with lf.start_as_current_observation(as_type="retriever", name="kb_search",
                                             input={"query": "capital of France"}) as r:
            r.update(output=[{"id": "doc-1", "content": "Paris is the capital."}])
    lf.flush()
    lf.shutdown()


def run_langchain() -> None:
    """LangChain (langchain-openai ChatOpenAI) traced by openinference-instrumentation-langchain:
    the same calls through LangChain, a tool bound with bind_tools, and a retriever. LangChain's
    callbacks have no embedding event, so no embedding is traced (the test expects none)."""
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from openinference.instrumentation import using_attributes
    from openinference.instrumentation.langchain import LangChainInstrumentor
    from opentelemetry import trace

    provider = otel_provider("langchain-agent")
    LangChainInstrumentor().instrument(tracer_provider=provider)

    @tool
    def get_weather(city: str) -> str:
        """Weather of a city"""
        return '{"temp_c": 18}'

    class KB(BaseRetriever):
        def _get_relevant_documents(self, query: str, *,
                                    run_manager: CallbackManagerForRetrieverRun
                                    ) -> list[Document]:
            return [Document(page_content="Paris is the capital.", id="doc-1")]

    llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-fake", base_url=FAKE,  # type: ignore[arg-type]
                     stream_usage=True)
    msgs = [SystemMessage("You answer briefly."), HumanMessage("What is the capital of France?")]
    with (using_attributes(session_id="session-7", user_id="user-42"),
          trace.get_tracer("agent").start_as_current_span("qa_agent")):
        llm.invoke(msgs)
        bound = llm.bind_tools([get_weather])
        first = bound.invoke(msgs)
        result = get_weather.invoke(first.tool_calls[0])  # a ToolMessage with the call's id
        bound.invoke([*msgs, first, result])
        for _ in llm.stream(msgs):
            pass
        KB().invoke("capital of France")
    provider.shutdown()


def run_pydantic_ai() -> None:
    """pydantic-ai: an Agent on an OpenAI-compatible model at the fake provider, instrumented
    (pydantic-ai 2 dropped Agent(instrument=True) for Agent.instrument_all(True)) with the OTel
    SDK exporter; a plain run, a tool run, a streamed run and an embedding."""
    import asyncio

    from opentelemetry import trace
    from pydantic_ai import Agent
    from pydantic_ai.embeddings import Embedder
    from pydantic_ai.embeddings.openai import OpenAIEmbeddingModel
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = otel_provider("pydantic-ai-agent")
    oai = OpenAIProvider(base_url=FAKE, api_key="sk-fake")
    model = OpenAIChatModel("gpt-4o-mini", provider=oai)
    Agent.instrument_all(True)
    plain = Agent(model, instructions="You answer briefly.")
    tooled = Agent(model, instructions="You answer briefly.")

    @tooled.tool_plain
    def get_weather(city: str) -> str:
        """Weather of a city"""
        return '{"temp_c": 18}'

    embedder = Embedder(OpenAIEmbeddingModel("text-embedding-3-small", provider=oai),
                        instrument=True)

    async def run() -> None:
        await plain.run("What is the capital of France?")
        await tooled.run("What is the capital of France?")
        async with plain.run_stream("What is the capital of France?") as r:
            async for _ in r.stream_text():
                pass
        await embedder.embed_query("capital of France")

    with trace.get_tracer("agent").start_as_current_span("qa_agent"):
        asyncio.run(run())
    provider.shutdown()


if __name__ == "__main__":
    which = sys.argv[1]
    if which == "openinference":
        run_openinference()
    elif which.startswith("otel-genai-"):
        run_otel_genai(which.removeprefix("otel-genai-"))
    elif which == "langfuse":
        run_langfuse()
    elif which == "langchain":
        run_langchain()
    elif which == "pydantic-ai":
        run_pydantic_ai()
    else:
        raise SystemExit(f"unknown client {which!r}")
