"""``support_triage``: a RAG support bot. classify intent → embed → retrieve 5–10 knowledge
base chunks → rerank → draft (sometimes looking up an order) → final answer citing the chunks
it used (``uses``) → PII guardrail.

Injected per trace (mutually exclusive groups, probabilities in :data:`RATES`):

* classify step: ``routing.overpowered_model`` (gpt-4o / claude-sonnet-4 emitting a one-word
  intent), ``routing.reasoning_overkill`` (o3-mini with ≤ 24 reasoning tokens);
* retrieval: ``bloat.over_retrieval`` (10 chunks kept through rerank, one used);
* answer: ``bloat.oversized_prompt`` (a whole transcript pasted: +6–9k prompt tokens);
* order lookup: ``churn.exact_repeat`` (the same lookup re-issued, same result) and the hard
  negative "same tool, different targets" (two orders looked up);
* ``churn.retry_storm``: the draft call times out three times (``retry_of`` chain).

Per task: 8 % a failed first attempt (its trace ends in an error, a retry trace follows), 5 %
a human escalation (a second trace with a human agent, outcome ``escalated``).

The W47 change (a prompt change that doubles the retrieved context) doubles chunk tokens in
every trace that starts in ISO week 2026-W47.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from tracestore.demo.builder import TaskResult, TraceBuilder, approx_tokens, pick
from tracestore.demo.content import SUPPORT_SYSTEM, kb_chunk, ticket

__all__ = ["CHUNK_TOKENS", "RATES", "TASK_RATES", "support_task"]

RATES: dict[str, dict[str, float]] = {
    "classify": {"routing.overpowered_model": 0.08, "routing.reasoning_overkill": 0.04},
    "retrieval": {"bloat.over_retrieval": 0.12},
    "answer": {"bloat.oversized_prompt": 0.05},
    "lookup": {"churn.exact_repeat": 0.15, "negative:same_tool_different_targets": 0.15},
    "draft": {"churn.retry_storm": 0.03},
}
TASK_RATES = {"failed_attempt": 0.08, "escalation": 0.05}
# Tokens per retrieved chunk: 512-token chunking is a common RAG default (LlamaIndex's
# SentenceSplitter chunk_size=1024, LangChain tutorials 500–1000); we draw 250–450.
CHUNK_TOKENS = (250, 450)
W47_CONTEXT_FACTOR = 2  # the W47 prompt change doubles the chunk size
VALUE_PER_RESOLVED_TICKET = 6.5  # illustrative BPO price of a tier-1 ticket, USD


def _classify(b: TraceBuilder, rng: random.Random, text: str, intent: str) -> None:
    prompt = f"Classify the intent of this ticket as one of refund/shipping/account/" \
             f"billing/product. Reply with one word.\n\n{text}"
    p_tokens = approx_tokens(prompt) + 320
    waste = pick(rng, RATES["classify"])
    if waste == "routing.overpowered_model":
        provider, model = rng.choice([("openai", "gpt-4o"),
                                      ("anthropic", "claude-sonnet-4-20250514")])
        nid = b.llm("classify_intent", provider=provider, model=model, input_tokens=p_tokens,
                    output_tokens=rng.randint(2, 4), prompt=prompt, output=intent,
                    step="classify_intent")
        b.label(waste, [nid], note=f"{model} on a one-word classification")
    elif waste == "routing.reasoning_overkill":
        reasoning = rng.randint(0, 24)
        nid = b.llm("classify_intent", provider="openai", model="o3-mini",
                    input_tokens=p_tokens, output_tokens=reasoning + rng.randint(2, 4),
                    reasoning=reasoning, prompt=prompt, output=intent, step="classify_intent")
        b.label(waste, [nid], note=f"o3-mini with {reasoning} reasoning tokens")
    else:
        b.llm("classify_intent", provider="openai", model="gpt-4o-mini", input_tokens=p_tokens,
              output_tokens=rng.randint(2, 4), prompt=prompt, output=intent,
              step="classify_intent")


def _retrieve(b: TraceBuilder, rng: random.Random, text: str, intent: str,
              w47: bool) -> tuple[str, str, list[dict[str, Any]], bool]:
    b.node("embedding", "embed_query", dur=0.05, provider="openai",
           model="text-embedding-3-small", input_tokens=approx_tokens(text))
    over = pick(rng, RATES["retrieval"]) is not None
    n = 10 if over else rng.randint(5, 8)
    factor = W47_CONTEXT_FACTOR if w47 else 1
    docs: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(docs) < n:
        doc_id, content = kb_chunk(rng, intent)
        if doc_id in seen:
            continue
        seen.add(doc_id)
        docs.append({"id": doc_id, "score": round(0.92 - 0.04 * len(docs) - rng.random() / 50, 4),
                     "tokens": rng.randint(*CHUNK_TOKENS) * factor, "content": content})
    ret = b.node("retrieval", "kb_search", dur=0.08 + n / 100, query=text, top_k=n,
                 documents=docs)
    keep = docs if over else docs[: rng.randint(3, 5)]
    reranked = sorted(({"id": d["id"], "score": round(rng.uniform(0.2, 0.99), 4),
                        "tokens": d["tokens"]} for d in keep),
                      key=lambda d: -float(d["score"]))
    rr = b.node("rerank", "rerank", dur=0.12, provider="cohere", model="rerank-v3.5",
                top_k=len(reranked), documents=reranked, query=text)
    return ret, rr, reranked, over


def _order_lookup(b: TraceBuilder, rng: random.Random, order: str, *, provider: str,
                  model: str, input_tokens: int, prompt: str, cache: dict[str, Any]
                  ) -> list[str]:
    """The draft turn (a retry storm at its rate) and its ``lookup_order`` call (a repeated
    lookup, or a hard negative on another order, at their rates); the tool node ids."""
    tool_ids: list[str] = []
    storm = pick(rng, RATES["draft"]) is not None
    attempts: list[str] = []
    for k in range(4 if storm else 1):
        ok = k == (3 if storm else 0)
        attempts.append(b.llm(
            "draft_answer", provider=provider, model=model, input_tokens=input_tokens,
            output_tokens=rng.randint(25, 40) if ok else 0, prompt=prompt,
            output=f'lookup_order({{"order_id": "{order}"}})' if ok else "",
            finish_reason="tool_calls" if ok else "error", status="ok" if ok else "error",
            error_type=None if ok else "APITimeoutError",
            retry_of=attempts[-1] if attempts else None, step="draft_answer", **cache))
    if storm:
        b.label("churn.retry_storm", attempts, note="draft_answer timed out 3 times")
    draft = attempts[-1]
    result = {"order_id": order, "status": rng.choice(["shipped", "delivered", "refunded",
                                                       "processing"]),
              "carrier": "DHL", "updated": "2026-11-0" + str(rng.randint(1, 8))}
    t1 = b.tool("lookup_order", {"order_id": order}, result, caller=draft)
    tool_ids.append(t1)
    lookup = pick(rng, RATES["lookup"])
    if lookup is not None:
        again = b.llm("draft_answer", provider=provider, model=model,
                      input_tokens=input_tokens + 120, output_tokens=rng.randint(25, 40),
                      prompt=prompt + "\n[tool result]", finish_reason="tool_calls",
                      output="lookup_order(...)", step="draft_answer", **cache)
        if lookup == "churn.exact_repeat":
            t2 = b.tool("lookup_order", {"order_id": order}, result, caller=again)
            b.label(lookup, [t2, again], note="lookup_order repeated with the same args "
                                              "and the same result")
        else:
            other = f"A{rng.randrange(100000, 999999)}"
            t2 = b.tool("lookup_order", {"order_id": other},
                        {**result, "order_id": other, "status": "delivered"}, caller=again)
            b.label("churn.exact_repeat", [t1, t2], negative=True,
                    note="same tool on a different order")
        tool_ids.append(t2)
    return tool_ids


def _answer(b: TraceBuilder, rng: random.Random, text: str, order: str,
            docs: list[dict[str, Any]], *, over: bool, ret: str, rr: str) -> str:
    anthropic = rng.random() < 0.6
    provider, model = (("anthropic", "claude-sonnet-4-20250514") if anthropic
                       else ("openai", "gpt-4o"))
    doc_tokens = sum(int(d["tokens"]) for d in docs)
    system = approx_tokens(SUPPORT_SYSTEM) + 1100  # instructions + few-shot examples
    base = system + approx_tokens(text) + doc_tokens + 40
    oversized = pick(rng, RATES["answer"]) is not None
    extra = rng.randint(6000, 9000) if oversized else 0
    cache = {"cache_read": system} if anthropic and rng.random() < 0.8 else {}
    prompt = f"{SUPPORT_SYSTEM}\n\nTicket: {text}\nExcerpts: " + ", ".join(
        str(d["id"]) for d in docs)
    if oversized:
        prompt += "\n\nFull conversation transcript follows (all prior tickets of this user)…"
    tool_ids = (_order_lookup(b, rng, order, provider=provider, model=model,
                              input_tokens=base + extra, prompt=prompt, cache=cache)
                if order else [])
    used = [str(d["id"]) for d in (docs[:1] if over else docs[: max(2, len(docs) - 1)])]
    final = b.llm("final_answer", provider=provider, model=model,
                  input_tokens=base + extra + 150 * len(tool_ids),
                  output_tokens=rng.randint(150, 350), prompt=prompt,
                  output="Thanks for reaching out! " + " ".join(f"[{u}]" for u in used),
                  uses=used + tool_ids, step="final_answer", **cache)
    if over:
        b.label("bloat.over_retrieval", [ret, rr, final], note="10 chunks kept, 1 used")
    if oversized:
        b.label("bloat.oversized_prompt", [final], note=f"+{extra} prompt tokens of transcript")
    return final


def _attempt(rng: random.Random, start: float, task_id: str, dims: Mapping[str, str | None],
             w47: bool, *, fail: bool = False) -> tuple[TraceBuilder, str]:
    b = TraceBuilder(rng, workflow="support_triage", task_id=task_id, start=start, **dims)
    b.node("agent", "support_triage", dur=0.0, gap=0.0)
    intent, text, order = ticket(rng)
    _classify(b, rng, text, intent)
    ret, rr, docs, over = _retrieve(b, rng, text, intent, w47)
    if fail:  # the model call dies and the run gives up; the user retries later
        last = b.llm("final_answer", provider="openai", model="gpt-4o",
                     input_tokens=2000 + sum(int(d["tokens"]) for d in docs),
                     output_tokens=0, prompt=text, output="", status="error",
                     error_type="InternalServerError", finish_reason="error",
                     step="final_answer")
        return b, last
    final = _answer(b, rng, text, order, docs, over=over, ret=ret, rr=rr)
    b.node("guardrail", "pii_check", dur=0.02)
    return b, final


def support_task(rng: random.Random, *, task_id: str, start: float, w47: bool) -> TaskResult:
    dims = {"team": "support", "feature": rng.choice(["chat", "email", "chat", "web_form"]),
            "user_id": f"cust-{rng.randrange(5000):04d}", "environment": "prod",
            "service_name": "support-bot", "session_id": f"sess-{rng.getrandbits(32):08x}"}
    traces: list[TraceBuilder] = []
    kind = pick(rng, TASK_RATES)
    t = start
    if kind == "failed_attempt":
        b, _ = _attempt(rng, t, task_id, dims, w47, fail=True)
        traces.append(b)
        t = b.now + rng.uniform(60, 900)
    b, final = _attempt(rng, t, task_id, dims, w47)
    traces.append(b)
    if kind == "escalation":
        h = TraceBuilder(rng, workflow="support_triage", task_id=task_id,
                         start=b.now + rng.uniform(300, 3600), **dims)
        h.node("agent", "support_triage.escalation", dur=0.0, gap=0.0)
        final = h.node("human", "human_agent_reply", dur=rng.uniform(300, 1500),
                       review_minutes=round(rng.uniform(6, 25), 1))
        traces.append(h)
        return TaskResult(traces, "escalated", "ticket_escalated", None, final)
    ok = rng.random() < 0.88
    value = VALUE_PER_RESOLVED_TICKET if ok and rng.random() < 0.6 else None
    return TaskResult(traces, "success" if ok else "failure", "ticket_resolved", value, final)
