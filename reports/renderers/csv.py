"""The report as CSV: one table per file; several tables (and the summary) in a zip."""

import csv
import io
import zipfile
from datetime import date, datetime
from typing import Any

from reports.types.base import DATE, DATETIME, ReportData, Table

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any, type: str) -> Any:
    if value is None:
        return ""
    if type == DATETIME and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if type == DATE and isinstance(value, date):
        return value.isoformat()
    return escape_formula(value)


def escape_formula(value: Any) -> Any:
    """Text a spreadsheet must show, never run as a formula, gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def table_csv(table: Table) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([column.label for column in table.columns])
    for row in table.rows:
        writer.writerow(
            [_cell(value, column.type) for value, column in zip(row, table.columns, strict=True)]
        )
    return buffer.getvalue().encode("utf-8")


def summary_csv(data: ReportData) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    rows: list[list[Any]] = [
        ["Figure", "Value"],
        ["Report", data.title],
        ["Tenant", data.tenant_name],
        ["From", data.start.isoformat()],
        ["To", data.end.isoformat()],
        ["Time zone", data.time_zone],
        *([name.capitalize(), value] for name, value in data.filters.items()),
        *([figure.label, _cell(figure.value, figure.type)] for figure in data.figures),
    ]
    # Every text cell escaped: filters show what members named (a campaign, a template…).
    writer.writerows([_cell(cell, "") for cell in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


def render_csv(data: ReportData) -> tuple[bytes, bool]:
    """(content, zipped): the only table as CSV, or a zip with summary.csv and one per table."""
    if len(data.tables) == 1:
        return table_csv(data.tables[0]), False
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("summary.csv", summary_csv(data))
        for table in data.tables:
            archive.writestr(f"{table.name}.csv", table_csv(table))
    return buffer.getvalue(), True
