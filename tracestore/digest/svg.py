"""Inline SVG charts for the HTML digest: no script, no font, no external file.

Each function returns one ``<svg>`` element with a ``<title>`` and an ``aria-label`` so the
chart reads in a screen reader, and a ``data-chart`` attribute the browser test looks for.

>>> s = day_bars(("2026-11-16", "2026-11-17"), (1.0, 3.0))
>>> s.startswith('<svg') and s.count("<rect") == 2
True
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from tracestore.digest.markdown import LEVER_LABELS, signed_usd, usd

__all__ = ["code_bars", "day_bars", "lever_bars"]

WIDTH = 640
# Chart palette: Okabe-Ito colour-blind-safe colours (Okabe & Ito 2008).
BLUE, ORANGE, GREEN, GREY = "#0072B2", "#E69F00", "#009E73", "#999999"
LEVER_COLOURS = {"cost_per_token": BLUE, "tokens_per_attempt": ORANGE,
                 "attempts_per_outcome": GREEN}


def _svg(kind: str, title: str, height: int, body: list[str]) -> str:
    t = escape(title)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="{kind}" role="img" '
            f'aria-label="{t}" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">'
            f"<title>{t}</title>" + "".join(body) + "</svg>")


def _text(x: float, y: float, s: str, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{escape(s)}</text>'


def day_bars(days: Sequence[str], values: Sequence[float]) -> str:
    """Vertical bars of spend per day."""
    h, top, bottom = 180, 20, 30
    peak = max(values, default=0.0) or 1.0
    slot = WIDTH / max(len(values), 1)
    body = []
    for i, (day, v) in enumerate(zip(days, values, strict=True)):
        bh = (h - top - bottom) * v / peak
        x = i * slot + slot * 0.15
        body.append(f'<rect x="{x:.1f}" y="{h - bottom - bh:.1f}" width="{slot * 0.7:.1f}" '
                    f'height="{bh:.1f}" fill="{BLUE}"><title>{escape(day)}: {usd(v)}</title>'
                    "</rect>")
        body.append(_text(x + slot * 0.35, h - bottom - bh - 4, usd(v), "middle"))
        body.append(_text(x + slot * 0.35, h - 10, day[5:], "middle"))
    return _svg("spend-by-day", "Spend by day (USD)", h, body)


def code_bars(rows: Sequence[tuple[str, float, float]]) -> str:
    """Horizontal bars of waste by code: this week (orange) over last week (grey)."""
    row_h, label_w = 28, 230
    h = max(len(rows), 1) * row_h + 20
    peak = max((max(a, b) for _, a, b in rows), default=0.0) or 1.0
    span = WIDTH - label_w - 90
    body = []
    for i, (code, now, before) in enumerate(rows):
        y = 10 + i * row_h
        body.append(_text(0, y + 14, code))
        body.append(f'<rect x="{label_w}" y="{y + 2}" width="{span * now / peak:.1f}" '
                    f'height="12" fill="{ORANGE}"><title>{escape(code)} this week: '
                    f"{usd(now)}</title></rect>")
        body.append(f'<rect x="{label_w}" y="{y + 16}" width="{span * before / peak:.1f}" '
                    f'height="5" fill="{GREY}"><title>{escape(code)} last week: '
                    f"{usd(before)}</title></rect>")
        body.append(_text(label_w + span * now / peak + 6, y + 13, usd(now)))
    if not rows:
        body.append(_text(WIDTH / 2, 20, "no waste found", "middle"))
    return _svg("waste-by-code", "Waste by code (USD, this week vs last)", h, body)


def lever_bars(rows: Sequence[tuple[str, dict[str, float]]]) -> str:
    """Per workflow, the change in cost per outcome split by lever, as bars around zero."""
    row_h, label_w = 62, 170
    h = max(len(rows), 1) * row_h + 30
    peak = max((abs(v) for _, parts in rows for v in parts.values()), default=0.0) or 1.0
    half = (WIDTH - label_w - 20) / 2
    zero = label_w + half
    body = [f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{h - 20}" stroke="#333"/>']
    for i, (workflow, parts) in enumerate(rows):
        y = 8 + i * row_h
        body.append(_text(0, y + 20, workflow))
        for j, (lever, v) in enumerate(parts.items()):
            # 45% of the half-width leaves room for the label beside the longest bar.
            w = half * abs(v) / peak * 0.45
            x = zero if v >= 0 else zero - w
            label = f"{LEVER_LABELS[lever]} {signed_usd(v)}"
            body.append(f'<rect x="{x:.1f}" y="{y + j * 17}" width="{w:.1f}" height="14" '
                        f'fill="{LEVER_COLOURS[lever]}"><title>{escape(workflow)}: '
                        f"{escape(label)}</title></rect>")
            tx = zero + w + 4 if v >= 0 else zero - w - 4
            body.append(_text(tx, y + j * 17 + 11, label, "start" if v >= 0 else "end"))
    if not rows:
        body.append(_text(WIDTH / 2, 20, "no comparable workflow this week", "middle"))
    return _svg("levers", "Change in cost per outcome by lever (USD)", h, body)
