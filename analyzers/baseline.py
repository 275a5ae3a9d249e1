"""Per-workflow baselines from the corpus: step norms, success by model tier, observed rates.

A :class:`StepSample` is one model call reduced to what the norms need; the analysis runtime
collects them from every stored trace (:func:`collect_samples`) and folds them with numpy into
one :class:`WorkflowBaseline` per workflow (:func:`compute_baselines`), refreshed per analysis
run, not per finding (issue 5, item 4).

- Step norms: median and MAD (median absolute deviation) of input tokens per step — the robust
  z-score inputs of ``bloat.oversized_prompt`` (docs/methods.md B5).
- Success by tier: per (step, tier) the number of calls and how many succeeded — the corpus
  evidence of ``routing.cheaper_model_sufficient`` (docs/methods.md R2, RouteLLM ``sw_ranking``
  idea) — plus per (step, model) how often reasoning models barely reasoned (R3).
- Observed rates: per model (across all workflows), USD per input and per output token
  fitted by least squares on ``cost ≈ a·input + b·output`` over uncached calls, for
  counterfactual pricing when the runtime gives no price table.

"The same step" (docs/methods.md, "Routing") is decided in one place, :func:`step_keys`.

>>> import networkx as nx
>>> G = nx.DiGraph(trace_id="t", workflow="w")
>>> G.add_node("a", kind="agent", name="triage", order=0)
>>> G.add_node("b", kind="llm", name="chat gpt-4o", model="gpt-4o", parent_id="a", order=1,
...            input_tokens=100, output_tokens=10, cost_usd=0.00035, status="ok")
>>> step_key(G, "b")
'triage/llm#0'
>>> b = compute_baselines(collect_samples(G))["w"]
>>> b.steps["triage/llm#0"].median_input
100.0
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import networkx as nx
import numpy as np

from analyzers.graph import MODEL_KINDS, edges_of_kind, node_cost, nodes_in_order
from analyzers.tiers import is_reasoning, model_tier

__all__ = [
    "LOW_REASONING_SHARE",
    "Rates",
    "ReasoningStats",
    "StepNorm",
    "StepSample",
    "TierStats",
    "WorkflowBaseline",
    "baselines_from_dict",
    "baselines_to_dict",
    "collect_samples",
    "compute_baselines",
    "own_step_key",
    "rejected_nodes",
    "step_key",
    "step_keys",
    "trace_outcome",
]

# docs/methods.md R3: a reasoning model "barely reasons" below 10% reasoning share of output
# or at most 50 output tokens.
LOW_REASONING_SHARE = 0.10
LOW_REASONING_OUTPUT = 50
# Output priced at 4x input when a model's samples cannot separate the two rates: the ratio
# of OpenAI's and Anthropic's list prices for their flagship lines (e.g. gpt-4o $2.50/$10).
OUTPUT_INPUT_RATIO = 4.0

# Span names that say which API was called rather than which step ran (OTel GenAI
# "{operation} {model}", OpenInference/LangChain class names).
_GENERIC = re.compile(
    r"^(chat|text_completion|completion|generate_content|embeddings?|llm|invoke_agent|"
    r"execute_tool|openai\.[\w.]+|anthropic\.[\w.]+|chatopenai|chatanthropic|chatlitellm|"
    r"azurechatopenai|litellm[\w.]*|bedrock[\w.]*|vertexai[\w.]*)(\s.*)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class StepSample:
    """One model call, reduced to what the baselines need."""

    workflow: str
    step: str
    kind: str
    model: str
    tier: str | None
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    success: bool
    cost_usd: float | None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class StepNorm:
    n: int
    median_input: float
    mad_input: float


@dataclass(frozen=True)
class TierStats:
    n: int
    successes: int
    top_model: str  # the tier's most used model on the step (the first by name on a tie)
    top_tied: tuple[str, ...] = ()  # every model tied for most used, when more than one

    @property
    def rate(self) -> float:
        return self.successes / self.n if self.n else 0.0


@dataclass(frozen=True)
class ReasoningStats:
    n: int
    low: int  # calls that barely reasoned (LOW_REASONING_SHARE / LOW_REASONING_OUTPUT)


@dataclass(frozen=True)
class Rates:
    """USD per token by token class."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True)
