"""The digest as one self-contained HTML page: inline CSS, inline SVG charts, no script,
no web font and no external URL except the trace links themselves.

>>> from analyzers.digest import build_digest
>>> from analyzers.digest_types import WeekAggregates
>>> d = build_digest(project="p", week="2026-W47", current=WeekAggregates(),
...                  previous=WeekAggregates(), findings=())
>>> page = render_html(d, base_url="http://x")
>>> "<script" in page, page.count("<svg")
(False, 3)
"""

from __future__ import annotations

from datetime import date, timedelta
from html import escape

from analyzers.digest_types import Digest
from tracestore.digest.markdown import LEVER_LABELS, finite, pct, signed_usd, trace_url, usd
from tracestore.digest.svg import code_bars, day_bars, lever_bars

__all__ = ["render_html"]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:960px;
color:#222;padding:0 1rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd}
.cards{display:flex;flex-wrap:wrap;gap:1rem}.card{border:1px solid #ddd;border-radius:6px;
padding:.6rem 1rem;min-width:9rem}.card b{display:block;font-size:1.3rem}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:.3rem .5rem;
text-align:left;vertical-align:top}td.n,th.n{text-align:right;white-space:nowrap}
code{font-size:.85em}.muted{color:#666}.rung{font-weight:bold}
"""


def _e(s: object) -> str:
    return escape(str(s))


def _links(base_url: str, ids: tuple[str, ...]) -> str:
    def short(t: str) -> str:
        return f"{t[:6]}…{t[-6:]}" if len(t) > 14 else t

    return " ".join(f'<a href="{_e(trace_url(base_url, t))}"><code>{_e(short(t))}</code></a>'
                    for t in ids)


def _table(head: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    th = "".join(f'<th class="n">{h}</th>' if i in numeric else f"<th>{h}</th>"
                 for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _cards(d: Digest) -> str:
    h = d.headline
    change = signed_usd(h.change_usd) + (f" ({h.change_pct:+.1f}%)"
                                         if finite(h.change_pct) else "")
    cards = [("Spend", usd(h.spend_usd), f"{change} vs {d.previous_week}"),
             ("Cost per outcome", usd(h.cost_per_outcome_usd), f"{h.outcomes} outcomes"),
             ("Waste found", usd(h.waste_usd),
              f"{h.waste_pct:.1f}% of spend" if finite(h.waste_pct) else ""),
             ("Traces", str(h.traces), ""),
             ("Maturity", d.maturity.rung, d.maturity.next_step)]
    return '<div class="cards">' + "".join(
        f'<div class="card" data-card="{_e(k)}">{_e(k)}<b>{_e(v)}</b>'
        f'<span class="muted">{_e(sub)}</span></div>' for k, v, sub in cards) + "</div>"


def _workflows(d: Digest) -> str:
    rows = []
    for w in d.workflows:
        lever = (f"<b>{_e(LEVER_LABELS[w.levers.dominant])}</b>" if w.levers else _e(w.note))
        rows.append([f"<code>{_e(w.workflow)}</code>", _e(usd(w.spend_usd)),
                     _e(usd(w.cost_per_outcome_usd)), _e(usd(w.previous_cost_per_outcome_usd)),
                     _e(signed_usd(w.change_usd)), lever,
                     _e(usd(w.baseline_cost_per_outcome_usd)),
                     _e(signed_usd(w.savings_vs_baseline_usd))])
    return _table(["workflow", "spend", "$/outcome", "last week", "change", "main lever",
                   "baseline", "saved vs baseline"], rows, {1, 2, 3, 4, 6, 7})


def _savings(d: Digest) -> str:
    """The savings section: spend before and after the week's top fixes, cost per outcome
    per workflow before and after, and the outcomes the simulator flags as at risk."""
    s = d.savings
    if s is None:
        return "<p>No waste was booked this week: nothing to save.</p>"
    codes = ", ".join(f"<code>{_e(c)}</code>" for c in s.fix_codes)
    pct_text = f" ({s.saving_pct:.1f}%)" if finite(s.saving_pct) else ""
    rows = [[f"<code>{_e(w.workflow)}</code>", _e(usd(w.spend_usd)), _e(usd(w.after_spend_usd)),
             _e(usd(w.saving_usd)), _e(usd(w.cost_per_outcome_usd)),
             _e(usd(w.after_cost_per_outcome_usd))] for w in s.workflows]
    risks = ("<p>Outcomes at risk: none flagged (the fixes drop waste, not steps).</p>"
             if not s.risks else "<p>Outcomes at risk:</p><ul>" + "".join(
                 f"<li><code>{_e(r.workflow or '-')}</code> <code>{_e(r.step or '-')}</code> "
                 f"on <code>{_e(r.to_model)}</code>: {_e(r.reason)}</li>" for r in s.risks)
             + "</ul>")
    return (f'<p data-savings="{_e(s.saving_usd)}">Fixing {codes}: spend '
            f"{_e(usd(s.spend_usd))} → {_e(usd(s.after_spend_usd))}, "
            f"<b>{_e(usd(s.saving_usd))} saved{_e(pct_text)}</b>.</p>"
            + _table(["workflow", "spend", "after fixes", "saved", "$/outcome",
                      "$/outcome after"], rows, {1, 2, 3, 4, 5}) + risks)


def render_html(d: Digest, *, base_url: str) -> str:
    """The whole page as a string."""
    monday = date.fromisoformat(d.week_start)
    days = [(monday + timedelta(days=i)).isoformat() for i in range(len(d.daily_spend_usd))]
    levers = [(w.workflow, {k: float(getattr(w.levers, k)) for k in LEVER_LABELS})
              for w in d.workflows if w.levers is not None]
    paths = [[f"<code>{_e(p.workflow)}</code>", f"<code>{_e(p.signature)}</code>",
              str(p.traces), _e(pct(p.success_rate)), _e(usd(p.waste_usd)),
              _e(usd(p.cost_per_outcome_usd)), _links(base_url, p.example_trace_ids)]
             for p in d.paths]
    findings = [[f"<code>{_e(g.code)}</code>", f"<code>{_e(g.workflow or '-')}</code>",
                 str(g.count), _e(usd(g.wasted_usd)), _e(g.fix),
                 _links(base_url, g.example_trace_ids)] for g in d.findings]
    c = d.coverage
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>tracestore digest {_e(d.project)} {_e(d.week)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Weekly churn digest — {_e(d.project)}, {_e(d.week)} "
        f'<span class="muted">({_e(d.week_start)} to {_e(d.week_end)})</span></h1>',
        _cards(d),
        *(f'<p class="muted">{_e(n)}</p>' for n in d.notes),
        "<h2>Spend by day</h2>", day_bars(days, d.daily_spend_usd),
        "<h2>Cost per successful outcome</h2>", _workflows(d),
        "<h2>What moved cost per outcome</h2>", lever_bars(levers),
        "<h2>What the top fixes would have saved</h2>", _savings(d),
        "<h2>Top wasteful paths</h2>",
        _table(["workflow", "path", "traces", "success", "waste", "$/outcome", "examples"],
               paths, {2, 3, 4, 5}) if paths else "<p>No wasteful path this week.</p>",
        "<h2>Top findings</h2>",
        _table(["code", "workflow", "count", "waste", "fix", "examples"], findings, {2, 3})
        if findings else "<p>No findings this week.</p>",
        "<h2>Waste by code</h2>",
        code_bars([(w.code, w.wasted_usd, w.previous_wasted_usd) for w in d.waste_by_code]),
        "<h2>Coverage and maturity</h2><ul>",
        f"<li>Human overrides: {d.overrides} outputs rejected or replaced, "
        f"{_e(usd(d.override_cost_usd))}</li>",
        f"<li>Unpriced model calls: {_e(pct(c.unpriced_share))} "
        f"({c.unpriced_calls} of {c.priced_kind_calls})</li>",
        f"<li>Untagged spend: {_e(pct(c.untagged_share))} ({_e(usd(c.untagged_spend_usd))})</li>",
        f"<li>Spend linked to an outcome: {_e(pct(c.outcome_spend_share))}</li>",
        f'<li>Maturity: <span class="rung" data-rung="{_e(d.maturity.rung)}">'
        f"{_e(d.maturity.rung)}</span> — " + "; ".join(_e(r) for r in d.maturity.reasons)
        + f". Next: {_e(d.maturity.next_step)}.</li></ul>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
