"""The reports admin: list, the add form that enqueues, download links, regenerate."""

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from jobs.models import Job
from reports.models import Report
from tenants.models import Role
from tests.factories import make_member

URL = "/admin/reports/report/"
FORM = {
    "type": "job_activity",
    "format": "xlsx",
    "start": "2026-10-05",
    "end": "2026-10-07",
    "time_zone": "",
    "queue": "email",
}


def ready_report(tenant, *, name: str = "job-activity.csv") -> Report:
    report = Report.objects.create(
        tenant=tenant,
        type="job_activity",
        format="csv",
        parameters={"start": "2026-10-05", "end": "2026-10-07", "time_zone": "UTC"},
        status=Report.Status.SUCCEEDED,
        finished_at=timezone.now(),
    )
    report.file.save(name, ContentFile(b"Day,Jobs\n2026-10-05,8\n"))
    return report


@pytest.fixture
def staff_client(tenant_admin) -> Client:
    client = Client()
    client.force_login(tenant_admin)
    return client


def test_the_list_shows_the_tenants_reports_with_download_links(
    staff_client, tenant, other_tenant, django_assert_max_num_queries
):
    mine = ready_report(tenant)
    ready_report(other_tenant)

    with django_assert_max_num_queries(12):
        page = staff_client.get(URL)

    assert page.status_code == 200
    assert page.content.decode().count("Download CSV") == 1
    assert f"{URL}{mine.pk}/download/" in page.content.decode()


def test_the_add_form_enqueues_a_report_in_the_chosen_tenant(staff_client, tenant, tenant_admin):
    answer = staff_client.post(f"{URL}add/", {**FORM, "tenant": tenant.pk})

    assert answer.status_code == 302
    report = Report.objects.get()
    assert (report.tenant, report.created_by, report.format) == (tenant, tenant_admin, "xlsx")
    assert report.parameters == {
        "start": "2026-10-05",
        "end": "2026-10-07",
        "time_zone": "UTC",
        "queue": "email",
    }
    assert Job.objects.get(pk=str(report.job_id)).kind == "reports.generate_report"


def test_the_add_form_shows_parameter_errors_on_their_fields(staff_client, tenant):
    page = staff_client.post(f"{URL}add/", {**FORM, "tenant": tenant.pk, "end": "2026-10-01"})

    assert page.status_code == 200
    assert "The end is before the start." in page.content.decode()
    assert not Report.objects.exists()


def test_a_tenant_admin_cannot_ask_for_another_tenants_report(staff_client, other_tenant):
    page = staff_client.post(f"{URL}add/", {**FORM, "tenant": other_tenant.pk})

    assert page.status_code == 200
    assert not Report.objects.exists()


def test_the_detail_page_and_download_link_work_for_the_tenant_only(
    staff_client, tenant, other_tenant
):
    mine, theirs = ready_report(tenant), ready_report(other_tenant)

    assert staff_client.get(f"{URL}{mine.pk}/change/").status_code == 200
    download = staff_client.get(f"{URL}{mine.pk}/download/")
    assert b"".join(download.streaming_content) == b"Day,Jobs\n2026-10-05,8\n"
    assert staff_client.get(f"{URL}{theirs.pk}/download/").status_code == 404
    assert staff_client.get(f"{URL}{theirs.pk}/change/").status_code == 302


def test_viewers_see_reports_but_cannot_add_them(tenant):
    viewer = make_member(tenant, Role.VIEWER, username="vera", is_staff=True)
    client = Client()
    client.force_login(viewer)
    ready_report(tenant)

    assert client.get(URL).status_code == 200
    assert client.get(f"{URL}add/").status_code == 403


def test_regenerating_enqueues_ready_reports_again(staff_client, tenant):
    report = ready_report(tenant)

    answer = staff_client.post(
        URL, {"action": "regenerate_selected", "_selected_action": [report.pk]}, follow=True
    )

    report.refresh_from_db()
    assert report.status == Report.Status.PENDING
    assert Job.objects.get(pk=str(report.job_id)).payload == {"report_id": str(report.pk)}
    assert "Regenerating 1 report(s)." in answer.content.decode()


def test_deleting_a_report_removes_its_file(staff_client, tenant):
    report = ready_report(tenant)
    storage, name = report.file.storage, str(report.file.name)

    staff_client.post(f"{URL}{report.pk}/delete/", {"post": "yes"})

    assert not Report.objects.exists()
    assert not storage.exists(name)


def test_every_admin_page_renders_for_a_superuser(admin_client, tenant):
    report = ready_report(tenant)

    for path in [URL, f"{URL}add/", f"{URL}{report.pk}/change/", f"{URL}{report.pk}/delete/"]:
        assert admin_client.get(path).status_code == 200, path
