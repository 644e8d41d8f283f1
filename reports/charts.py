"""Small SVG charts for reports: stacked bars and lines, with axes, ticks and a legend.

The SVG is inline markup that WeasyPrint draws in PDFs and browsers show in HTML reports.
"""

import math
from html import escape

from reports.types.base import Chart

WIDTH, HEIGHT = 680, 210
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 40
COLOURS = ["#2f6fb2", "#d1495b", "#9aa5b1", "#edae49", "#00798c", "#66a182"]
TICKS = 5


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^n at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def render_chart(chart: Chart) -> str:
    """The chart as an `<svg>` element."""
    if chart.kind == "bar":
        heights = [
            sum(v or 0 for v in values)
            for values in zip(*(s for _, s in chart.series), strict=True)
        ]
    else:
        heights = [value for _, values in chart.series for value in values if value is not None]
    top = nice_ceiling(max(heights, default=0))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'font-family="DejaVu Sans, Arial, sans-serif" fill="#1f2933" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(chart.title)}">',
        f'<text x="{LEFT}" y="16" class="chart-title" font-size="13" font-weight="bold">'
        f"{escape(chart.title)}</text>",
        *_axes(chart, top),
        *(_bars(chart, top) if chart.kind == "bar" else _lines(chart, top)),
        *_legend(chart),
        "</svg>",
    ]
    return "".join(parts)


def _plot() -> tuple[float, float]:
    return WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _y(value: float | None, top: float) -> float:
    return TOP + _plot()[1] * (1 - (value or 0) / top)


def _axes(chart: Chart, top: float) -> list[str]:
    width, height = _plot()
    parts = []
    for n in range(TICKS + 1):
        value = top * n / TICKS
        y = _y(value, top)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + width}" y2="{y:.1f}" stroke="#e3e7eb"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{_number(value)}{escape(chart.unit)}</text>"
        )
    count = len(chart.labels)
    every = max(1, math.ceil(count / 12))
    for index, label in enumerate(chart.labels):
        if index % every:
            continue
        x = LEFT + width * (index + 0.5) / max(count, 1)
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + height + 14}" font-size="10" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    parts.append(
        f'<line x1="{LEFT}" y1="{TOP + height}" x2="{LEFT + width}" y2="{TOP + height}" '
        'stroke="#52606d"/>'
    )
    return parts


def _bars(chart: Chart, top: float) -> list[str]:
    width, _ = _plot()
    slot = width / max(len(chart.labels), 1)
    bar = max(slot * 0.7, 0.5)
    parts = []
    for index in range(len(chart.labels)):
        base = 0.0
        x = LEFT + slot * index + (slot - bar) / 2
        for number, (name, values) in enumerate(chart.series):
            value = values[index] or 0
            if value <= 0:
                continue
            y0, y1 = _y(base, top), _y(base + value, top)
            parts.append(
                f'<rect x="{x:.1f}" y="{y1:.1f}" width="{bar:.1f}" height="{y0 - y1:.1f}" '
                f'fill="{COLOURS[number % len(COLOURS)]}"><title>{escape(name)}: '
                f"{_number(value)}</title></rect>"
            )
            base += value
    return parts


def _lines(chart: Chart, top: float) -> list[str]:
    width, _ = _plot()
    count = max(len(chart.labels), 1)
    parts = []
    for number, (_, values) in enumerate(chart.series):
        colour = COLOURS[number % len(COLOURS)]
        points = [(LEFT + width * (i + 0.5) / count, _y(v, top)) for i, v in enumerate(values)]
        # A day without a value (None) breaks the line rather than dropping it to zero.
        for segment in _segments(points, values):
            joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
            parts.append(
                f'<polyline points="{joined}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        if count <= 40:
            parts.extend(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>'
                for (x, y), value in zip(points, values, strict=True)
                if value is not None
            )
    return parts


def _segments(
    points: list[tuple[float, float]], values: list[float | None]
) -> list[list[tuple[float, float]]]:
    segments: list[list[tuple[float, float]]] = [[]]
    for point, value in zip(points, values, strict=True):
        if value is None:
            segments.append([])
        else:
            segments[-1].append(point)
    return [segment for segment in segments if segment]


def _legend(chart: Chart) -> list[str]:
    parts, x = [], WIDTH - RIGHT
    for number, (name, _) in reversed(list(enumerate(chart.series))):
        x -= 12 + 6 * len(name) + 14
        parts.append(
            f'<rect x="{x}" y="7" width="10" height="10" fill="{COLOURS[number % len(COLOURS)]}"/>'
            f'<text x="{x + 14}" y="16" font-size="10">{escape(name)}</text>'
        )
    return parts
