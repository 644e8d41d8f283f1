"""The admin's contact imports and exports: read-only lists, their files, tenant scoping."""

import pytest
from django.test import Client

from communications.models import Contact
from communications.services.imports import start_export
from tests.communications.imports_helpers import csv_bytes, finished, upload

pytestmark = pytest.mark.django_db(transaction=True)
IMPORTS = "/admin/communications/contactimport/"
EXPORTS = "/admin/communications/contactexport/"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def staff(client: Client, tenant_admin) -> Client:
    client.force_login(tenant_admin)
    return client


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

    assert staff.get(f"{IMPORTS}add/").status_code == 403
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


# --- The contacts list's import and export buttons ---------------------------------------------

CONTACTS = "/admin/communications/contact/"


def test_the_contacts_import_button_previews_then_imports_into_the_chosen_tenant(
    staff, tenant, other_tenant
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    Contact.objects.create(tenant=tenant, name="Old", email="old@example.com")
    content = csv_bytes(
        "Full name,E-mail,Mobile", "Renamed,OLD@example.com,", "New,new@example.com,4155550160"
    )

    preview = staff.post(
        f"{CONTACTS}import/",
        {
            "import_file": SimpleUploadedFile("c.csv", content),
            "format": "0",
            "resource": "0",
            "tenant": tenant.pk,
        },
    )

    assert preview.status_code == 200
    assert Contact.objects.count() == 1  # nothing written before the confirm step
    confirm = preview.context["confirm_form"]
    confirmed = staff.post(f"{CONTACTS}process_import/", confirm.initial)
    assert confirmed.status_code == 302
    old = Contact.objects.get(tenant=tenant, email="old@example.com")
    new = Contact.objects.get(tenant=tenant, email="new@example.com")
    assert (old.name, new.phone, new.source) == ("Renamed", "+14155550160", Contact.Source.ADMIN)
    assert not Contact.objects.filter(tenant=other_tenant).exists()


def test_the_contacts_import_button_offers_only_tenants_the_user_administers(
    staff, tenant, other_tenant
):
    page = staff.get(f"{CONTACTS}import/")

    choices = [str(value) for value, _label in page.context["form"].fields["tenant"].choices]
    assert str(tenant.pk) in choices
    assert str(other_tenant.pk) not in choices


def test_the_contacts_import_button_refuses_an_unsafe_file_with_its_reason(staff, tenant):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = staff.post(
        f"{CONTACTS}import/",
        {
            "import_file": SimpleUploadedFile("c.xlsx", b"not a zip"),
            "format": "1",
            "resource": "0",
            "tenant": tenant.pk,
        },
    )

    assert "This is not an XLSX workbook (not a zip archive)." in response.content.decode()
    assert not Contact.objects.exists()


def test_the_contacts_export_button_escapes_formulas_in_csv(staff, tenant, other_tenant):
    Contact.objects.create(tenant=tenant, name="=1+2", email="f@example.com", phone="+14155550161")
    Contact.objects.create(tenant=other_tenant, name="Hidden", email="h@example.com")
    fields = {
        f"contactresource_{name}": "on"
        for name in ("name", "email", "phone", "company", "tags", "opted_out", "custom_fields")
    }

    response = staff.post(f"{CONTACTS}export/", {"format": "0", "resource": "0", **fields})

    text = response.content.decode("utf-8-sig")
    assert response.status_code == 200, text[:500]
    assert "'=1+2,f@example.com,+14155550161" in text
    assert "Hidden" not in text


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