class WorkflowBaseline:
    workflow: str
    steps: dict[str, StepNorm] = field(default_factory=dict)
    tier_success: dict[str, dict[str, TierStats]] = field(default_factory=dict)
    reasoning: dict[str, dict[str, ReasoningStats]] = field(default_factory=dict)
    model_rates: dict[str, Rates] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (for storing a baseline between runs)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkflowBaseline:
        return cls(
            workflow=d["workflow"],
            steps={k: StepNorm(**v) for k, v in d.get("steps", {}).items()},
            tier_success={s: {t: TierStats(**{**v, "top_tied": tuple(v.get("top_tied", ()))})
                              for t, v in m.items()}
                          for s, m in d.get("tier_success", {}).items()},
            reasoning={s: {t: ReasoningStats(**v) for t, v in m.items()}
                       for s, m in d.get("reasoning", {}).items()},
            model_rates={k: Rates(**v) for k, v in d.get("model_rates", {}).items()},
        )


def baselines_to_dict(baselines: Mapping[str, WorkflowBaseline]) -> dict[str, Any]:
    """``baselines`` (workflow -> baseline, as :func:`compute_baselines` makes them) as plain
    dicts, lists and numbers, for a JSON text that :func:`baselines_from_dict` turns back into
    equal baselines (the analysis runtime stores them so that every worker process shares one
    computation). Floats stay Python floats: an encoder writing their shortest repr (orjson,
    the stdlib) reads back the same value. Raises ``TypeError`` for a value that is not a
    :class:`WorkflowBaseline`.

    >>> b = {"w": WorkflowBaseline("w", steps={"s": StepNorm(3, 100.0, 0.1)},
    ...      tier_success={"s": {"small": TierStats(3, 2, "a", ("a", "b"))}})}
    >>> baselines_from_dict(baselines_to_dict(b)) == b
    True
    """
    out: dict[str, Any] = {}
    for wf, b in baselines.items():
        if not isinstance(b, WorkflowBaseline):
            raise TypeError(f"baseline of {wf!r} is a {type(b).__name__}, not a WorkflowBaseline")
        out[wf] = b.to_dict()
    return out


def baselines_from_dict(d: Mapping[str, Any]) -> dict[str, WorkflowBaseline]:
    """The baselines :func:`baselines_to_dict` wrote, in the same workflow order."""
    return {wf: WorkflowBaseline.from_dict(v) for wf, v in d.items()}


def _declared_step(a: Mapping[str, Any]) -> str | None:
    if a.get("step"):
        return str(a["step"])
    attrs = a.get("attributes")
    if not attrs:
        return None
    for key in ("tracestore.step", "gen_ai.prompt.name", "llm.prompt_template.name",
                "langfuse.prompt.name", "llm.prompt_template.template"):
        if attrs.get(key):
            return str(attrs[key])[:200]
    return None


@lru_cache(maxsize=8192)
def _generic(name: str, model: str) -> bool:
    """A span name that says which API ran, not which step (``chat gpt-4o``)."""
    return bool(_GENERIC.match(name)) or bool(model and model in name)


def own_step_key(a: Mapping[str, Any]) -> str | None:
    """The step key of a node (attributes ``a``) when it does not depend on the node's
    siblings — the explicit ``step``, a prompt name or template attribute, or a span name that
    is not generic — else None (:func:`step_keys` then keys it by its parent and position)."""
    if a.get("step") or a.get("attributes"):
        declared = _declared_step(a)
        if declared:
            return declared
    name = a.get("name") or ""
    if type(name) is not str:
        name = str(name)
    if name:
        model = a.get("model") or ""
        if not _generic(name, model if type(model) is str else str(model)):
            return name
    return None


