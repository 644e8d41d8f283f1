"""The admin's contact imports and exports: read-only lists, their files, tenant scoping."""

import csv
import io
import json
from typing import Any

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from django.test import Client
from openpyxl import load_workbook

from communications.models import Contact, ContactExport, ContactImport
from communications.services.imports import start_export
from jobs.models import Job
from tenants.models import Role
from tests.communications.imports_helpers import csv_bytes, finished, job_of, upload
from tests.factories import make_member

pytestmark = pytest.mark.django_db(transaction=True)
IMPORTS = "/admin/communications/contactimport/"
EXPORTS = "/admin/communications/contactexport/"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def client_factory():
    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def staff(client_factory, tenant_admin) -> Client:
    return client_factory(tenant_admin)


def download(client: Client, url: str) -> tuple[int, bytes]:
    response = client.get(url)
    body = response.getvalue() if response.status_code == 200 else b""
    return response.status_code, body


def test_the_imports_list_shows_the_tenants_imports_with_their_files(
    staff, tenant, other_tenant, tenant_admin, run_worker
):
    mine = finished(
        run_worker, upload(tenant, tenant_admin, csv_bytes("Email", "a@example.com", "nope"))
    )
    theirs = finished(run_worker, upload(other_tenant, None, csv_bytes("Email", "b@example.com")))

    page = staff.get(IMPORTS).content.decode()

    assert f'<a href="{IMPORTS}add/" class="addlink">Import contacts…</a>' in page
    assert "Add contact import" not in page
    assert f"{IMPORTS}{mine.pk}/download/error_file/" in page
    assert f"{IMPORTS}{mine.pk}/download/file/" in page
    assert str(theirs.pk) not in page
    assert staff.get(f"{IMPORTS}{mine.pk}/change/").status_code == 200
    assert "line 3: email: &#x27;nope&#x27; is not a valid email address." in (
        staff.get(f"{IMPORTS}{mine.pk}/change/").content.decode()
    )
    status, body = download(staff, f"{IMPORTS}{mine.pk}/download/error_file/")
    assert (status, body.decode("utf-8-sig").splitlines()[0]) == (200, "line,Email,errors")
    assert download(staff, f"{IMPORTS}{mine.pk}/download/file/") == (
        200,
        csv_bytes("Email", "a@example.com", "nope"),
    )
    assert download(staff, f"{IMPORTS}{theirs.pk}/download/file/")[0] == 404
    assert download(staff, f"{IMPORTS}{mine.pk}/download/mapping/")[0] == 404


def test_imports_and_exports_are_read_only_in_the_admin(staff, tenant, tenant_admin):
    contact_import = upload(tenant, tenant_admin, csv_bytes("Email", "a@example.com"))

    response = staff.post(f"{IMPORTS}{contact_import.pk}/change/", {"status": "failed"})
    assert response.status_code == 403


def test_the_exports_list_links_each_finished_export_for_download(
    staff, tenant, other_tenant, tenant_admin, run_worker
):
    Contact.objects.create(tenant=tenant, email="mine@example.com")
    mine = start_export(tenant=tenant, by=tenant_admin, format="csv", filters={})
    theirs = start_export(tenant=other_tenant, by=None, format="csv", filters={})
    run_worker(["imports"])

    page = staff.get(EXPORTS).content.decode()

    assert f'<a href="{EXPORTS}add/" class="addlink">Export contacts…</a>' in page
    assert f"{EXPORTS}{mine.pk}/download/file/" in page
    assert str(theirs.pk) not in page
    status, body = download(staff, f"{EXPORTS}{mine.pk}/download/file/")
    assert status == 200
    assert b"mine@example.com" in body
    assert download(staff, f"{EXPORTS}{theirs.pk}/download/file/")[0] == 404


def test_a_superuser_sees_every_tenants_imports_and_exports(
    admin_client, tenant, other_tenant, tenant_admin
):
    first = upload(tenant, tenant_admin, csv_bytes("Email", "a@example.com"))
    second = upload(other_tenant, None, csv_bytes("Email", "b@example.com"))
    start_export(tenant=other_tenant, by=None, format="xlsx", filters={})

    page = admin_client.get(IMPORTS).content.decode()

    assert str(first.pk) in page
    assert str(second.pk) in page
    assert admin_client.get(EXPORTS).status_code == 200
    assert admin_client.get(f"{IMPORTS}{second.pk}/change/").status_code == 200


# --- Starting imports and exports from the admin -------------------------------------------

CONTACTS = "/admin/communications/contact/"


def csv_file() -> SimpleUploadedFile:
    return SimpleUploadedFile("c.csv", csv_bytes("Email", "a@example.com"))


def start_import_page(client: Client, content: bytes, name: str = "c.csv", **fields: Any):
    return client.post(f"{IMPORTS}add/", {"file": SimpleUploadedFile(name, content), **fields})


def change_page_of(response: HttpResponse, admin_url: str) -> str:
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"].startswith(admin_url)
    assert response["Location"].endswith("/change/")
    return response["Location"]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AGENT])
