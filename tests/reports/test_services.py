"""Report services and helpers: per-tenant concurrency, clean-up of files, charts."""

from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from jobs.kinds import get_kind
from jobs.services.jobs import cancel_job
from jobs.transport import limits
from reports.charts import nice_ceiling, render_chart
from reports.models import Report
from reports.services import clean_up_reports, create_report
from reports.types.base import Chart


def test_reports_of_one_tenant_are_generated_two_at_a_time(tenant, other_tenant):
    kind = get_kind("reports.generate_report")

    first = limits.acquire(tenant, kind, holder="report-1", ttl=60)
    second = limits.acquire(tenant, kind, holder="report-2", ttl=60)
    third = limits.acquire(tenant, kind, holder="report-3", ttl=60)
    elsewhere = limits.acquire(other_tenant, kind, holder="report-4", ttl=60)

    assert (first, second, elsewhere) == (None, None, None)
    assert third is not None
    assert "2 reports job(s) of this tenant are running already" in third.reason


def report_with_file(tenant, *, age: timedelta) -> Report:
    report = Report.objects.create(
        tenant=tenant, type="job_activity", format="csv", status=Report.Status.SUCCEEDED
    )
    report.file.save("old.csv", ContentFile(b"a,b\n"))
    Report.objects.filter(pk=report.pk).update(created_at=timezone.now() - age)
    return report


def test_clean_up_deletes_expired_reports_with_their_files(tenant, settings):
    settings.REPORTS_RETENTION_DAYS = 30
    old = report_with_file(tenant, age=timedelta(days=31))
    kept = report_with_file(tenant, age=timedelta(days=29))

    outcome = clean_up_reports()

    assert outcome == {"reports": 1}
    assert list(Report.objects.all()) == [kept]
    assert not default_storage.exists(str(old.file.name))
    assert default_storage.exists(str(kept.file.name))


def test_chart_axes_end_on_round_numbers():
    assert [nice_ceiling(v) for v in (0, 7, 10, 11, 180, 2600, 0.3)] == [
        1.0,
        10,
        10,
        20,
        200,
        5000,
        0.5,
    ]


def test_charts_escape_their_labels_and_draw_one_bar_per_value():
    chart = Chart("Jobs <per> day", "bar", ["a&b", "c"], [("ok", [3, 0]), ("bad", [1, 2])])

    svg = render_chart(chart)

    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert "Jobs &lt;per&gt; day" in svg
    assert "a&amp;b" in svg
    assert svg.count("<rect x=") - len(chart.series) == 3  # zero-height bars are left out


def test_a_report_whose_job_is_canceled_before_it_runs_is_canceled_and_says_why(
    tenant, tenant_admin
):
    report = create_report(
        tenant=tenant, by=tenant_admin, type="job_activity", format="csv", parameters={}
    )

    assert report.job is not None
    cancel_job(report.job)

    report.refresh_from_db()
    assert report.status == Report.Status.CANCELED
    assert report.error == "Its job was canceled"
