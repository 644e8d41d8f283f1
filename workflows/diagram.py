"""A workflow drawn as SVG, on the server: steps in columns by depth, edges between them.

Each box shows the step's name, kind, status (by colour), attempts and a short result; an edge
is solid for on_success, dashed red for on_failure and dotted grey for always.
"""

import json
from collections.abc import Sequence
from typing import Any

from django.utils.html import escape

from workflows.models import Edge, WorkflowStep

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 200, 64, 70, 22, 20
COLOURS = {
    "waiting": ("#f3f4f6", "#9ca3af"),
    "running": ("#dbeafe", "#2563eb"),
    "succeeded": ("#dcfce7", "#16a34a"),
    "failed": ("#fee2e2", "#dc2626"),
    "canceled": ("#fef3c7", "#d97706"),
    "skipped": ("#f9fafb", "#d1d5db"),
}
EDGE_STYLE: dict[str, str] = {
    Edge.ON_SUCCESS: 'stroke="#4b5563"',
    Edge.ON_FAILURE: 'stroke="#dc2626" stroke-dasharray="6 4"',
    Edge.ALWAYS: 'stroke="#9ca3af" stroke-dasharray="2 3"',
}


def _depths(steps: Sequence[WorkflowStep]) -> dict[str, int]:
    """Longest path from a root, for each step (steps are stored parents first)."""
    depth: dict[str, int] = {}
    for step in steps:
        depth[step.name] = 1 + max((depth.get(n["step"], 0) for n in step.needs), default=-1)
    return depth


def _short(value: Any, length: int = 30) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= length else text[: length - 1] + "…"


def render_svg(steps: Sequence[WorkflowStep]) -> str:
    """The whole graph as one `<svg>` element (steps with `job` loaded)."""
    depth = _depths(steps)
    columns: dict[int, list[WorkflowStep]] = {}
    for step in steps:
        columns.setdefault(depth[step.name], []).append(step)
    place = {}
    for column, members in columns.items():
        for row, step in enumerate(members):
            place[step.name] = (
                MARGIN + column * (BOX_W + GAP_X),
                MARGIN + row * (BOX_H + GAP_Y),
            )
    width = MARGIN * 2 + max(len(columns), 1) * (BOX_W + GAP_X) - GAP_X
    height = (
        MARGIN * 2 + max((len(m) for m in columns.values()), default=1) * (BOX_H + GAP_Y) - GAP_Y
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" '
        'font-size="12"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#4b5563"/></marker></defs>'
    ]
    parts += [_edge(place, step, need) for step in steps for need in step.needs]
    parts += [_box(place[step.name], step) for step in steps]
    parts.append("</svg>")
    return "".join(parts)


def _edge(place: dict[str, tuple[int, int]], step: WorkflowStep, need: dict[str, str]) -> str:
    (x1, y1), (x2, y2) = place[need["step"]], place[step.name]
    x1, y1, y2 = x1 + BOX_W, y1 + BOX_H // 2, y2 + BOX_H // 2
    middle = (x1 + x2) // 2
    label = "" if need["when"] == Edge.ON_SUCCESS else need["when"].replace("on_", "")
    text = (
        f'<text x="{middle}" y="{(y1 + y2) // 2 - 4}" text-anchor="middle" fill="#6b7280" '
        f'font-size="10">{label}</text>'
        if label
        else ""
    )
    return (
        f'<path d="M {x1} {y1} C {middle} {y1}, {middle} {y2}, {x2} {y2}" fill="none" '
        f'stroke-width="1.5" {EDGE_STYLE[need["when"]]} marker-end="url(#arrow)">'
        f"<title>{escape(need['step'])} → {escape(step.name)}: {need['when']}</title></path>{text}"
    )


def _box(at: tuple[int, int], step: WorkflowStep) -> str:
    x, y = at
    fill, stroke = COLOURS.get(step.status, COLOURS["waiting"])
    job = step.job
    attempts = f" · attempt {job.attempt}/{job.max_attempts}" if job is not None else ""
    detail = step.reason
    if job is not None and job.result is not None and step.status == "succeeded":
        detail = f"→ {_short(job.result)}"
    elif job is not None and job.error_message and step.status == "failed":
        detail = job.error_message
    title = f"{step.name} ({step.kind}): {step.status}{attempts}\n{detail}"
    return (
        f'<g class="step step-{step.status}" data-step="{escape(step.name)}">'
        f"<title>{escape(title)}</title>"
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="2"/>'
        f'<text x="{x + 10}" y="{y + 18}" font-weight="bold">{escape(_short(step.name, 26))}'
        f"</text>"
        f'<text x="{x + 10}" y="{y + 34}" fill="#374151">{escape(_short(step.kind, 30))}</text>'
        f'<text x="{x + 10}" y="{y + 50}" fill="{stroke}">{escape(step.status)}{attempts}'
        f"</text>"
        f'<text x="{x + 10}" y="{y + 61}" fill="#6b7280" font-size="9">'
        f"{escape(_short(detail, 38))}</text></g>"
    )