def test_the_contacts_list_links_the_import_and_export_pages_for_admins_only(
    staff, tenant, client_factory, role
):
    member = client_factory(make_member(tenant, role, is_staff=True))
    listed = staff.get(CONTACTS).content.decode()

    assert f'href="{IMPORTS}add/"' in listed
    assert f'href="{EXPORTS}add/' in listed
    assert f"{IMPORTS}add/" not in member.get(CONTACTS).content.decode()
    assert member.get(f"{IMPORTS}add/").status_code == 403
    assert member.get(f"{EXPORTS}add/").status_code == 403
    crafted = member.post(f"{IMPORTS}add/", {"tenant": tenant.pk, "file": csv_file()})
    assert crafted.status_code == 403
    assert not ContactImport.objects.exists()


def test_an_import_from_the_admin_runs_as_a_job_with_its_mapping_into_the_chosen_tenant(
    staff, tenant, other_tenant, tenant_admin, run_worker
):
    content = csv_bytes("Work mail,Who,Notes", "ada@example.com,Ada,x", "bob@example.com,Bob,y")
    mapping = json.dumps({"Work mail": "email", "Who": "name", "Notes": ""})

    response = start_import_page(staff, content, tenant=tenant.pk, mapping=mapping, policy="skip")

    page = change_page_of(response, IMPORTS)
    contact_import = ContactImport.objects.get()
    assert (contact_import.tenant, job_of(contact_import).status) == (tenant, Job.Status.QUEUED)
    running = staff.get(page.replace("/change/", "/progress/"))
    assert running["X-Transfer-Running"] == "1"
    entry = LogEntry.objects.get(object_id=str(contact_import.pk))
    assert (entry.user, entry.action_flag) == (tenant_admin, ADDITION)
    run_worker(["imports"])
    assert sorted(Contact.objects.for_tenant(tenant).values_list("email", "name")) == [
        ("ada@example.com", "Ada"),
        ("bob@example.com", "Bob"),
    ]
    assert not Contact.objects.filter(tenant=other_tenant).exists()
    shown = staff.get(page).content.decode()
    assert "Created 2, updated 0, skipped 0; 0 rows rejected." in shown
    assert "&quot;Notes&quot;: &quot;&quot;" in shown  # the mapping chosen
    assert staff.get(page.replace("/change/", "/progress/"))["X-Transfer-Running"] == "0"


def test_a_dry_run_from_the_admin_creates_nothing_until_it_is_imported_for_real(
    staff, tenant, run_worker
):
    Contact.objects.create(tenant=tenant, email="old@example.com", name="Old")
    content = csv_bytes("Email,Name", "old@example.com,Renamed", "new@example.com,New", "nope,X")

    page = change_page_of(
        start_import_page(staff, content, tenant=tenant.pk, policy="update", dry_run="on"), IMPORTS
    )
    run_worker(["imports"])

    shown = staff.get(page).content.decode()
    assert "Would create 1, would update 1, would skip 0; 1 rows rejected." in shown
    assert list(Contact.objects.values_list("email", "name")) == [("old@example.com", "Old")]
    run_page = page.replace("/change/", "/run/")
    assert f'href="{run_page}"' in shown
    assert "found 1 new, 1 to update" in staff.get(run_page).content.decode()
    real_page = change_page_of(staff.post(run_page), IMPORTS)
    assert change_page_of(staff.post(run_page), IMPORTS) == real_page  # a second click
    run_worker(["imports"])
    real = ContactImport.objects.get(dry_run=False)
    assert (real.policy, real.original_name, real.counts["new"]) == ("update", "c.csv", 1)
    assert real_page.endswith(f"{real.pk}/change/")
    assert sorted(Contact.objects.values_list("email", "name")) == [
        ("new@example.com", "New"),
        ("old@example.com", "Renamed"),
    ]
    assert LogEntry.objects.filter(action_flag=ADDITION).count() == 2
    assert "Imported for real" in staff.get(page).content.decode()


def test_only_a_succeeded_dry_run_can_be_imported_for_real(staff, tenant, tenant_admin):
    real = upload(tenant, tenant_admin, csv_bytes("Email", "a@example.com"))

    response = staff.post(f"{IMPORTS}{real.pk}/run/", follow=True)

    assert "Only a dry run that succeeded can be imported for real." in response.content.decode()
    assert ContactImport.objects.count() == 1


