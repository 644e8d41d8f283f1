"""What every benchmark returns, and the table the bench command prints."""

import statistics
from dataclasses import dataclass, field


@dataclass
class Figure:
    """One measurement over several rounds, optionally beside a baseline measured in the same run.

    `higher_is_better` says which way the ratio to the baseline should go (throughput: True;
    latency, memory, seconds: False).
    """

    name: str
    unit: str
    values: list[float]
    baseline_name: str = ""
    baseline_values: list[float] = field(default_factory=list)
    higher_is_better: bool = True
    target: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def ratio(self) -> float | None:
        if not self.baseline_values:
            return None
        baseline = statistics.median(self.baseline_values)
        return self.median / baseline if baseline else None


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def meets(figure: Figure) -> bool | None:
    """Whether the figure meets its target ("≥ 1.0×", "≤ 1.5×", "< 300 ms"); None without one."""
    target = figure.target.replace(" ", "")
    if not target:
        return None
    for sign in ("≥", "≤", "<", ">"):
        if target.startswith(sign):
            rest = target[len(sign) :]
            break
    else:
        return None
    if rest.endswith("×"):
        value = figure.ratio
        bound = float(rest[:-1])
    else:
        value = figure.median
        bound = float(rest.rstrip("abcdefghijklmnopqrstuvwxyz/%"))
    if value is None:
        return None
    return {
        "≥": value >= bound,
        "≤": value <= bound,
        "<": value < bound,
        ">": value > bound,
    }[sign]


def rows(figures: list[Figure]) -> list[list[str]]:
    header = ["figure", "median", "min–max", "unit", "baseline", "baseline median", "ratio"]
    found = [[*header, "target"]]
    for figure in figures:
        baseline = statistics.median(figure.baseline_values) if figure.baseline_values else None
        ratio = figure.ratio
        verdict = meets(figure)
        target = figure.target
        if verdict is not None:
            target += " ok" if verdict else " MISSED"
        found.append(
            [
                figure.name,
                _number(figure.median),
                f"{_number(min(figure.values))}–{_number(max(figure.values))}",
                figure.unit,
                figure.baseline_name,
                _number(baseline) if baseline is not None else "",
                f"{ratio:.2f}×" if ratio is not None else "",
                target,
            ]
        )
    return found


def render(figures: list[Figure], *, markdown: bool = False) -> str:
    """The figures as an aligned text table, or as a Markdown table."""
    table = rows(figures)
    if markdown:
        lines = ["| " + " | ".join(table[0]) + " |"]
        lines.append("| --- | ---: | ---: | --- | --- | ---: | ---: | --- |")
        lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
        return "\n".join(lines)
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    right = {1, 2, 5, 6}
    lines = []
    for index, row in enumerate(table):
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
