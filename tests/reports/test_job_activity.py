"""The job activity report in each format, read back and checked against a known dataset."""

import csv
import io
import re
from datetime import timedelta

import openpyxl
import pytest

from jobs.models import Job
from reports.rollups import roll_up_hours
from tests.reports.conftest import (
    DAY_ONE,
    make_job,
    pdf_pages,
    pdf_text,
    save_jobs,
    save_page_png,
    unzip,
)


def squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_the_pdf_shows_the_title_page_figures_and_failing_kinds_of_the_period(
    rolled_up_dataset, generate, tmp_path
):
    detail, content = generate(format="pdf")

    text = squeeze(pdf_text(content, tmp_path))
    assert content.startswith(b"%PDF")
    assert "Job activity" in text
    assert "Acme" in text
    assert "5 October 2026 to 7 October 2026" in text
    assert "Time zone UTC" in text
    for label, value in [
        ("Jobs", "13"),
        ("Succeeded", "9"),
        ("Failed", "3"),
        ("Canceled", "1"),
        ("Failure rate", "25.0 %"),
        ("Average wait", "1.500 s"),
        ("Average run", "2.500 s"),
        ("Busiest day", "2026-10-05 (8)"),
    ]:
        assert f"{label} {value}" in text
    assert "communications.send_sms 2 66.7 % ProviderError: 503 from the SMS provider" in text
    assert "communications.deliver_webhook 1 33.3 % Timeout: no answer in 30 s" in text
    assert "globex only" not in text
    assert "Page 1 of" in text
    assert detail["size"] == len(content)
    assert save_page_png(content, "job-activity-page-1").stat().st_size > 10_000


def test_the_pdf_tables_show_days_and_queues_with_their_times(
    rolled_up_dataset, generate, tmp_path
):
    _, content = generate(format="pdf")

    text = squeeze(pdf_text(content, tmp_path))
    assert "2026-10-05 8 6 2 0 25.0 % 1.000 2.000" in text
    assert "2026-10-06 4 3 1 0 25.0 % 2.500 3.500" in text
    assert "2026-10-07 1 0 0 1 0.0 % — —" in text
    assert "email 10 9 0 1 0.0 % 1.667 1.667 2.667 2.667 4.000" in text


def test_a_long_table_repeats_its_header_on_every_page_and_pages_are_numbered(
    tenant, generate, tmp_path
):
    failures = [
        make_job(
            tenant,
            created=DAY_ONE + timedelta(seconds=n * 30),
            status=Job.Status.FAILED,
            error=("ProviderError", f"failure number {n}"),
        )
        for n in range(1000)
    ]
    save_jobs(failures)
    roll_up_hours(DAY_ONE, DAY_ONE + timedelta(days=1))

    _, content = generate(format="pdf")

    pages = pdf_pages(content, tmp_path)
    assert pages > 10
    last = squeeze(pdf_text(content, tmp_path, page=pages - 1))
    assert "Created Kind Queue Attempts Error" in last
    assert f"Page {pages - 1} of {pages}" in last
    assert "failure number 0" in squeeze(pdf_text(content, tmp_path))


def test_the_xlsx_has_a_typed_sheet_per_table_with_a_styled_frozen_header(
    rolled_up_dataset, generate
):
    _, content = generate(format="xlsx")

    book = openpyxl.load_workbook(io.BytesIO(content))
    assert book.sheetnames == [
        "Summary",
        "Jobs per day",
        "By queue",
        "By kind",
        "Top failing kinds",
        "Failed jobs (latest 1,000)",
    ]
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(min_row=2, values_only=True)}
    assert (summary["Jobs"], summary["Failed"], summary["Failure rate"]) == (13, 3, 0.25)
    queues = book["By queue"]
    assert queues.freeze_panes == "A2"
    assert queues["A1"].font.bold
    assert [cell.value for cell in queues[1]][:6] == [
        "Queue",
        "Jobs",
        "Succeeded",
        "Failed",
        "Canceled",
        "Failure rate",
    ]
    rows = {row[0]: row for row in queues.iter_rows(min_row=2, values_only=True)}
    assert rows["messaging"][:6] == ("messaging", 2, 0, 2, 0, 1.0)
    assert queues["F2"].number_format == "0.0%"
    days = list(book["Jobs per day"].iter_rows(min_row=2, values_only=True))
    assert [(row[0].date().isoformat(), row[1]) for row in days] == [
        ("2026-10-05", 8),
        ("2026-10-06", 4),
        ("2026-10-07", 1),
    ]


def test_the_csv_is_a_zip_of_one_file_per_table_counted_in_the_report_time_zone(
    rolled_up_dataset, generate
):
    _, content = generate(format="csv", time_zone="Asia/Tokyo")

    files = unzip(content)
    assert sorted(files) == [
        "days.csv",
        "failed_jobs.csv",
        "failing_kinds.csv",
        "kinds.csv",
        "queues.csv",
        "summary.csv",
    ]
    days = list(csv.DictReader(io.StringIO(files["days.csv"].decode())))
    # 23:30 UTC on the 6th is 08:30 on the 7th in Tokyo.
    assert [(row["Day"], row["Jobs"], row["Failed"]) for row in days] == [
        ("2026-10-05", "8", "2"),
        ("2026-10-06", "3", "0"),
        ("2026-10-07", "2", "1"),
    ]
    summary = dict(csv.reader(io.StringIO(files["summary.csv"].decode())))
    assert summary["Time zone"] == "Asia/Tokyo"
    assert summary["Failure rate"] == "25.0"


def test_the_html_report_is_the_same_template_on_screen_with_svg_charts(
    rolled_up_dataset, generate
):
    _, content = generate(format="html")

    html = content.decode()
    assert html.count("<svg") == 2
    assert "Jobs per day" in html
    assert "Failure rate per day" in html
    assert "<thead>" in html
    assert "25.0 %" in html


def test_filters_narrow_the_report_to_one_queue(rolled_up_dataset, generate, tmp_path):
    _, content = generate(format="pdf", queue="messaging")

    text = squeeze(pdf_text(content, tmp_path))
    assert "Queue messaging" in text
    assert "Jobs 2 " in text
    assert "Failure rate 100.0 %" in text
    assert "deliver_webhook" not in text


@pytest.mark.parametrize("format", ["pdf", "xlsx", "csv", "html"])
def test_an_empty_period_still_makes_a_report(tenant, generate, format):
    detail, content = generate(format=format, start="2026-01-01", end="2026-01-31")

    assert detail["size"] == len(content) > 0
