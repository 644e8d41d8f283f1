"""The report as XLSX: a summary sheet, then a sheet per table with typed cells."""

import io
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from reports.renderers.csv import escape_formula
from reports.types.base import (
    DATE,
    DATETIME,
    FLOAT,
    INT,
    PERCENT,
    SECONDS,
    Column,
    ReportData,
    Table,
)

HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="2F6FB2")
FORMATS = {
    INT: "#,##0",
    FLOAT: "#,##0.0",
    SECONDS: "#,##0.000",
    PERCENT: "0.0%",
    DATE: "yyyy-mm-dd",
    DATETIME: "yyyy-mm-dd hh:mm:ss",
}
WIDTHS = {INT: 12, FLOAT: 12, SECONDS: 14, PERCENT: 12, DATE: 12, DATETIME: 20}


def _value(value: Any, type: str) -> Any:
    if value is None:
        return None
    if type == PERCENT:
        return value / 100
    return escape_formula(value)  # a text cell, never a formula


def _header(sheet: Worksheet, columns: list[Column]) -> None:
    sheet.append([column.label for column in columns])
    for cell in sheet[1]:
        cell.font, cell.fill = HEADER_FONT, HEADER_FILL
        cell.alignment = Alignment(vertical="center")
    sheet.freeze_panes = "A2"
    for index, column in enumerate(columns, start=1):
        width = WIDTHS.get(column.type, 30)
        sheet.column_dimensions[get_column_letter(index)].width = max(width, len(column.label) + 2)


def _table_sheet(workbook: Workbook, table: Table) -> None:
    sheet = workbook.create_sheet(table.title[:31])
    _header(sheet, table.columns)
    for row in table.rows:
        sheet.append(
            [_value(value, column.type) for value, column in zip(row, table.columns, strict=True)]
        )
    for index, column in enumerate(table.columns, start=1):
        if column.type in FORMATS:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = FORMATS[column.type]
    if table.rows:
        sheet.auto_filter.ref = sheet.dimensions


def _summary_sheet(sheet: Worksheet, data: ReportData) -> None:
    sheet.title = "Summary"
    _header(sheet, [Column("Figure"), Column("Value")])
    sheet.append(["Report", escape_formula(data.title)])
    sheet.append(["Tenant", escape_formula(data.tenant_name)])
    sheet.append(["From", data.start])
    sheet.append(["To", data.end])
    sheet.append(["Time zone", data.time_zone])
    sheet.append(["Generated", data.generated_local.replace(tzinfo=None)])
    for name, value in data.filters.items():  # what members named: escaped like any text
        sheet.append([escape_formula(name.capitalize()), escape_formula(value)])
    for figure in data.figures:
        sheet.append([escape_formula(figure.label), _value(figure.value, figure.type)])
        if figure.type in FORMATS:
            sheet.cell(row=sheet.max_row, column=2).number_format = FORMATS[figure.type]
    for row in (4, 5):
        sheet.cell(row=row, column=2).number_format = FORMATS[DATE]
    sheet.cell(row=7, column=2).number_format = FORMATS[DATETIME]


def render_xlsx(data: ReportData) -> bytes:
    workbook = Workbook()
    _summary_sheet(workbook.active, data)
    for table in data.tables:
        _table_sheet(workbook, table)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
