"""The reports API: asking (202), validation, listing, detail, download and tenancy."""

from datetime import timedelta

import pytest
from django.utils import timezone

from communications.models import Message, Notification, WebhookDelivery, WebhookEndpoint
from jobs.models import Job
from reports.models import Report
from tenants.models import Role
from tests.factories import make_member

BODY = {"type": "job_activity", "format": "pdf", "start": "2026-10-05", "end": "2026-10-07"}


def test_asking_for_a_report_answers_202_with_a_pending_report_and_its_job(as_admin, tenant):
    answer = as_admin.post("/api/v1/reports/", {**BODY, "kind": "jobs.noop"}, format="json")

    assert answer.status_code == 202
    body = answer.json()
    assert (body["status"], body["download_url"], body["progress"]) == ("pending", None, 0)
    assert body["parameters"] == {
        "start": "2026-10-05",
        "end": "2026-10-07",
        "time_zone": "UTC",
        "kind": "jobs.noop",
    }
    job = Job.objects.get(pk=body["job"])
    assert (job.kind, job.queue, job.payload) == (
        "reports.generate_report",
        "reports",
        {"report_id": body["id"]},
    )


def test_the_time_zone_defaults_to_the_tenants(as_admin, tenant):
    tenant.time_zone = "Europe/Paris"
    tenant.save(update_fields=["time_zone"])

    body = as_admin.post("/api/v1/reports/", BODY, format="json").json()

    assert body["parameters"]["time_zone"] == "Europe/Paris"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"end": "2026-10-01"}, "end", "The end is before the start."),
        ({"start": "2025-01-01", "end": "2026-06-30"}, "end", "A report covers at most 366 days."),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "'Mars/Olympus' is not a known time zone"),
        ({"type": "sales"}, "type", '"sales" is not a valid choice.'),
        ({"format": "docx"}, "format", '"docx" is not a valid choice.'),
        ({"queue": "nope"}, "queue", '"nope" is not a valid choice.'),
        ({"channel": "sms"}, "channel", "Job activity reports have no channel filter."),
        ({"start": "not a day"}, "start", "Date has wrong format."),
        ({"type": "webhook_delivery", "endpoint": "nope"}, "endpoint", "Must be a valid UUID."),
        (
            {"type": "messaging_delivery", "campaign": "x"},
            "campaign",
            "A valid integer is required.",
        ),
    ],
)
def test_bad_parameters_answer_400_with_the_field_and_why(as_admin, change, field, message):
    answer = as_admin.post("/api/v1/reports/", {**BODY, **change}, format="json")

    assert answer.status_code == 400
    assert message in " ".join(answer.json()[field])
    assert not Report.objects.exists()


def test_a_start_in_the_future_is_refused(as_admin):
    later = (timezone.localdate() + timedelta(days=10)).isoformat()

    answer = as_admin.post(
        "/api/v1/reports/", {**BODY, "start": later, "end": later}, format="json"
    )

    assert answer.json() == {"start": ["The start is in the future."]}


def test_the_maximum_span_is_a_setting(as_admin, settings):
    settings.REPORTS_MAX_SPAN_DAYS = 2

    answer = as_admin.post("/api/v1/reports/", BODY, format="json")

    assert answer.json() == {"end": ["A report covers at most 2 days."]}


def test_viewers_read_reports_but_only_admins_ask_for_them(api_client, tenant, viewer):
    api_client.force_authenticate(viewer)
    api_client.credentials(HTTP_X_TENANT=tenant.slug)

    assert api_client.post("/api/v1/reports/", BODY, format="json").status_code == 403
    assert api_client.get("/api/v1/reports/").status_code == 200


def test_a_ready_report_notifies_its_author_and_publishes_report_ready(
    as_admin, tenant, tenant_admin, rolled_up_dataset, generate, run_worker
):
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant,
        url="https://hooks.example.com/conveyor",
        secret="s",
        event_types=["report.ready"],
    )

    detail, _ = generate(format="csv")
    run_worker(["notifications"])

    notification = Notification.objects.get(user=tenant_admin)
    assert notification.title == "Your job activity report is ready"
    assert notification.link.endswith(f"/api/v1/reports/{detail['id']}/download/")
    email = Message.objects.get(template="report-ready")
    assert email.recipient == tenant_admin.email
    assert "Job activity, 2026-10-05 to 2026-10-07" in email.subject + email.html + email.text
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event_type == "report.ready"
    assert delivery.payload["data"]["id"] == detail["id"]
    assert delivery.payload["data"]["size"] == detail["size"]


