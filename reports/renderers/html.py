"""The report as HTML: one Django template for the screen and, through WeasyPrint, for PDF."""

from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from reports.charts import render_chart
from reports.renderers.listing import listing
from reports.renderers.values import display, is_number
from reports.types.base import DATE, DATETIME, Column, ReportData, Table

TEMPLATE = "reports/report.html"
# Tables with more columns than this get landscape pages in PDFs.
WIDE_COLUMNS = 10
# Relative widths by column type; text and other types not named here get 3.
WEIGHTS = {DATE: 1.8, DATETIME: 2.8}
NUMBER_WEIGHT = 1.2
# Printed tables with more rows than this are listings (see reports.renderers.listing).
LISTING_ROWS = 100
# Listing rows are striped in bands of this many, each band one table row of the listing.
LISTING_BAND = 3


def report_context(data: ReportData, *, for_print: bool) -> dict[str, Any]:
    return {
        "report": data,
        "for_print": for_print,
        "figure_rows": _pairs(data),
        # Our own SVG: every text in it is escaped by reports.charts.
        "charts": [mark_safe(render_chart(chart)) for chart in data.charts],
        "tables": [_table(table, for_print=for_print) for table in data.tables],
    }


def _table(table: Table, *, for_print: bool) -> dict[str, Any]:
    shown = [n for n, column in enumerate(table.columns) if column.printed or not for_print]
    columns = [table.columns[n] for n in shown]
    wide = len(columns) > WIDE_COLUMNS
    labels = [column.label for column in columns]
    numbers = [is_number(column.type) for column in columns]
    rows = [[display(row[n], table.columns[n].type) for n in shown] for row in table.rows]
    shown_table = {
        "title": table.title,
        "wide": wide,
        "note": table.note,
        "has_rows": bool(rows),
        "listing": None,
    }
    if for_print and len(rows) > LISTING_ROWS:
        laid_out = listing(labels, numbers, rows, landscape=wide)
        shown_table["wide"] = laid_out.landscape
        shown_table["listing"] = {
            "header": laid_out.header,
            "bands": [
                (_parity(n), "\n".join(laid_out.rows[start : start + LISTING_BAND]))
                for n, start in enumerate(range(0, len(laid_out.rows), LISTING_BAND))
            ],
        }
        return shown_table
    return shown_table | {
        "widths": _widths(columns),
        "columns": list(zip(labels, numbers, strict=True)),
        "rows": [(_parity(n), list(zip(row, numbers, strict=True))) for n, row in enumerate(rows)],
    }


def _parity(index: int) -> str:
    """The row's stripe: a class, cheaper to match than `:nth-child` on thousands of cells."""
    return "even" if index % 2 else "odd"


def _widths(columns: list[Column]) -> list[str]:
    """Column widths in percent: fixed table layout need not measure a thousand rows first."""
    weights = [
        NUMBER_WEIGHT if is_number(column.type) else WEIGHTS.get(column.type, 3.0)
        for column in columns
    ]
    return [f"{100 * weight / sum(weights):.1f}" for weight in weights]


def _pairs(data: ReportData) -> list[list[tuple[str, str]]]:
    shown = [
        (figure.label, display(figure.value, figure.type, unit=True)) for figure in data.figures
    ]
    return [shown[index : index + 2] for index in range(0, len(shown), 2)]


def render_html(data: ReportData, *, for_print: bool = False) -> str:
    return render_to_string(TEMPLATE, report_context(data, for_print=for_print))


def render_html_file(data: ReportData) -> bytes:
    return render_html(data).encode()
