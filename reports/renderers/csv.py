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
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value  # a spreadsheet opening the file must not run it as a formula
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
    writer.writerow(["Figure", "Value"])
    writer.writerow(["Report", data.title])
    writer.writerow(["Tenant", data.tenant_name])
    writer.writerow(["From", data.start.isoformat()])
    writer.writerow(["To", data.end.isoformat()])
    writer.writerow(["Time zone", data.time_zone])
    for name, value in data.filters.items():
        writer.writerow([name.capitalize(), value])
    for figure in data.figures:
        writer.writerow([figure.label, _cell(figure.value, figure.type)])
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