@pytest.mark.parametrize(
    ("name", "content", "fields", "field", "message"),
    [
        ("c.csv", None, {}, "file", "This field is required."),
        ("c.xlsx", b"not a zip", {}, "file", "This is not an XLSX workbook (not a zip archive)."),
        ("c.txt", b"Email\na@example.com\n", {}, "file", "Cannot tell the format of 'c.txt'"),
        ("c.csv", b"Email\na@example.com\n", {"format": "doc"}, "format", "Select a valid"),
        ("c.csv", b"", {}, "file", "The submitted file is empty."),
        ("c.csv", b"Email\na@example.com\n", {"mapping": "{nope"}, "mapping", "valid JSON"),
        (
            "c.csv",
            b"Email\na@example.com\n",
            {"mapping": '{"Email": "mail"}'},
            "mapping",
            "'Email' → 'mail': the field must be one of",
        ),
        (
            "c.csv",
            b"Email\na@example.com\n",
            {"mapping": '{"Mail": "email"}'},
            "mapping",
            "The mapping names column(s) the file does not have: Mail.",
        ),
    ],
    ids=[
        "no-file",
        "unreadable",
        "unknown-extension",
        "unknown-format",
        "empty",
        "not-json",
        "unknown-field",
        "unknown-column",
    ],
)
def test_bad_import_input_is_a_form_error(staff, tenant, name, content, fields, field, message):
    data = {"tenant": tenant.pk, "policy": "skip", **fields}
    if content is not None:
        data["file"] = SimpleUploadedFile(name, content)

    response = staff.post(f"{IMPORTS}add/", data)

    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors.get(field, []))
    assert message in errors, response.context["form"].errors
    assert not ContactImport.objects.exists()


def test_a_crafted_post_naming_another_tenant_is_refused(staff, tenant, other_tenant):
    imported = start_import_page(staff, csv_bytes("Email", "a@example.com"), tenant=other_tenant.pk)
    exported = staff.post(f"{EXPORTS}add/", {"tenant": other_tenant.pk, "format": "csv"})

    for response in (imported, exported):
        assert response.status_code == 200
        assert "Select a valid choice" in " ".join(response.context["form"].errors["tenant"])
    assert not ContactImport.objects.exists()
    assert not ContactExport.objects.exists()
    offered = staff.get(f"{EXPORTS}add/").context["form"].fields["tenant"].queryset
    assert list(offered) == [tenant]


def read_export(name: str, body: bytes) -> list[str]:
    """The emails in an export file of any format."""
    if name == "csv":
        return [row["email"] for row in csv.DictReader(io.StringIO(body.decode("utf-8-sig")))]
    if name == "json":
        return [item["email"] for item in json.loads(body)]
    if name == "xlsx":
        sheet = load_workbook(io.BytesIO(body), read_only=True).active
        return [row[1] for row in list(sheet.iter_rows(values_only=True))[1:]]
    assert body.startswith(b"%PDF")
    return []


@pytest.mark.parametrize("format", ["csv", "xlsx", "json", "pdf"])
def test_an_export_from_the_admin_is_a_job_whose_file_the_page_offers(
    staff, tenant, other_tenant, tenant_admin, run_worker, format
):
    Contact.objects.create(tenant=tenant, email="vip@example.com", tags=["vip"])
    Contact.objects.create(tenant=tenant, email="plain@example.com")
    Contact.objects.create(tenant=other_tenant, email="theirs@example.com", tags=["vip"])

    response = staff.post(f"{EXPORTS}add/", {"tenant": tenant.pk, "format": format, "tag": "vip"})

    page = change_page_of(response, EXPORTS)
    export = ContactExport.objects.get()
    assert (export.format, export.filters) == (format, {"tag": "vip"})
    assert LogEntry.objects.get(object_id=str(export.pk)).user == tenant_admin
    run_worker(["imports"])
    link = f"{EXPORTS}{export.pk}/download/file/"
    assert link in staff.get(page).content.decode()
    status, body = download(staff, link)
    assert status == 200
    assert read_export(format, body) in (["vip@example.com"], [])


def test_bad_export_input_is_a_form_error(staff, tenant):
    response = staff.post(
        f"{EXPORTS}add/",
        {
            "tenant": tenant.pk,
            "format": "doc",
            "created_after": "2026-02-01 00:00",
            "created_before": "2026-01-01 00:00",
        },
    )

    errors = response.context["form"].errors
    assert response.status_code == 200
    assert "Select a valid choice" in errors["format"][0]
    assert errors["created_before"] == ["Must be later than created after."]
    assert not ContactExport.objects.exists()


def test_the_export_button_carries_the_contacts_list_filters(staff, tenant):
    response = staff.get(f"{EXPORTS}add/?tag=vip&q=ada&opted_out__exact=0")

    assert response.context["form"].initial == {"tag": "vip", "search": "ada", "opted_out": False}


# --- Resources for jobs and messages -----------------------------------------------------------


def test_the_job_resource_exports_jobs_without_payloads(tenant):
    from communications.resources import JobResource
    from jobs.services.jobs import enqueue_job

    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={"secret": "x"})

    dataset = JobResource().export(queryset=type(job).objects.filter(pk=job.pk))

    assert dataset.dict[0]["tenant"] == "acme"
    assert dataset.dict[0]["kind"] == "jobs.noop"
    assert "payload" not in dataset.headers


def test_the_message_resource_exports_messages_without_bodies(tenant):
    from communications.models import Message
    from communications.resources import MessageResource

    message = Message.objects.create(
        tenant=tenant, channel="sms", recipient="+14155550162", text="secret body"
    )

    dataset = MessageResource().export(queryset=Message.objects.filter(pk=message.pk))

    assert dataset.dict[0]["recipient"] == "+14155550162"
    assert "text" not in dataset.headers
    assert "html" not in dataset.headers
