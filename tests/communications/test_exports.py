"""Contact exports as jobs: every format, filters, formula escaping, downloads per tenant."""

import csv
import io
import json
import shutil
import subprocess
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone
from openpyxl import load_workbook

from communications.models import Contact, ContactExport, Notification
from communications.services.imports import start_export
from jobs.models import Job
from tests.communications.imports_helpers import job_of
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db(transaction=True)
EXPORTS = "/api/v1/contacts/exports/"
HOSTILE: dict[str, Any] = {
    "name": '=HYPERLINK("http://evil.example","click")',
    "company": "+cmd|' /C calc'!A0",
    "email": "hostile@example.com",
    "phone": "+14155550150",
    "tags": ["@SUM(1+1)", "-2+3", "\tTab", "\rReturn"],
}


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def as_admin(api_client, tenant_admin):
    api_client.force_authenticate(tenant_admin)
    return api_client


def contact(tenant, **fields):
    return Contact.objects.create(tenant=tenant, **fields)


def exported(run_worker, tenant, user, format, **filters) -> ContactExport:
    export = start_export(tenant=tenant, by=user, format=format, filters=filters)
    run_worker(["imports"])
    export.refresh_from_db()
    return export


def file_bytes(export: ContactExport) -> bytes:
    with export.file.open("rb") as handle:
        return handle.read()


def csv_rows(export: ContactExport) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(file_bytes(export).decode("utf-8-sig"))))


# --- Formats ------------------------------------------------------------------------------------


def test_a_csv_export_writes_the_contacts_columns(tenant, tenant_admin, run_worker):
    contact(
        tenant,
        name="Ada",
        email="ada@example.com",
        phone="+14155550151",
        company="Analytical",
        tags=["vip", "speaker"],
        custom_fields={"plan": "pro"},
    )

    export = exported(run_worker, tenant, tenant_admin, "csv")

    assert (export.status, export.row_count) == (ContactExport.Status.SUCCEEDED, 1)
    [row] = csv_rows(export)
    assert {key: row[key] for key in ("name", "email", "phone", "company", "tags")} == {
        "name": "Ada",
        "email": "ada@example.com",
        "phone": "+14155550151",
        "company": "Analytical",
        "tags": "vip,speaker",
    }
    assert json.loads(row["custom_fields"]) == {"plan": "pro"}
    assert export.file.name == f"exports/{tenant.pk}/{export.pk}.csv"
    job = job_of(export)
    assert (job.status, job.queue, job.result) == (
        Job.Status.SUCCEEDED,
        "imports",
        {"rows": 1, "format": "csv"},
    )


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(tenant, tenant_admin, run_worker):
    contact(tenant, **HOSTILE)

    [row] = csv_rows(exported(run_worker, tenant, tenant_admin, "csv"))

    assert row["name"] == "'" + HOSTILE["name"]
    assert row["company"] == "'" + HOSTILE["company"]
    assert row["tags"] == "'@SUM(1+1),-2+3,\tTab,\rReturn"
    assert row["phone"] == "+14155550150"  # a plain number cannot be a formula


def test_xlsx_cells_that_a_spreadsheet_would_run_are_escaped_text(tenant, tenant_admin, run_worker):
    contact(tenant, **HOSTILE)
    contact(tenant, name="-Minus", email="minus@example.com", tags=["\tTabbed"])

    export = exported(run_worker, tenant, tenant_admin, "xlsx")

    sheet = load_workbook(io.BytesIO(file_bytes(export))).worksheets[0]
    header, *rows = [list(row) for row in sheet.iter_rows()]
    names = {cell.value: cell for cell in header}
    values = [{h.value: cell.value for h, cell in zip(header, row, strict=True)} for row in rows]
    assert [v["name"] for v in values] == ["'" + HOSTILE["name"], "'-Minus"]
    assert values[0]["company"] == "'" + HOSTILE["company"]
    assert values[1]["tags"] == "'\tTabbed"
    assert values[0]["phone"] == "+14155550150"
    assert all(cell.data_type != "f" for row in rows for cell in row)
    assert "name" in names


def test_a_json_export_has_native_lists_objects_and_booleans(tenant, tenant_admin, run_worker):
    contact(
        tenant,
        name="Kim",
        email="kim@example.com",
        tags=["a"],
        opted_out=True,
        custom_fields={"seats": 3},
    )

    export = exported(run_worker, tenant, tenant_admin, "json")

    [item] = json.loads(file_bytes(export))
    assert (item["name"], item["tags"], item["custom_fields"], item["opted_out"]) == (
        "Kim",
        ["a"],
        {"seats": 3},
        True,
    )


def test_a_pdf_export_lists_the_contacts(tenant, tenant_admin, run_worker):
    contact(tenant, name="Ada Lovelace", email="ada@example.com")
    contact(tenant, name="Grace Hopper", email="grace@example.com")

    export = exported(run_worker, tenant, tenant_admin, "pdf")

    content = file_bytes(export)
    assert content.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", "-", "-"], input=content, capture_output=True, check=True
        ).stdout.decode()
        assert "Ada Lovelace" in text
        assert "grace@example.com" in text
        assert "Contacts of Acme" in text


