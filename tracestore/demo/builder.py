"""Building blocks of the demo generator: a per-trace builder with a clock, span ids and
typed node helpers, and the label / result containers.

Every random choice goes through the ``random.Random`` the builder is given, so a seed fixes
every byte of the output.

>>> import random
>>> b = TraceBuilder(random.Random(1), workflow="w", task_id="T-1", start=1794182400.0)
>>> root = b.node("agent", "w", dur=1.0)
>>> b.trace()["nodes"][0]["kind"], len(b.trace_id), len(root)
('agent', 32, 16)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DemoData", "Label", "TaskResult", "TraceBuilder", "approx_tokens", "pick"]


def approx_tokens(text: str) -> int:
    """Rough token count of English text: ~4 characters per token (OpenAI's tokenizer
    rule of thumb, platform.openai.com/tokenizer).

    >>> approx_tokens("a" * 400)
    100
    """
    return max(1, len(text) // 4)


@dataclass(frozen=True)
class Label:
    """Ground truth for one injected pattern. ``negative`` labels mark hard negatives: the
    named ``code`` must NOT fire on those nodes."""

    trace_id: str
    code: str
    node_ids: tuple[str, ...]
    negative: bool = False
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "code": self.code, "node_ids": list(self.node_ids),
                "negative": self.negative, "note": self.note}


@dataclass
class DemoData:
    """What the generator returns: traces and late outcomes (wire-shaped dicts, valid as
    ``TraceIn`` / ``OutcomeIn``), and the ground truth kept apart from them."""

    traces: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    change: list[dict[str, Any]] = field(default_factory=list)
    rates: dict[str, dict[str, float]] = field(default_factory=dict)

    def ground_truth(self) -> dict[str, Any]:
        return {"labels": [lab.as_dict() for lab in self.labels], "w47_change": self.change,
                "injection_rates": self.rates}


class TraceBuilder:
    """Accumulates the nodes and edges of one trace while advancing a clock."""

    def __init__(self, rng: random.Random, *, workflow: str, task_id: str, start: float,
                 **dims: Any) -> None:
        self.rng = rng
        self.trace_id = f"{rng.getrandbits(128):032x}"
        self.now = start
        self.root: str | None = None
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        self.labels: list[Label] = []
        self.head = {"trace_id": self.trace_id, "workflow": workflow, "task_id": task_id,
                     **{k: v for k, v in dims.items() if v is not None}}

    def span_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def node(self, kind: str, name: str, *, dur: float, gap: float = 0.05,
             parent: str | None = None, **fields: Any) -> str:
        """Append a node starting ``gap`` seconds after the clock and lasting ``dur``."""
        nid = self.span_id()
        start = round(self.now + gap, 6)
        end = round(start + dur, 6)
        self.now = end
        if parent is None and self.root is not None:
            parent = self.root
        node: dict[str, Any] = {"node_id": nid, "kind": kind, "name": name,
                                "start": start, "end": end}
        if parent is not None:
            node["parent_id"] = parent
        node.update({k: v for k, v in fields.items() if v is not None})
        self.nodes.append(node)
        if self.root is None:
            self.root = nid
        return nid

    def llm(self, name: str, *, provider: str, model: str, input_tokens: int,
            output_tokens: int, prompt: str, output: str, cache_read: int = 0,
            cache_write: int = 0, reasoning: int = 0, **fields: Any) -> str:
        """An LLM call; latency follows output length (~60 tokens/s decode is typical of the
        hosted models used here, artificialanalysis.ai, 2025)."""
        dur = 0.3 + input_tokens / 20000 + output_tokens / 60
        return self.node(
            "llm", name, dur=round(dur, 3), provider=provider, model=model,
            input_tokens=input_tokens, output_tokens=output_tokens,
            cache_read_tokens=cache_read or None, cache_write_tokens=cache_write or None,
            reasoning_tokens=reasoning or None, prompt=prompt, output=output,
            finish_reason=fields.pop("finish_reason", "stop"), **fields,
        )

    def tool(self, tool_name: str, args: Any, result: Any, *, caller: str | None = None,
             dur: float = 0.2, **fields: Any) -> str:
        """A tool call; ``caller`` (the LLM turn that decided it) gets a ``tool_call`` edge."""
        call_id = f"call_{self.rng.getrandbits(48):012x}"
        nid = self.node("tool", tool_name, dur=dur, tool_name=tool_name, args=args,
                        result=result, tool_call_id=call_id, **fields)
        if caller is not None:
            self.edges.append({"src": caller, "dst": nid, "kind": "tool_call"})
        return nid

    def label(self, code: str, node_ids: list[str] | tuple[str, ...], *, negative: bool = False,
              note: str = "") -> None:
        self.labels.append(Label(self.trace_id, code, tuple(node_ids), negative, note))

    def finish(self) -> None:
        """Stretch the root node over all its children."""
        if self.nodes:
            self.nodes[0]["end"] = round(self.now + 0.01, 6)

    def trace(self) -> dict[str, Any]:
        self.finish()
        out = {**self.head, "nodes": self.nodes}
        if self.edges:
            out["edges"] = self.edges
        return out


@dataclass
class TaskResult:
    """The traces one business task produced (attempts in order) and its outcome, which the
    generator either puts in the last trace as an outcome node or posts late."""

    traces: list[TraceBuilder]
    status: str | None = None
    type: str | None = None
    value_usd: float | None = None
    final_node: str | None = None


def pick(rng: random.Random, rates: dict[str, float]) -> str | None:
    """At most one pattern out of mutually exclusive ``rates`` (probabilities summing ≤ 1).

    >>> pick(random.Random(0), {"a": 0.0, "b": 1.0})
    'b'
    """
    x = rng.random()
    for name, p in rates.items():
        if x < p:
            return name
        x -= p
    return None
