"""A fake OpenAI-compatible provider on loopback with known usage, for the real client
libraries' tests: ``/v1/chat/completions`` (plain, tool call, streaming with usage) and
``/v1/embeddings``. Every answer reports the usage in :data:`CHAT_USAGE` / :data:`EMBED_USAGE`,
so the stored tokens and cost can be checked against the truth."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHAT_MODEL = "gpt-4o-mini-2024-07-18"  # what the provider answers with (request: gpt-4o-mini)
EMBED_MODEL = "text-embedding-3-small"
CHAT_USAGE = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
              "prompt_tokens_details": {"cached_tokens": 40},
              "completion_tokens_details": {"reasoning_tokens": 10}}
EMBED_USAGE = {"prompt_tokens": 8, "total_tokens": 8}
ANSWER = "The capital of France is Paris."
TOOL_ARGS = '{"city": "Paris"}'


def _chat(body: dict[str, Any]) -> dict[str, Any]:
    msgs = body.get("messages") or []
    wants_tool = bool(body.get("tools")) and not any(m.get("role") == "tool" for m in msgs)
    message: dict[str, Any] = {"role": "assistant", "content": None if wants_tool else ANSWER}
    if wants_tool:
        name = body["tools"][0]["function"]["name"]
        message["tool_calls"] = [{"id": "call_weather_1", "type": "function",
                                  "function": {"name": name, "arguments": TOOL_ARGS}}]
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": CHAT_MODEL, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if wants_tool else "stop"}],
            "usage": CHAT_USAGE}


def _stream(body: dict[str, Any]) -> Iterator[bytes]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": CHAT_MODEL, "system_fingerprint": "fp_fake"}
    words = ANSWER.split(" ")
    chunks = [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    chunks += [{"index": 0, "delta": {"content": (" " if i else "") + w}, "finish_reason": None}
               for i, w in enumerate(words)]
    chunks.append({"index": 0, "delta": {}, "finish_reason": "stop"})
    for c in chunks:
        yield f"data: {json.dumps({**base, 'choices': [c]})}\n\n".encode()
    if (body.get("stream_options") or {}).get("include_usage"):
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': CHAT_USAGE})}\n\n".encode()
    yield b"data: [DONE]\n\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        self.server.requests.append((self.path, body))  # type: ignore[attr-defined]
        if self.path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                    for i, _ in enumerate(body["input"] if isinstance(body["input"], list)
                                          else [body["input"]])]
            return self._json({"object": "list", "data": data, "model": EMBED_MODEL,
                               "usage": EMBED_USAGE})
        if self.path.endswith("/chat/completions"):
            if body.get("stream"):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for part in _stream(body):
                    self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
                return None
            return self._json(_chat(body))
        self.send_response(404)
        self.send_header("content-length", "0")
        self.end_headers()
        return None

    def _json(self, doc: dict[str, Any]) -> None:
        raw = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def fake_provider() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """Serve on 127.0.0.1:<free port>; yields (base URL ending in /v1, requests seen)."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1", srv.requests  # type: ignore[attr-defined]
    finally:
        srv.shutdown()
        srv.server_close()
