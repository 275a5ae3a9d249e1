r"""The digest as Markdown that fits one chat message or email.

Trace ids link to the trace page ``{base_url}/traces/{id}``. Markdown tables are avoided on purpose:
Slack's ``mrkdwn`` does not render them, while bullet lists read the same everywhere. The
body stays under ``CHAT_LIMIT`` characters for a full week (checked by the tests).

Two flavours: ``markdown`` (``GET /digest/weekly?format=md``, email) and ``slack`` (the
webhook's ``text``). Every string a producer chose — workflow names, path signatures, trace
ids, and the texts quoting them — is escaped for its flavour, so none can format the message,
mention ``<!channel>``, hide a link (``<https://evil|click>``) or break out of its line: names
go into code spans (a backtick in them becomes ``ˋ``, a line break a space), free text is
backslash-escaped (Markdown) or has ``& < >`` as entities and its ``* _ ~`` markers defused
(Slack, which has no escape character), and links are built only from ``base_url`` with the
trace id percent-encoded (docs/digest.md, "Escaping").

>>> usd(1234.5), usd(0.01234), signed_usd(-2.5), signed_usd(None)
('$1,234.50', '$0.0123', '−$2.50', 'n/a')
>>> code("<!channel> *x*", "slack"), code("a`b", "markdown")
('`&lt;!channel&gt; *x*`', '`aˋb`')
>>> print(text("see <https://evil|click> *now*", "markdown"))
see \<https://evil\|click\> \*now\*
"""

from __future__ import annotations

import math
import re
from typing import Literal
from urllib.parse import quote

from analyzers.digest_types import Digest, LeverSplit

__all__ = [
    "CHAT_LIMIT",
    "LEVER_LABELS",
    "MD_TOP",
    "Flavor",
    "code",
    "finite",
    "pct",
    "render_markdown",
    "signed_usd",
    "text",
    "trace_url",
    "usd",
]

# Slack advises keeping a message's text under 4,000 characters (chat.postMessage docs).
CHAT_LIMIT = 4000
# To stay under CHAT_LIMIT on a busy week the message lists the top 5 paths and findings, the
# 6 costliest workflows and codes; the JSON and HTML digests carry all of them.
MD_TOP = 5
MD_CODES = 6
MD_WORKFLOWS = 6
# Longest path signature or fix text quoted in the message; the rest is elided with "…".
MD_TEXT = 120
LEVER_LABELS = {"cost_per_token": "cost/token", "tokens_per_attempt": "tokens/attempt",
                "attempts_per_outcome": "attempts/outcome"}

Flavor = Literal["markdown", "slack"]
# Line breaks (and every other control character) would end a list item: one line each.
_ONE_LINE = {c: " " for c in (*range(32), 0x7F, 0x85, 0x2028, 0x2029)}
# Slack's own escaping (api.slack.com "Formatting text": escape &, < and >): it also disarms
# <!channel>, <@user> and <url|text>, which need a literal "<".
_SLACK = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# Markdown: every ASCII punctuation character may be backslash-escaped (CommonMark §2.4);
# these can format, link, or open HTML or an entity mid-line (free text never starts a line).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
# Slack has no escape character: a zero-width space after a marker keeps it from pairing.
_SLACK_MARK = re.compile(r"([*_~`])")


def code(name: str, flavor: Flavor) -> str:
    """A producer's name as an inline code span, inert in Markdown and in Slack."""
    t = (name or "-").translate(_ONE_LINE).replace("`", "ˋ")
    return f"`{t.translate(_SLACK) if flavor == 'slack' else t}`"


def text(value: str, flavor: Flavor) -> str:
    """Free text that may quote a producer's strings, escaped for ``flavor``."""
    t = value.translate(_ONE_LINE)
    if flavor == "slack":
        return _SLACK_MARK.sub("\\1\u200b", t.translate(_SLACK))
    return _MD_SPECIAL.sub(r"\\\1", t)