def test_another_tenants_report_is_404_everywhere(
    as_admin, other_tenant, rolled_up_dataset, generate, api_client
):
    outsider = make_member(other_tenant, Role.OWNER, username="gus-globex")
    detail, _ = generate(format="csv")
    api_client.force_authenticate(outsider)
    api_client.credentials(HTTP_X_TENANT=other_tenant.slug)

    assert api_client.get(f"/api/v1/reports/{detail['id']}/").status_code == 404
    assert api_client.get(f"/api/v1/reports/{detail['id']}/download/").status_code == 404
    assert api_client.get("/api/v1/reports/").json()["results"] == []
    assert api_client.get("/api/v1/reports/not-a-uuid/").status_code == 404


def test_a_report_that_is_not_ready_has_no_download(as_admin):
    report_id = as_admin.post("/api/v1/reports/", BODY, format="json").json()["id"]

    answer = as_admin.get(f"/api/v1/reports/{report_id}/download/")

    assert answer.status_code == 404
    assert answer.json() == {"detail": "This report has no file yet."}


def test_downloads_are_attachments_except_html_which_is_shown(
    rolled_up_dataset, generate, as_admin
):
    pdf, _ = generate(format="pdf")
    html, _ = generate(format="html")

    pdf_answer = as_admin.get(f"/api/v1/reports/{pdf['id']}/download/")
    html_answer = as_admin.get(f"/api/v1/reports/{html['id']}/download/")

    assert pdf_answer["Content-Disposition"] == (
        'attachment; filename="job-activity-20261005-20261007.pdf"'
    )
    assert pdf_answer["Content-Type"] == "application/pdf"
    assert html_answer["Content-Disposition"].startswith("inline")
    assert "default-src 'none'" in html_answer["Content-Security-Policy"]


def test_the_list_is_newest_first_filterable_and_costs_a_fixed_number_of_queries(
    as_admin, django_assert_max_num_queries
):
    for format in ("pdf", "xlsx", "csv"):
        as_admin.post("/api/v1/reports/", {**BODY, "format": format}, format="json")

    with django_assert_max_num_queries(8):
        answer = as_admin.get("/api/v1/reports/")
    only_csv = as_admin.get("/api/v1/reports/", {"file_format": "csv"}).json()

    assert [r["format"] for r in answer.json()["results"]] == ["csv", "xlsx", "pdf"]
    assert [r["format"] for r in only_csv["results"]] == ["csv"]


@pytest.mark.parametrize(
    ("param", "value"), [("status", "done"), ("type", "x"), ("file_format", "doc")]
)
def test_a_filter_outside_its_words_is_a_400_naming_it(as_admin, param, value):
    answer = as_admin.get("/api/v1/reports/", {param: value})

    assert answer.status_code == 400
    assert list(answer.json()) == [param]


def test_a_finished_report_is_succeeded_and_ready_for_clients_of_the_previous_release(as_admin):
    report_id = as_admin.post("/api/v1/reports/", BODY, format="json").json()["id"]
    Report.objects.filter(pk=report_id).update(status=Report.Status.SUCCEEDED)
    legacy = {"Conveyor-Status-Words": "legacy"}

    now = as_admin.get(f"/api/v1/reports/{report_id}/").json()["status"]
    then = as_admin.get(f"/api/v1/reports/{report_id}/", headers=legacy).json()["status"]
    by_old_word = as_admin.get("/api/v1/reports/", {"status": "ready"}).json()["results"]

    assert (now, then) == ("succeeded", "ready")
    assert [report["id"] for report in by_old_word] == [report_id]


def test_a_failing_report_is_marked_failed_after_its_last_attempt(as_admin, tenant, work_until):
    report_id = as_admin.post("/api/v1/reports/", BODY, format="json").json()["id"]
    Report.objects.filter(pk=report_id).update(parameters={"start": "bad"})

    work_until(lambda: Report.objects.get(pk=report_id).status == "failed", queues=["reports"])

    detail = as_admin.get(f"/api/v1/reports/{report_id}/").json()
    assert detail["error"].startswith("ValueError")
    assert Job.objects.get(pk=detail["job"]).attempt == 3