def step_keys(G: nx.DiGraph[str], kinds: frozenset[str] | None = None,
              order: Iterable[str] | None = None,
              attrs: Mapping[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """The "same step" key of every node (of ``kinds``, default all) (docs/methods.md): the
    explicit ``step``, else a prompt name or template attribute, else the span name — or, for
    generic names such as ``chat gpt-4o``, the parent's name plus the position among
    same-kind siblings. ``order``: the nodes in trace order (a caller that has them may pass
    only those of ``kinds``); ``attrs``: node attributes by id, if the caller has them."""
    keys: dict[str, str] = {}
    seen: dict[tuple[str | None, str], int] = {}
    prefixes: dict[Any, str] = {}  # parent id → "<parent name>/"
    nodes: Mapping[Any, dict[str, Any]] = G.nodes if attrs is None else attrs
    for n in order if order is not None else nodes_in_order(G):
        a = nodes[n]
        kind = a.get("kind")
        if kinds is not None and kind not in kinds:
            continue
        own = own_step_key(a)
        if own is not None:
            keys[n] = own
            continue
        parent = a.get("parent_id")
        kind = str(kind or "")
        sk = (parent, kind)
        pos = seen.get(sk, 0)
        seen[sk] = pos + 1
        prefix = prefixes.get(parent)
        if prefix is None:
            pname = str(nodes[parent].get("name") or "") if parent in nodes else ""
            prefix = prefixes[parent] = f"{pname or '(root)'}/"
        keys[n] = f"{prefix}{kind}#{pos}"
    return keys


def step_key(G: nx.DiGraph[str], node_id: str) -> str:
    """:func:`step_keys` for one node."""
    return step_keys(G)[node_id]


def trace_outcome(G: nx.DiGraph[str]) -> str | None:
    """The trace's business outcome status: the last outcome node's, else ``G.graph``'s."""
    status = None
    for n in nodes_in_order(G):
        a = G.nodes[n]
        if a.get("kind") == "outcome" and a.get("outcome_status"):
            status = str(a["outcome_status"])
    return status or G.graph.get("outcome_status")


def rejected_nodes(G: nx.DiGraph[str]) -> dict[str, str]:
    """Nodes a human rejected or overrode → the human node's id."""
    out: dict[str, str] = {}
    # the edges as G.edges(data="kinds") lists them; the adjacency holds no reference to the
    # graph, G.edges would (a cached view: the graph becomes a cycle, freed only by the gc)
    edges = ((u, v, d.get("kinds")) for u, nbrs in G.adjacency() for v, d in nbrs.items())
    for u, v, kinds in edges:
        if kinds and "reviews" in kinds and G.nodes[v].get("decision") in ("reject", "override"):
            out.setdefault(u, v)
    return out


def collect_samples(G: nx.DiGraph[str]) -> list[StepSample]:
    """One :class:`StepSample` per model call that names its model."""
    keys = step_keys(G, kinds=MODEL_KINDS)
    outcome = trace_outcome(G)
    failed_trace = outcome in ("failure", "escalated")
    rejected = rejected_nodes(G)
    # an attempt that was retried or escalated did not succeed, whatever the trace's outcome
    retried = {u for u, _ in edges_of_kind(G, "retry_of")}
    wf = str(G.graph.get("workflow") or "")
    out: list[StepSample] = []
    for n in nodes_in_order(G):
        a = G.nodes[n]
        if a.get("kind") not in MODEL_KINDS or not a.get("model"):
            continue
        model = str(a["model"])
        out.append(StepSample(
            workflow=wf, step=keys[n], kind=str(a["kind"]), model=model, tier=model_tier(model),
            input_tokens=int(a.get("input_tokens") or 0),
            output_tokens=int(a.get("output_tokens") or 0),
            reasoning_tokens=int(a.get("reasoning_tokens") or 0),
            success=a.get("status", "ok") == "ok" and not failed_trace and n not in rejected
            and n not in retried,
            cost_usd=node_cost(a) if a.get("cost_usd") is not None else None,
            cache_read_tokens=int(a.get("cache_read_tokens") or 0),
            cache_write_tokens=int(a.get("cache_write_tokens") or 0),
        ))
    return out


def _fit_rates(rows: list[tuple[int, int, float]]) -> Rates | None:
    if not rows:
        return None
    arr = np.array(rows, dtype=np.float64)
    X, y = arr[:, :2], arr[:, 2]
    if np.linalg.matrix_rank(X) == 2:
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        if coef[0] > 0 and coef[1] >= 0:
            return Rates(input=float(coef[0]), output=float(coef[1]))
    denom = X[:, 0] + OUTPUT_INPUT_RATIO * X[:, 1]
    ok = denom > 0
    if not ok.any():
        return None
    a = float(np.median(y[ok] / denom[ok]))
    return Rates(input=a, output=OUTPUT_INPUT_RATIO * a) if a > 0 else None


def _most_used(counts: Mapping[str, int]) -> tuple[str, tuple[str, ...]]:
    """(the most used model, first by name on a tie; every model tied with it when several).

    >>> _most_used({"gpt-4o-mini": 40, "claude-haiku-4-5": 40, "x": 3})
    ('claude-haiku-4-5', ('claude-haiku-4-5', 'gpt-4o-mini'))
    >>> _most_used({"gpt-4o-mini": 40, "claude-haiku-4-5": 10})
    ('gpt-4o-mini', ())
    """
    top = max(counts.values())
    tied = tuple(sorted(m for m, k in counts.items() if k == top))
    return tied[0], (tied if len(tied) > 1 else ())


def compute_baselines(samples: Iterable[StepSample]) -> dict[str, WorkflowBaseline]:
    """Fold samples into one :class:`WorkflowBaseline` per workflow (numpy medians/MADs)."""
    inputs: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    tiers: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: [0, 0])))
    tier_models: dict[tuple[str, str, str], dict[str, int]] = defaultdict(
        lambda: defaultdict(int))
    reasoning: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: [0, 0])))
    # a model's rates do not depend on the workflow: fitted on the whole corpus
    rate_rows: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    workflows: set[str] = set()
    for s in samples:
        if s.kind == "llm":
            inputs[s.workflow][s.step].append(s.input_tokens)
        if s.tier:
            c = tiers[s.workflow][s.step][s.tier]
            c[0] += 1
            c[1] += int(s.success)
            tier_models[(s.workflow, s.step, s.tier)][s.model] += 1
        if is_reasoning(s.model) and s.output_tokens and s.reasoning_tokens:
            r = reasoning[s.workflow][s.step][s.model]
            r[0] += 1
            r[1] += int(s.reasoning_tokens < LOW_REASONING_SHARE * s.output_tokens
                        or s.output_tokens <= LOW_REASONING_OUTPUT)
        if s.cost_usd and not s.cache_read_tokens and not s.cache_write_tokens:
            rate_rows[s.model].append((s.input_tokens, s.output_tokens, s.cost_usd))
        workflows.add(s.workflow)
    rates = {m: fit for m, rows in sorted(rate_rows.items())
             if (fit := _fit_rates(rows)) is not None}
    out: dict[str, WorkflowBaseline] = {}
    for wf in sorted(workflows):
        steps: dict[str, StepNorm] = {}
        for step, xs in inputs[wf].items():
            x = np.asarray(xs, dtype=np.float64)
            med = float(np.median(x))
            steps[step] = StepNorm(len(xs), med, float(np.median(np.abs(x - med))))
        ts = {
            step: {
                t: TierStats(c[0], c[1], *_most_used(tier_models[(wf, step, t)]))
                for t, c in sorted(by_tier.items())
            }
            for step, by_tier in tiers[wf].items()
        }
        rs = {step: {m: ReasoningStats(c[0], c[1]) for m, c in sorted(bm.items())}
              for step, bm in reasoning[wf].items()}
        out[wf] = WorkflowBaseline(wf, steps, ts, rs, rates)
    return out