def usd(x: float | None) -> str:
    """Dollars: cents at $1 and above, four decimals below (per-outcome costs are small);
    ``n/a`` for no value or a non-finite one (never "$inf")."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"${x:,.2f}" if abs(x) >= 1 or x == 0 else f"${x:,.4f}"


def signed_usd(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return ("+" if x >= 0 else "−") + usd(abs(x))


def pct(share: float | None) -> str:
    return "n/a" if share is None or not math.isfinite(share) else f"{share * 100:.0f}%"


def finite(x: float | None) -> bool:
    """Whether ``x`` is a number to show (not None, inf or NaN)."""
    return x is not None and math.isfinite(x)


def trace_url(base_url: str, trace_id: str) -> str:
    """The trace's API URL under the configured ``base_url`` (the id percent-encoded).

    >>> trace_url("http://x/", "a b|<c>")
    'http://x/traces/a%20b%7C%3Cc%3E'
    """
    return f"{base_url.rstrip('/')}/traces/{quote(trace_id, safe='')}"


def _cut(text: str, n: int = MD_TEXT, *, keep_end: bool = False) -> str:
    """Shorten to ``n`` characters; path signatures keep their end, where variants differ.

    >>> _cut("abcdef", 4), _cut("abcdef", 4, keep_end=True)
    ('abc…', '…def')
    """
    if len(text) <= n:
        return text
    return "…" + text[-(n - 1):] if keep_end else text[: n - 1] + "…"


def _more(shown: int, total: int) -> list[str]:
    return [f"_…and {total - shown} more in the JSON and HTML digest._"] if total > shown else []


def _link(base_url: str, trace_id: str, flavor: Flavor) -> str:
    url = trace_url(base_url, trace_id)
    if flavor == "slack":
        label = trace_id[:8].translate(_ONE_LINE).replace("|", "¦").translate(_SLACK)
        return f"<{url}|{label}>"
    return f"[{text(trace_id[:8], flavor)}]({url})"


def lever_text(levers: LeverSplit) -> str:
    parts = ((k, getattr(levers, k)) for k in LEVER_LABELS)
    return ", ".join(f"{LEVER_LABELS[k]} {signed_usd(v)}" for k, v in parts)


def _headline(d: Digest) -> str:
    h = d.headline
    change = (f"{signed_usd(h.change_usd)}"
              + (f", {h.change_pct:+.1f}%" if finite(h.change_pct) else "")
              + f" vs {d.previous_week}")
    waste = f"{usd(h.waste_usd)}" + (f" ({h.waste_pct:.1f}%)" if finite(h.waste_pct) else "")
    return (f"**Spend {usd(h.spend_usd)}** ({change}) · {h.traces} traces · "
            f"{h.outcomes} successful outcomes · **{usd(h.cost_per_outcome_usd)} per outcome** · "
            f"waste found {waste}")


def _workflows(d: Digest, flavor: Flavor) -> list[str]:
    lines = ["", "*Cost per successful outcome*"]
    for w in d.workflows[:MD_WORKFLOWS]:
        line = (f"- {code(w.workflow, flavor)}: {usd(w.cost_per_outcome_usd)} "
                f"(was {usd(w.previous_cost_per_outcome_usd)}, {signed_usd(w.change_usd)})")
        if w.levers is not None:
            line += (f" — mostly **{LEVER_LABELS[w.levers.dominant]}**"
                     f" ({lever_text(w.levers)})")
        elif w.note:
            line += f" — {text(w.note, flavor)}"
        if w.baseline_cost_per_outcome_usd is not None:
            line += (f"; baseline {usd(w.baseline_cost_per_outcome_usd)}, saved "
                     f"{signed_usd(w.savings_vs_baseline_usd)} this week")
        lines.append(line)
    if not d.workflows:
        lines.append("- no workflow ran this week")
    return lines + _more(MD_WORKFLOWS, len(d.workflows))


def _savings(d: Digest, flavor: Flavor, *, short: bool = False) -> list[str]:
    """What the fixes of the week's top codes would have saved (the simulator's figures);
    ``short``: the total only, when the whole message would not fit one chat message."""
    s = d.savings
    if s is None:
        return []
    pct_text = f" ({s.saving_pct:.1f}%)" if finite(s.saving_pct) else ""
    total = (f"spend {usd(s.spend_usd)} → {usd(s.after_spend_usd)}, "
             f"**{usd(s.saving_usd)} saved{pct_text}**")
    if short:
        return ["", f"*What the top fixes would have saved*: {total} — codes and workflows "
                "in the JSON and HTML digest."]
    codes = ", ".join(code(c, flavor) for c in s.fix_codes)
    lines = ["", f"*What the top fixes would have saved* (fixing {codes}): {total}"]
    for w in s.workflows[:MD_WORKFLOWS]:
        lines.append(f"- {code(w.workflow, flavor)}: {usd(w.cost_per_outcome_usd)} → "
                     f"{usd(w.after_cost_per_outcome_usd)} per outcome "
                     f"({usd(w.saving_usd)} saved)")
    lines += _more(MD_WORKFLOWS, len(s.workflows))
    if s.risks:
        lines.append("Outcomes at risk: " + "; ".join(
            f"{code(r.workflow or '-', flavor)} {code(r.step or '-', flavor)} on "
            f"{code(r.to_model, flavor)}: {text(r.reason, flavor)}" for r in s.risks))
    else:
        lines.append("Outcomes at risk: none flagged (the fixes drop waste, not steps).")
    return lines


def render_markdown(d: Digest, *, base_url: str, flavor: Flavor = "markdown") -> str:
    """The digest as Markdown (chat/email), or as Slack ``mrkdwn`` (``flavor="slack"``). The
    savings section shrinks to its total when the full one would pass :data:`CHAT_LIMIT`."""
    full = _render(d, base_url, flavor, short_savings=False)
    if len(full) < CHAT_LIMIT or d.savings is None:
        return full
    return _render(d, base_url, flavor, short_savings=True)


def _render(d: Digest, base_url: str, flavor: Flavor, *, short_savings: bool) -> str:
    f = flavor
    out = [f"*tracestore weekly digest — {code(d.project, f)}, {d.week} "
           f"({d.week_start} to {d.week_end})*", "", _headline(d)]
    out += _workflows(d, f)
    out += _savings(d, f, short=short_savings)
    if d.paths:
        out += ["", "*Top wasteful paths*"]
        for i, p in enumerate(d.paths[:MD_TOP], 1):
            ex = (f" e.g. {_link(base_url, p.example_trace_ids[0], f)}"
                  if p.example_trace_ids else "")
            out.append(f"{i}. {code(p.workflow, f)} {usd(p.waste_usd)} waste in {p.traces} "
                       f"traces, success {pct(p.success_rate)}:{ex} "
                       f"{code(_cut(p.signature, 70, keep_end=True), f)}")
        out += _more(MD_TOP, len(d.paths))
    if d.findings:
        out += ["", "*Top findings*"]
        for i, g in enumerate(d.findings[:MD_TOP], 1):
            ex = (f" e.g. {_link(base_url, g.example_trace_ids[0], f)}"
                  if g.example_trace_ids else "")
            out.append(f"{i}. {code(g.code, f)} in {code(g.workflow or '-', f)}: "
                       f"{usd(g.wasted_usd)} ({g.count}×).{ex} Fix: {text(_cut(g.fix), f)}")
        out += _more(MD_TOP, len(d.findings))
    if d.waste_by_code:
        out += ["", "*Waste by code* (this week, change)"]
        out.append(" · ".join(f"{code(c.code, f)} {usd(c.wasted_usd)} "
                              f"({signed_usd(c.change_usd)})"
                              for c in d.waste_by_code[:MD_CODES]))
        out += _more(MD_CODES, len(d.waste_by_code))
    c = d.coverage
    out += ["", f"Human overrides: {d.overrides} outputs rejected or replaced, "
                f"{usd(d.override_cost_usd)}.",
            f"Coverage: {pct(c.unpriced_share)} of model calls unpriced "
            f"({c.unpriced_calls}/{c.priced_kind_calls}) · {pct(c.untagged_share)} of spend "
            f"untagged · {pct(c.outcome_spend_share)} of spend linked to an outcome.",
            f"Maturity: **{d.maturity.rung}** — {text(d.maturity.reasons[-1], f)}. "
            f"Next: {text(d.maturity.next_step, f)}."]
    out += [f"_{text(n, f)}_" for n in d.notes]
    return "\n".join(out) + "\n"
