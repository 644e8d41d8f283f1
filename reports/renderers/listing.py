"""Long tables in PDFs as listings: each row one cell of monospaced text in aligned columns.

WeasyPrint lays out and draws every table cell as its own box with its own text: a
1,000-row, five-column table is 5,000 of them and takes seconds. A listing row is one cell
whose columns are padded to fixed character widths (the font is monospaced, so they line up
under the header), with text too long for its column wrapped inside the column. The table
keeps its header on every page and rows are never split across pages.
"""

import textwrap
from dataclasses import dataclass
from itertools import zip_longest

# Characters per line of a listing at its font size: A4 portrait and landscape.
PORTRAIT_CHARACTERS = 110
LANDSCAPE_CHARACTERS = 165
GAP = 2  # spaces between columns
NARROWEST = 8  # a wrapped column is never narrower than this


@dataclass(frozen=True)
class Listing:
    header: str
    rows: list[str]
    landscape: bool


def listing(
    labels: list[str], numbers: list[bool], rows: list[list[str]], *, landscape: bool
) -> Listing:
    """The rows (values already as text) in aligned columns.

    A listing whose rows would wrap on a portrait page gets a landscape one: one line per row
    is both easier to read and fewer lines to lay out.
    """
    # One line per value before wrapping: a newline or tab in a value would break the columns.
    rows = [[" ".join(value.split()) for value in row] for row in rows]
    natural = [max([len(label), *(len(row[n]) for row in rows)]) for n, label in enumerate(labels)]
    landscape = landscape or sum(natural) + GAP * (len(labels) - 1) > PORTRAIT_CHARACTERS
    widths = _widths(natural, LANDSCAPE_CHARACTERS if landscape else PORTRAIT_CHARACTERS)
    return Listing(
        header=_line(labels, numbers, widths),
        rows=[_line(row, numbers, widths) for row in rows],
        landscape=landscape,
    )


def _widths(natural: list[int], characters: int) -> list[int]:
    """The columns' natural widths; when they do not fit, the widest columns give way."""
    widths = list(natural)
    room = characters - GAP * (len(widths) - 1)
    while sum(widths) > room:
        widest = max(range(len(widths)), key=lambda n: widths[n])
        if widths[widest] <= NARROWEST:
            break
        widths[widest] -= min(widths[widest] - NARROWEST, sum(widths) - room)
    return widths


def _line(values: list[str], numbers: list[bool], widths: list[int]) -> str:
    """One row: its values wrapped within their columns, padded, the lines joined."""
    columns = [
        [value] if len(value) <= width else textwrap.wrap(value, width, break_on_hyphens=False)
        for value, width in zip(values, widths, strict=True)
    ]
    lines = []
    for parts in zip_longest(*columns, fillvalue=""):
        cells = [
            part.rjust(width) if number else part.ljust(width)
            for part, width, number in zip(parts, widths, numbers, strict=True)
        ]
        lines.append((" " * GAP).join(cells).rstrip())
    return "\n".join(lines)
