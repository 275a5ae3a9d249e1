"""``code_review``: a pull-request review agent. classify the change → an agent loop of LLM
turns (claude-sonnet-4, the growing history billed as cache reads) each issuing one tool
(``read_file`` / ``run_tests`` / ``edit_file``) → ``post_comment``.

Normal runs take 4–7 turns and compact the history (a claude-3-5-haiku summary) once it
passes :data:`COMPACT_AT` tokens. Injected per trace (probabilities in :data:`RATES`):

* ``bloat.history_growth``: 10–12 turns, no compaction, input growing every turn;
* ``churn.cycle``: ``read_file`` A, B, A, B, A, B;
* ``churn.tight_loop``: ``run_tests`` three times in a row, same args, same failure, no edit;
* hard negative: ``run_tests`` (fail) → ``edit_file`` → ``run_tests`` (pass);
* ``routing.reasoning_overkill``: the classify step on o3-mini with ≤ 32 reasoning tokens.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from tracestore.demo.builder import TaskResult, TraceBuilder, approx_tokens, pick
from tracestore.demo.content import REPO_FILES, REVIEW_SYSTEM, TEST_SUITES

__all__ = ["COMPACT_AT", "RATES", "code_review_task"]

RATES: dict[str, dict[str, float]] = {
    "loop": {"bloat.history_growth": 0.10, "churn.cycle": 0.05, "churn.tight_loop": 0.05,
             "negative:rerun_tests_after_edit": 0.15},
    "classify": {"routing.reasoning_overkill": 0.06},
}
COMPACT_AT = 9000  # tokens; Claude Code-style auto-compaction triggers on a history budget
SYSTEM_TOKENS = approx_tokens(REVIEW_SYSTEM) + 2400  # instructions + repository map


class _Loop:
    """The agent loop's state: history size and the last turn."""

    def __init__(self, b: TraceBuilder, rng: random.Random, compact: bool) -> None:
        self.b, self.rng, self.compact = b, rng, compact
        self.history = rng.randint(1500, 3000)  # the diff
        self.turns: list[str] = []

    def turn(self, what: str) -> str:
        b, rng = self.b, self.rng
        if self.compact and self.history > COMPACT_AT:
            b.llm("compact_history", provider="anthropic", model="claude-3-5-haiku-20241022",
                  input_tokens=SYSTEM_TOKENS + self.history, output_tokens=600,
                  prompt="Summarise the review so far in under 600 tokens.",
                  output="Summary: files read, tests status, open questions.",
                  step="compact_history")
            self.history = 600
        out = rng.randint(60, 180)
        nid = b.llm("agent_turn", provider="anthropic", model="claude-sonnet-4-20250514",
                    input_tokens=SYSTEM_TOKENS + self.history, output_tokens=out,
                    cache_read=SYSTEM_TOKENS + max(0, self.history - 1500),
                    prompt=f"{REVIEW_SYSTEM}\n[history: {len(self.turns)} turns]",
                    output=what, finish_reason="tool_calls", step="agent_turn")
        self.turns.append(nid)
        self.history += out
        return nid

    def tool(self, name: str, args: dict[str, object], result: object, *,
             status: str = "ok") -> str:
        what = f"{name}({args})"
        caller = self.turn(what)
        nid = self.b.tool(name, args, result, caller=caller, dur=4.0 if name == "run_tests"
                          else 0.05, status=status,
                          error_type="TestsFailed" if status == "error" else None)
        self.history += self.rng.randint(400, 1800)
        return nid


def _file(rng: random.Random, path: str) -> str:
    return f"# {path}\n" + "\n".join(f"def f{i}(x):\n    return x * {i}" for i in range(3))


def _tests(suite: str, failed: int) -> dict[str, object]:
    return {"suite": suite, "passed": 41 - failed, "failed": failed,
            "failures": [f"{suite}::test_refund_rounding"] if failed else []}


def _attempt(rng: random.Random, start: float, task_id: str, dims: Mapping[str, str | None]
             ) -> tuple[TraceBuilder, str]:
    b = TraceBuilder(rng, workflow="code_review", task_id=task_id, start=start, **dims)
    b.node("agent", "code_review", dur=0.0, gap=0.0)
    prompt = "Classify this PR as bugfix/feature/refactor/docs. One word."
    if pick(rng, RATES["classify"]) is not None:
        r = rng.randint(0, 32)
        c = b.llm("classify_change", provider="openai", model="o3-mini", input_tokens=1900,
                  output_tokens=r + 2, reasoning=r, prompt=prompt, output="bugfix",
                  step="classify_change")
        b.label("routing.reasoning_overkill", [c], note=f"o3-mini with {r} reasoning tokens")
    else:
        b.llm("classify_change", provider="openai", model="gpt-4o-mini", input_tokens=1900,
              output_tokens=2, prompt=prompt, output="bugfix", step="classify_change")
    waste = pick(rng, RATES["loop"])
    loop = _Loop(b, rng, compact=waste != "bloat.history_growth")
    files = rng.sample(REPO_FILES, len(REPO_FILES))
    suite = rng.choice(TEST_SUITES)
    n_reads = rng.randint(8, 10) if waste == "bloat.history_growth" else rng.randint(2, 4)
    for path in files[:n_reads]:  # distinct files: the same tool on different targets
        loop.tool("read_file", {"path": path}, _file(rng, path))
    if waste == "churn.cycle":
        a, c = files[0], files[1]
        ids = [loop.tool("read_file", {"path": p}, _file(rng, p)) for p in (a, c) * 3]
        b.label(waste, ids, note=f"read_file {a} / {c} alternating")
    if waste == "churn.tight_loop":
        # The runner itself succeeds (status ok) and reports the same two failures each time:
        # a tight loop, not an error loop.
        ids = [loop.tool("run_tests", {"suite": suite}, _tests(suite, 2)) for _ in range(3)]
        b.label(waste, ids, note="run_tests 3 times, same failure, no edit between")
    elif waste == "negative:rerun_tests_after_edit":
        r1 = loop.tool("run_tests", {"suite": suite}, _tests(suite, 1), status="error")
        loop.tool("edit_file", {"path": files[0], "patch": "@@ -3 +3 @@ round half-even"},
                  {"ok": True})
        r2 = loop.tool("run_tests", {"suite": suite}, _tests(suite, 0))
        b.label("churn.tight_loop", [r1, r2], negative=True, note="tests re-run after an edit")
    else:
        loop.tool("run_tests", {"suite": suite}, _tests(suite, 0))
    final = loop.tool("post_comment", {"pr": task_id, "body_chars": rng.randint(400, 1500)},
                      {"comment_id": rng.randrange(10**7)})
    if waste == "bloat.history_growth":
        b.label(waste, list(loop.turns), note=f"{len(loop.turns)} turns, no compaction")
    return b, final


def code_review_task(rng: random.Random, *, task_id: str, start: float, w47: bool
                     ) -> TaskResult:
    dims = {"team": "platform", "feature": "pr_review", "environment": "ci",
            "service_name": "review-agent", "user_id": f"dev-{rng.randrange(60):02d}"}
    b, final = _attempt(rng, start, task_id, dims)
    ok = rng.random() < 0.9
    return TaskResult([b], "success" if ok else "failure", "review_posted", None, final)
