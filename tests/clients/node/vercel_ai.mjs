// One agent run traced by the Vercel AI SDK's own telemetry (experimental_telemetry), sent to
// tracestore over OTLP: a chat call, a tool round, a streamed chat and an embedding against the
// fake provider (FAKE_BASE), exactly as tests/clients/py_clients.py does for Python clients.
import { trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { createOpenAI } from "@ai-sdk/openai";
import { LegacyOpenTelemetry, OpenTelemetry } from "@ai-sdk/otel";
import { embed, generateText, registerTelemetry, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

const FAKE = process.env.FAKE_BASE;
const SERVER = process.env.TRACESTORE_URL;
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "vercel-ai-agent" }),
  // the batch processor, as NodeSDK uses by default: one export request per run here
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${SERVER}/v1/traces` }))],
});
provider.register();
// ai 7 emits spans through a registered telemetry integration: "semconv" is @ai-sdk/otel's
// OpenTelemetry (GenAI semantic conventions), "legacy" its LegacyOpenTelemetry (the ai.* spans
// of ai 4-6).
// Session and user: ai 7 has no telemetry.metadata (ai 4-6 sent ai.telemetry.metadata.*); the
// call's runtimeContext, let through by includeRuntimeContext, becomes ai.settings.context.*
// (and, in OpenTelemetry, only with its runtimeContext supplemental attributes switched on).
registerTelemetry(process.argv[2] === "legacy" ? new LegacyOpenTelemetry()
                  : new OpenTelemetry({ runtimeContext: true }));

const openai = createOpenAI({ apiKey: "sk-fake", baseURL: FAKE });
const model = openai.chat("gpt-4o-mini");
const telemetry = { isEnabled: true, functionId: "qa_agent",
                    includeRuntimeContext: { sessionId: true, userId: true } };
const runtimeContext = { sessionId: "session-7", userId: "user-42" };
const instructions = "You answer briefly.";  // ai 7: the system prompt is its own option
const messages = [{ role: "user", content: "What is the capital of France?" }];
const getWeather = tool({
  description: "Weather of a city",
  inputSchema: z.object({ city: z.string() }),
  execute: async () => ({ temp_c: 18 }),
});

await trace.getTracer("agent").startActiveSpan("qa_agent", async (root) => {
  await generateText({ model, instructions, messages, runtimeContext, telemetry });
  await generateText({ model, instructions, messages, tools: { get_weather: getWeather },
                       stopWhen: stepCountIs(2), runtimeContext, telemetry });
  const s = streamText({ model, instructions, messages, runtimeContext, telemetry });
  for await (const _ of s.textStream) { /* drain */ }
  await s.usage;
  await embed({ model: openai.embedding("text-embedding-3-small"), value: "capital of France",
                runtimeContext, telemetry });
  root.end();
});
await provider.shutdown();
