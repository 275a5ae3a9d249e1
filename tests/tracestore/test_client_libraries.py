"""The real client libraries, unchanged, against a fake OpenAI-compatible provider on loopback
(tests/clients/fake_provider.py, known usage) and the real server: every stored field checked
against the provider's truth, and the conformance table in docs/conformance.md generated from
what these runs store, kept in README.md (TRACESTORE_WRITE_CONFORMANCE=1 rewrites it).

The libraries live in their own virtualenvs, ``.venv-clients/py*`` (tests/clients/
requirements-py*.txt), created here on first use and kept while their requirements file is
unchanged: their pins must not move ours."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price

from tests.clients.fake_provider import CHAT_MODEL, EMBED_MODEL, fake_provider
from tests.tracestore.otlp_server import serve
from tracestore.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "tests" / "clients"
VENVS = ROOT / ".venv-clients"
DOC = ROOT / "README.md"  # the table stands in README; docs/conformance.md explains it
FIELDS = ("kind", "model", "provider", "tokens", "cache/reasoning", "cost", "content",
          "documents", "tool joins", "session/user")
RUNS = {  # client → what the run exercises beyond chat, tools, streaming and an embedding
    "openinference-instrumentation-openai 0.1.66": "openinference",
    "opentelemetry-instrumentation-openai-v2 2.3b0 (content capture off)": "otel-genai-off",
    "opentelemetry-instrumentation-openai-v2 2.3b0 (content as log events)": "otel-genai-event",
    "langfuse 5.2.0 (langfuse.openai, observations)": "langfuse",
    "langfuse 3.15.0 (langfuse.openai, observations)": "langfuse3",
    "Vercel AI SDK: ai 7.0.185 + @ai-sdk/otel OpenTelemetry (GenAI semconv)": "vercel-semconv",
    "Vercel AI SDK: ai 7.0.185 + @ai-sdk/otel LegacyOpenTelemetry (ai.* spans)": "vercel-legacy",
    "LangChain 1.8 (langchain-openai) + openinference-instrumentation-langchain 0.1.80":
        "langchain",
    "pydantic-ai 2.78.0 (Agent.instrument_all, OTel SDK exporter)": "pydantic-ai",
}
# Each Python run's virtualenv and requirements file (default: "py").
VENV_OF = {"langfuse3": "langfuse3", "langchain": "langchain", "pydantic-ai": "pydantic-ai"}
# LangChain's callbacks have no embedding event: no embedding span to expect (langchain-core
# Embeddings.embed_query runs no callback manager).
NO_EMBED_SPAN = {"langchain"}
# @ai-sdk/otel's OpenTelemetry integration sends cache counts but no reasoning tokens
# (dist/index.js sets only gen_ai.usage.{input,output,cache_read.input,cache_creation.input}).
NO_REASONING = {"vercel-semconv"}
NODE = CLIENTS / "node"
# What a client does not send at all (from its source): n.a. rather than a miss of ours.
NOT_SENT = {
    # openai_v2 2.3b0 sets gen_ai.usage.input/output_tokens only (patch.py, utils.py).
    ("otel-genai-off", "cache/reasoning"), ("otel-genai-event", "cache/reasoning"),
    # with capture off the instrumentation sends no message content (2.3b0 has no span mode:
    # content goes only to log events, the next row)
    ("otel-genai-off", "content"),
    # no trace-level user/session API in the official instrumentation
    ("otel-genai-off", "session/user"), ("otel-genai-event", "session/user"),
    # OpenAI instrumentations trace the model calls, not the app's tools or retrievers
    ("openinference", "tool joins"), ("otel-genai-off", "tool joins"),
    ("otel-genai-event", "tool joins"), ("openinference", "documents"),
    ("otel-genai-off", "documents"), ("otel-genai-event", "documents"),
    ("vercel-semconv", "documents"), ("vercel-legacy", "documents"),
    # pydantic-ai has no retriever and no trace-level session/user API
    ("pydantic-ai", "documents"), ("pydantic-ai", "session/user"),
}


def _venv(name: str, requirements: str) -> Path:
    venv = VENVS / name
    req = (CLIENTS / requirements).read_bytes()
    stamp = venv / "requirements.sha256"
    digest = hashlib.sha256(req).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r",
                        str(CLIENTS / requirements)], capture_output=True, text=True,
                       timeout=900)
    if r.returncode != 0:
        msg = f"client libraries could not be installed: {r.stderr[-800:]}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    stamp.write_text(digest)
    return venv / "bin" / "python"


def _node_modules() -> None:
    """``npm ci`` of tests/clients/node (the Vercel AI SDK) unless already installed from the
    same lock file (.ci/run installs it before the tests)."""
    lock = NODE / "package-lock.json"
    installed = NODE / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE, capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0:
        msg = f"npm ci failed for the Vercel AI SDK: {r.stderr[-800:]}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def client_python() -> dict[str, Path]:
    """The interpreter each Python run uses (the Node runs use tests/clients/node)."""
    _node_modules()
    wanted = {"py": ("py", "requirements-py.txt"),
              **{v: (f"py-{v}", f"requirements-py-{v}.txt") for v in set(VENV_OF.values())}}
    # Built side by side: each is mostly waiting on the package registry (4 x ~1 min apart).
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        futures = {k: pool.submit(_venv, *args) for k, args in wanted.items()}
        return {k: f.result() for k, f in futures.items()}


def _price(model: str, i: int, o: int, cached: int = 0) -> float:
    p = calc_price(Usage(input_tokens=i, output_tokens=o, cache_read_tokens=cached or None),
                   model_ref=model, provider_id="openai",
                   genai_request_timestamp=datetime.now(UTC))
    return float(p.total_price)


def _run(pythons: dict[str, Path], which: str, tmp: Path) -> dict[str, Any]:
    python = pythons[VENV_OF.get(which, "py")]
    script = "langfuse" if which == "langfuse3" else which
    settings = Settings(database_url=f"sqlite:///{tmp / (which + '.db')}", settle_seconds=3600,
                        alert_interval_seconds=0)
    with serve(settings) as url, fake_provider() as (fake, _):
        cmd = (["node", str(NODE / "vercel_ai.mjs"), which.split("-", 1)[1]]
               if which.startswith("vercel") else [str(python), str(CLIENTS / "py_clients.py"),
                                                   script])
        r = subprocess.run(cmd, timeout=300,
                           env={**os.environ, "FAKE_BASE": fake, "TRACESTORE_URL": url},
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        (item,) = httpx.get(f"{url}/api/v1/traces", timeout=30).json()["items"]
        trace: dict[str, Any] = httpx.get(f"{url}/api/v1/traces/{item['trace_id']}",
                                          timeout=30).json()
        trace["graph"] = httpx.get(f"{url}/api/v1/traces/{item['trace_id']}/graph",
                                   timeout=30).json()
    return trace


def _checks(which: str, t: dict[str, Any]) -> dict[str, bool]:
    nodes = sorted(t["nodes"], key=lambda n: (n["start"] or "", n["node_id"]))
    chats = [n for n in nodes if n["kind"] == "llm"]
    embeds = [n for n in nodes if n["kind"] == "embedding"]
    # kind: exactly the calls made are model nodes. tokens and cost: judged on the nodes that
    # carry usage (a wrapper span typed as a model call with no usage fails kind, not these).
    used = [n for n in chats + embeds if n["input_tokens"] or n["output_tokens"]]
    model_nodes = chats + embeds
    cache = (which, "cache/reasoning") not in NOT_SENT
    tools = [n for n in nodes if n["kind"] == "tool"]
    links = {(e["source"], e["target"]) for e in t["graph"]["links"] if "tool_call" in e["kinds"]}
    retrievals = [n for n in nodes if n["kind"] == "retrieval"]
    n_embed = 0 if which in NO_EMBED_SPAN else 1
    return {
        "kind": len(chats) == 4 and len(embeds) == n_embed,
        "model": all(n["model"] in (CHAT_MODEL, "gpt-4o-mini") for n in chats)
        and all(n["model"] == EMBED_MODEL for n in embeds),
        "provider": bool(model_nodes) and all(n["provider"] == "openai" for n in model_nodes),
        "tokens": len(used) == 4 + n_embed
        and all((n["input_tokens"], n["output_tokens"]) == ((8, 0) if n["kind"] == "embedding"
                                                            else (120, 30)) for n in used),
        "cache/reasoning": all((n["cache_read_tokens"], n["reasoning_tokens"]) == (
            40, 0 if which in NO_REASONING else 10) for n in chats),
        "cost": len(used) == 4 + n_embed and all(n["cost_usd"] is not None and abs(n["cost_usd"] - (
            _price(EMBED_MODEL, 8, 0) if n["kind"] == "embedding"
            else _price(CHAT_MODEL, 120, 30, 40 if cache else 0))) < 1e-9 for n in used),
        "content": bool(chats) and "capital of France" in (chats[0]["prompt"] or "")
        and "Paris" in (chats[0]["output"] or ""),
        "documents": any(n["documents"] and n["query"] for n in retrievals),
        "tool joins": bool(tools) and any((c["node_id"], tl["node_id"]) in links
                                          for c in chats for tl in tools),
        "session/user": (t["session_id"], t["user_id"]) == ("session-7", "user-42"),
    }


def _table(results: dict[str, dict[str, str]]) -> str:
    head = "| client | " + " | ".join(FIELDS) + " |\n|---|" + "---|" * len(FIELDS) + "\n"
    return head + "".join(f"| {client} | " + " | ".join(row[f] for f in FIELDS) + " |\n"
                          for client, row in results.items())


@pytest.fixture(scope="module")
def results(client_python: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("clients")
    out: dict[str, dict[str, str]] = {}
    for client, which in RUNS.items():
        checks = _checks(which, _run(client_python, which, tmp))
        out[client] = {f: "n.a." if (which, f) in NOT_SENT else ("✔" if checks[f] else "✘")
                       for f in FIELDS}
    yield out


def test_core_fields_map_for_every_client(results: dict[str, dict[str, str]]) -> None:
    for client, row in results.items():
        for field in ("model", "provider", "tokens", "cost"):
            assert row[field] == "✔", (client, field, row)


def test_conformance_table_is_generated_from_these_runs(
        results: dict[str, dict[str, str]]) -> None:
    table = _table(results)
    text = DOC.read_text()
    start, end = "<!-- conformance:start -->\n", "<!-- conformance:end -->"
    a, b = text.index(start) + len(start), text.index(end)
    current = text[a:b]
    if os.environ.get("TRACESTORE_WRITE_CONFORMANCE"):
        DOC.write_text(text[:a] + table + text[b:])
        return
    assert current == table, ("README's conformance table differs from what the clients store; "
                              "rerun with TRACESTORE_WRITE_CONFORMANCE=1:\n" + table)
