"""Renderers turn a `ReportData` into a file: PDF, XLSX, CSV (or a zip of CSVs), HTML."""

from dataclasses import dataclass

from reports.models import ReportFormat
from reports.renderers.csv import render_csv
from reports.renderers.html import render_html_file
from reports.renderers.pdf import render_pdf
from reports.renderers.xlsx import render_xlsx
from reports.types.base import ReportData


@dataclass(frozen=True)
class Rendered:
    content: bytes
    extension: str
    content_type: str


def render(data: ReportData, format: str) -> Rendered:
    """The report in `format`; CSV is a zip when the report has several tables."""
    if format == ReportFormat.PDF:
        return Rendered(render_pdf(data), "pdf", "application/pdf")
    if format == ReportFormat.XLSX:
        return Rendered(
            render_xlsx(data),
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    if format == ReportFormat.CSV:
        content, zipped = render_csv(data)
        return (
            Rendered(content, "zip", "application/zip")
            if zipped
            else Rendered(content, "csv", "text/csv")
        )
    return Rendered(render_html_file(data), "html", "text/html")
