"""Inline SVG for the pages: spend per day and the trace waterfall. No script, no external
file; every producer string is escaped.

>>> svg = day_chart([("2026-11-16", 1.0), ("2026-11-17", 0.0)])
>>> svg.count("<rect"), 'data-chart="spend-by-day"' in svg
(2, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

__all__ = ["WaterfallRow", "day_chart", "waterfall"]

BLUE, ORANGE, GREY = "#0072B2", "#E69F00", "#999999"  # Okabe-Ito palette
FLAGGED = "#C00000"  # not in the palette on purpose: flagged nodes must stand out
KIND_COLOURS = {"llm": BLUE, "embedding": BLUE, "tool": ORANGE, "retrieval": "#009E73",
                "rerank": "#009E73", "human": "#CC79A7"}


def _usd(x: float) -> str:
    return f"${x:,.4f}" if abs(x) < 1 else f"${x:,.2f}"


def day_chart(days: Sequence[tuple[str, float]], width: int = 640, height: int = 160) -> str:
    """Vertical bars of spend per day, labelled with the day and the dollars."""
    top = max((v for _, v in days), default=0.0) or 1.0
    bar = (width - 20) / max(len(days), 1)
    parts = []
    for i, (day, value) in enumerate(days):
        h = (height - 40) * value / top
        x = 10 + i * bar
        parts.append(f'<rect x="{x + 2:.1f}" y="{height - 20 - h:.1f}" width="{bar - 4:.1f}" '
                     f'height="{h:.1f}" fill="{BLUE}"><title>{escape(day)}: {_usd(value)}'
                     f'</title></rect>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 6}" text-anchor="middle">'
                     f'{escape(day[5:])}</text>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 24 - h:.1f}" '
                     f'text-anchor="middle">{_usd(value)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="spend-by-day" role="img" '
            f'aria-label="Spend per day" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">'
            f'<title>Spend per day</title>{"".join(parts)}</svg>')


@dataclass(frozen=True)
class WaterfallRow:
    node: Mapping[str, Any]
    depth: int
    start: float
    end: float
    codes: tuple[str, ...]


def waterfall(rows: Sequence[WaterfallRow], extra_edges: Sequence[tuple[int, int, str]],
              width: int = 900, row_h: int = 22, label_w: int = 300) -> str:
    """One bar per node on a shared time axis (indented by depth), flagged nodes in red with
    their codes, and the non-tree edges (retry_of, uses, reviews, link) drawn as arcs between
    rows. Each row links to the node's detail anchor."""
    t0 = min((r.start for r in rows), default=0.0)
    t1 = max((r.end for r in rows), default=1.0)
    span = (t1 - t0) or 1.0
    plot = width - label_w - 10
    out = []
    for i, r in enumerate(rows):
        y = i * row_h
        x = label_w + plot * (r.start - t0) / span
        w = max(plot * (r.end - r.start) / span, 2.0)
        kind = str(r.node.get("kind"))
        colour = FLAGGED if r.codes else KIND_COLOURS.get(kind, GREY)
        nid = escape(str(r.node.get("node_id")))
        label = f'{kind}: {r.node.get("name") or ""}'
        model = r.node.get("model")
        cost = r.node.get("cost_usd")
        tip = f"{label} {model or ''} {(r.end - r.start) * 1000:.0f} ms"
        tip += f" {_usd(float(cost))}" if cost else ""
        tip += f" [{', '.join(r.codes)}]" if r.codes else ""
        flag = ' data-flagged="1"' if r.codes else ""
        out.append(
            f'<a href="#node-{nid}"><g data-node="{nid}"{flag}>'
            f'<text x="{4 + 12 * r.depth}" y="{y + 15}">{"⚑ " if r.codes else ""}'
            f'{escape(label[:48])}</text>'
            f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="{colour}"><title>{escape(tip)}</title></rect></g></a>')
    for src, dst, kind in extra_edges:
        y1, y2 = src * row_h + row_h / 2, dst * row_h + row_h / 2
        x = width - 8
        out.append(f'<path d="M {x} {y1} C {x - 30} {y1}, {x - 30} {y2}, {x} {y2}" fill="none" '
                   f'stroke="{GREY}" data-edge="{escape(kind)}"><title>{escape(kind)}</title>'
                   f'</path>')
    height = max(len(rows), 1) * row_h
    return (f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="waterfall" role="img" '
            f'aria-label="Trace waterfall" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
            f'<title>Trace waterfall</title>{"".join(out)}</svg>')
