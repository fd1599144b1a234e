"""The benchmark chart: Init and warm cost of every variant against bare, as an SVG.

Written by hand rather than with a plotting library, so ``make bench`` needs nothing
beyond the harness: one panel per measure (cold start, first invocation, warm p50),
one group of bars per platform, a bar per variant with its ratio to bare from the same
run, and the defaults budget drawn as a dashed line. Ratios are drawn on a log scale:
the peers reach 9x while our budgets are at 1.1x, and both must stay readable.
"""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import escape

BUDGET_RATIO = 1.10
MEASURES = (
    ("init_ms", "cold start (Init)"),
    ("first_invoke_ms", "first invocation, caller"),
    ("warm_p50_ms", "warm p50, caller"),
)
COLOURS = ("#7f7f7f", "#1f77b4", "#aec7e8", "#d62728", "#9467bd", "#2ca02c", "#ff7f0e", "#8c564b")
BAR_HEIGHT = 14
BAR_GAP = 3
GROUP_GAP = 14
LABEL_WIDTH = 70
PANEL_WIDTH = 300
PANEL_GAP = 40
TOP = 70
MAX_RATIO = 16.0


def render_svg(results: dict[str, Any]) -> str:
    variants = list(results["variants"])
    platforms = [name for name in ("sandbox", "rie") if results["results"].get(name)]
    group_height = len(variants) * (BAR_HEIGHT + BAR_GAP) + GROUP_GAP
    legend_height = 18 * len(variants) + 10
    height = TOP + group_height * len(platforms) + 40 + legend_height
    width = LABEL_WIDTH + len(MEASURES) * (PANEL_WIDTH + PANEL_GAP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(_title(results))}</text>',
        '<text x="10" y="38" fill="#555">ratio to the bare runtime in the same run (log scale, median of '
        f'{results["config"]["trials"]} fresh environments); dashed: the {BUDGET_RATIO:.2f}x budget '
        "for defaults</text>",
    ]
    for index, (key, label) in enumerate(MEASURES):
        left = LABEL_WIDTH + index * (PANEL_WIDTH + PANEL_GAP)
        out.append(f'<text x="{left}" y="{TOP - 12}" font-weight="bold">{escape(label)}</text>')
        bottom = TOP + group_height * len(platforms) - GROUP_GAP
        for tick in (1, 2, 4, 8, 16):
            x = left + _scale(tick)
            out.append(f'<line x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
            out.append(f'<text x="{x:.1f}" y="{bottom + 12}" text-anchor="middle" fill="#555">{tick}x</text>')
        budget_x = left + _scale(BUDGET_RATIO)
        out.append(f'<line x1="{budget_x:.1f}" y1="{TOP - 4}" x2="{budget_x:.1f}" y2="{bottom}" '
                   'stroke="#d62728" stroke-dasharray="4,3"/>')
        for group, platform in enumerate(platforms):
            top = TOP + group * group_height
            if index == 0:
                out.append(f'<text x="10" y="{top + BAR_HEIGHT}" font-weight="bold">{platform}</text>')
            by_variant = results["results"][platform]
            for row, variant in enumerate(variants):
                summary = by_variant.get(variant["name"])
                ratio = None if summary is None else summary.get("ratio", {}).get(key)
                y = top + row * (BAR_HEIGHT + BAR_GAP)
                measured = summary is not None and summary.get("failed") != summary.get("trials")
                out += _bar(left, y, ratio if measured else None, COLOURS[row % len(COLOURS)])
    legend_top = TOP + group_height * len(platforms) + 30
    for row, variant in enumerate(variants):
        y = legend_top + row * 18
        colour = COLOURS[row % len(COLOURS)]
        out.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{LABEL_WIDTH + 18}" y="{y + 10}">{escape(variant["title"])}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _bar(left: float, y: float, ratio: float | None, colour: str) -> list[str]:
    text_y = y + BAR_HEIGHT - 3
    if ratio is None:
        return [f'<text x="{left + 4}" y="{text_y}" fill="#999">not measured</text>']
    width = max(1.0, _scale(ratio))
    return [
        f'<rect x="{left}" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT}" fill="{colour}"/>',
        f'<text x="{left + width + 4:.1f}" y="{text_y}">{ratio:.2f}x</text>',
    ]


def _title(results: dict[str, Any]) -> str:
    built = next((variant["versions"]["lambda-wrapper"] for variant in results["variants"]
                  if "lambda-wrapper" in variant.get("versions", {})), "?")
    return f"What each variant costs a function: {results['date'][:10]}, lambda-wrapper {built}"


def _scale(ratio: float) -> float:
    """Log scale from 0.5x (x = 0) to MAX_RATIO (the panel's width)."""
    low, high = math.log(0.5), math.log(MAX_RATIO)
    clamped = min(max(ratio, 0.5), MAX_RATIO)
    return (math.log(clamped) - low) / (high - low) * PANEL_WIDTH