def test_a_pdf_of_more_contacts_than_allowed_fails_with_a_clear_error(
    tenant, tenant_admin, run_worker, settings
):
    settings.CONTACT_EXPORT_PDF_MAX_ROWS = 1
    contact(tenant, email="a@example.com")
    contact(tenant, email="b@example.com")

    export = exported(run_worker, tenant, tenant_admin, "pdf")

    assert export.status == ContactExport.Status.FAILED
    assert export.error.startswith("2 contacts match: a PDF holds at most 1.")
    assert job_of(export).status == Job.Status.FAILED


# --- Filters ------------------------------------------------------------------------------------


def test_filters_choose_the_contacts_by_tag_opt_out_creation_and_search(
    tenant, other_tenant, tenant_admin, run_worker
):
    old = contact(tenant, name="Old VIP", email="old@example.com", tags=["vip"])
    Contact.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    contact(tenant, name="New VIP", email="new@initech.example", tags=["vip"])
    contact(tenant, name="Opted out VIP", email="out@example.com", tags=["vip"], opted_out=True)
    contact(tenant, name="Plain", email="plain@initech.example")
    contact(other_tenant, name="Elsewhere VIP", email="else@example.com", tags=["vip"])
    since = (timezone.now() - timedelta(days=1)).isoformat()

    def names(**filters):
        export = exported(run_worker, tenant, tenant_admin, "csv", **filters)
        return sorted(row["name"] for row in csv_rows(export))

    assert names() == ["New VIP", "Old VIP", "Opted out VIP", "Plain"]
    assert names(tag="vip", opted_out=False) == ["New VIP", "Old VIP"]
    assert names(tag="vip", created_after=since) == ["New VIP", "Opted out VIP"]
    assert names(created_before=since) == ["Old VIP"]
    assert names(search="initech") == ["New VIP", "Plain"]


# --- Notification -------------------------------------------------------------------------------


def test_a_finished_export_tells_its_requester_where_to_download_it(
    tenant, tenant_admin, run_worker
):
    contact(tenant, email="a@example.com")

    export = exported(run_worker, tenant, tenant_admin, "csv")
    run_worker(["notifications", "email"])

    notification = Notification.objects.get(user=tenant_admin)
    assert notification.link == f"/api/v1/contacts/exports/{export.pk}/download/"
    assert [message.to for message in mail.outbox] == [[tenant_admin.email]]


# --- API ----------------------------------------------------------------------------------------


def test_an_admin_starts_an_export_and_downloads_it_when_done(as_admin, tenant, run_worker):
    contact(tenant, name="Ada", email="ada@example.com", tags=["vip"])
    contact(tenant, name="Bob", email="bob@example.com")

    response = as_admin.post(EXPORTS, {"format": "csv", "tag": "vip"}, format="json")

    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["filters"], body["download_url"]) == (
        "pending",
        {"tag": "vip"},
        None,
    )
    not_ready = as_admin.get(f"{EXPORTS}{body['id']}/download/")
    assert not_ready.status_code == 409
    run_worker(["imports"])
    detail = as_admin.get(f"{EXPORTS}{body['id']}/").json()
    assert (detail["status"], detail["row_count"]) == ("succeeded", 1)
    download = as_admin.get(detail["download_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv"
    assert download["Content-Disposition"].startswith('attachment; filename="contacts-')
    text = b"".join(download.streaming_content).decode("utf-8-sig")
    assert "ada@example.com" in text
    assert "bob@example.com" not in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"format": "docx"}, "format"),
        ({}, "format"),
        (
            {
                "format": "csv",
                "created_after": "2026-11-02T00:00:00Z",
                "created_before": "2026-11-01T00:00:00Z",
            },
            "created_before",
        ),
    ],
)
def test_bad_export_requests_answer_400(as_admin, body, field):
    response = as_admin.post(EXPORTS, body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not ContactExport.objects.exists()


def test_another_tenants_export_answers_404_to_detail_and_download(
    api_client, tenant, other_tenant, tenant_admin, run_worker
):
    contact(other_tenant, email="secret@example.com")
    theirs = exported(run_worker, other_tenant, None, "csv")
    _key, raw_key = make_api_key(tenant_admin, tenant=tenant)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}

    assert api_client.get(f"{EXPORTS}{theirs.pk}/", **headers).status_code == 404
    assert api_client.get(f"{EXPORTS}{theirs.pk}/download/", **headers).status_code == 404
    assert api_client.get(EXPORTS, **headers).json()["results"] == []


def test_a_viewer_may_not_export(api_client, viewer):
    api_client.force_authenticate(viewer)

    response = api_client.post(EXPORTS, {"format": "csv"}, format="json")

    assert response.status_code == 403
