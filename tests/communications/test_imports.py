"""Contact imports as jobs: formats, column matching, validation, duplicates, dry runs."""

import pytest
from django.core import mail
from django.core.files.storage import default_storage

from communications.models import Contact, ContactImport, Notification, WebhookDelivery
from communications.services.import_rows import match_columns
from communications.services.webhooks import create_endpoint
from jobs.models import Job, JobLog
from tests.communications.imports_helpers import (
    contacts_of,
    csv_bytes,
    finished,
    job_of,
    json_bytes,
    rejections,
    upload,
    xlsx_bytes,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def make_contact(tenant, **fields):
    return Contact.objects.create(tenant=tenant, **fields)


# --- Formats ------------------------------------------------------------------------------------


def test_a_csv_import_creates_contacts_with_clean_emails_and_e164_phones(
    tenant, tenant_admin, run_worker
):
    content = csv_bytes(
        "Full name,E-mail,Phone number,Company,Tags",
        "Ada Lovelace,ADA@Example.com,(415) 555-0123,Analytical,vip; speaker",
        "Alan Turing,,+44 20 7183 8750,Bletchley,",
    )

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content))

    assert contact_import.status == ContactImport.Status.SUCCEEDED
    assert contact_import.counts == {"new": 2, "updated": 0, "skipped": 0, "invalid": 0}
    assert contact_import.columns == {
        "Full name": "name",
        "E-mail": "email",
        "Phone number": "phone",
        "Company": "company",
        "Tags": "tags",
    }
    ada, alan = Contact.objects.for_tenant(tenant).order_by("name")
    assert (ada.email, ada.phone, ada.tags, ada.company) == (
        "ada@example.com",
        "+14155550123",
        ["vip", "speaker"],
        "Analytical",
    )
    assert (alan.email, alan.phone) == ("", "+442071838750")
    assert (ada.source, ada.created_by) == (Contact.Source.IMPORT, tenant_admin)
    job = job_of(contact_import)
    assert (job.status, job.queue, job.kind) == (
        Job.Status.SUCCEEDED,
        "imports",
        "communications.import_contacts",
    )
    assert job.result == {
        "new": 2,
        "updated": 0,
        "skipped": 0,
        "invalid": 0,
        "rows": 2,
        "dry_run": False,
    }


def test_an_xlsx_import_reads_the_first_sheet_including_numeric_phone_cells(
    tenant, tenant_admin, run_worker
):
    content = xlsx_bytes(
        [
            ["Name", "Email address", "Mobile", "Opted out"],
            ["Grace Hopper", "grace@example.com", 4155550124, "yes"],
            [None, None, None, None],
            ["Linus", "linus@example.com", None, "no"],
        ]
    )

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content, "people.xlsx"))

    assert contact_import.counts == {"new": 2, "updated": 0, "skipped": 0, "invalid": 0}
    grace = Contact.objects.get(tenant=tenant, email="grace@example.com")
    assert (grace.name, grace.phone, grace.opted_out) == ("Grace Hopper", "+14155550124", True)
    assert not Contact.objects.get(tenant=tenant, email="linus@example.com").opted_out


def test_a_json_import_takes_objects_with_tag_lists_and_custom_fields(
    tenant, tenant_admin, run_worker
):
    document = {
        "contacts": [
            {
                "name": "Katherine Johnson",
                "email": "kj@example.com",
                "tags": ["nasa", "math"],
                "custom_fields": {"plan": "pro", "seats": 12},
            },
            {"name": "Dorothy Vaughan", "phone": 4155550125},
            "not an object",
        ]
    }

    contact_import = finished(
        run_worker, upload(tenant, tenant_admin, json_bytes(document), "c.json")
    )

    assert contact_import.counts == {"new": 2, "updated": 0, "skipped": 0, "invalid": 1}
    katherine = Contact.objects.get(tenant=tenant, email="kj@example.com")
    assert katherine.tags == ["nasa", "math"]
    assert katherine.custom_fields == {"plan": "pro", "seats": "12"}
    assert Contact.objects.get(tenant=tenant, phone="+14155550125").name == "Dorothy Vaughan"
    assert rejections(contact_import) == [(3, ['Not a JSON object: "not an object".'])]


# --- Column mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("E-mail", "email"),
        ("Email address", "email"),
        ("email", "email"),
        ("Phone number", "phone"),
        ("Mobile", "phone"),
        ("Full name", "name"),
        ("Name", "name"),
        ("Company", "company"),
        ("Organisation", "company"),
        ("Tags", "tags"),
        ("Unsubscribed", "opted_out"),
    ],
)
def test_common_header_names_are_matched_automatically(header, field):
    columns = match_columns(["Phone", header] if field != "phone" else ["Email", header], {})

    assert columns[1] == field


def test_a_mapping_names_columns_that_headers_alone_would_not(tenant, tenant_admin, run_worker):
    content = csv_bytes(
        "Work mail,Customer,Notes,Plan,Email",
        "ops@example.com,Initech,call back,gold,ignored@example.com",
    )
    mapping = {
        "Work mail": "email",
        "Customer": "company",
        "Notes": "",
        "Plan": "custom_fields.plan",
    }

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content, mapping=mapping))

    contact = Contact.objects.get(tenant=tenant)
    assert (contact.email, contact.company, contact.custom_fields) == (
        "ops@example.com",
        "Initech",
        {"plan": "gold"},
    )
    assert contact_import.columns == {
        "Work mail": "email",
        "Customer": "company",
        "Plan": "custom_fields.plan",
    }


def test_first_and_last_name_columns_make_the_name(tenant, tenant_admin, run_worker):
    content = csv_bytes("First name,Last name,Email", "Barbara,Liskov,bl@example.com")

    finished(run_worker, upload(tenant, tenant_admin, content))

    assert Contact.objects.get(tenant=tenant).name == "Barbara Liskov"


def test_a_mapping_naming_a_column_the_file_lacks_fails_the_import_clearly(
    tenant, tenant_admin, run_worker
):
    content = csv_bytes("Email", "a@example.com")

    contact_import = finished(
        run_worker, upload(tenant, tenant_admin, content, mapping={"Mail": "email"})
    )

    assert contact_import.status == ContactImport.Status.FAILED
    assert "does not have: Mail" in contact_import.error
    assert not Contact.objects.exists()
    job = job_of(contact_import)
    assert (job.status, job.attempt) == (Job.Status.FAILED, 1)
    assert "does not have: Mail" in job.error_message


def test_a_file_without_email_or_phone_columns_is_refused_with_its_columns_named(
    tenant, tenant_admin, run_worker
):
    content = csv_bytes("Name,Company", "Ada,Analytical")

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content))

    assert contact_import.status == ContactImport.Status.FAILED
    assert "No column holds an email address or a phone number" in contact_import.error
    assert "Name, Company" in contact_import.error


# --- Validation and partial success -------------------------------------------------------------


def test_invalid_rows_are_reported_by_line_and_reason_while_valid_rows_are_imported(
    tenant, tenant_admin, run_worker
):
    content = csv_bytes(
        "Name,Email,Phone,Tags,Opted out",
        "Valid One,one@example.com,,,",
        "No Address,,,,",
        "Bad Mail,not-an-email,,,",
        "Bad Phone,,12,,",
        "Bad Flag,flag@example.com,,,maybe",
        f"Long Tag,tag@example.com,,{'x' * 51},",
        f"{'N' * 201},long@example.com,,,",
        "Valid Two,,+1 415 555 0126,,",
    )

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content))

    assert contact_import.status == ContactImport.Status.SUCCEEDED
    assert contact_import.counts == {"new": 2, "updated": 0, "skipped": 0, "invalid": 6}
    assert rejections(contact_import) == [
        (3, ["Either an email address or a phone number is required."]),
        (4, ["email: 'not-an-email' is not a valid email address."]),
        (5, ["'12' is not a valid phone number for region US."]),
        (6, ["opted_out: 'maybe' is not yes/no or true/false."]),
        (7, [f"tags: {'x' * 51!r} is longer than 50 characters."]),
        (8, ["name: longer than 200 characters."]),
    ]
    assert sorted(Contact.objects.values_list("name", flat=True)) == ["Valid One", "Valid Two"]


def test_phone_numbers_without_a_prefix_use_the_tenants_default_region(
    tenant, tenant_admin, run_worker
):
    tenant.default_region = "GB"
    tenant.save()
    content = csv_bytes("Phone", "020 7183 8750")

    finished(run_worker, upload(tenant, tenant_admin, content))

    assert Contact.objects.get(tenant=tenant).phone == "+442071838750"


def test_the_error_file_holds_the_rejected_rows_with_an_errors_column(
    tenant, tenant_admin, run_worker
):
    content = csv_bytes("Name,Email", "Ok,ok@example.com", "=HYPERLINK(1),nope", "Empty,")

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content))

    assert contact_import.error_file.name
    with default_storage.open(contact_import.error_file.name) as error_file:
        text = error_file.read().decode("utf-8-sig")
    assert text.splitlines() == [
        "line,Name,Email,errors",
        "3,'=HYPERLINK(1),nope,email: 'nope' is not a valid email address.",
        "4,Empty,,Either an email address or a phone number is required.",
    ]
    assert contact_import.error_file.name.startswith(f"imports/{tenant.pk}/")


def test_the_error_file_writes_an_uploaded_header_as_text(tenant, tenant_admin, run_worker):
    content = csv_bytes("Name,Email,@SUM(1+1)", "Bad,nope,x")

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content))

    name = str(contact_import.error_file.name)
    with default_storage.open(name) as error_file:
        header = error_file.read().decode("utf-8-sig").splitlines()[0]
    assert header == "line,Name,Email,'@SUM(1+1),errors"


# --- Duplicates ---------------------------------------------------------------------------------


def test_duplicates_within_the_file_are_skipped_under_the_skip_policy(
    tenant, tenant_admin, run_worker
):
    content = csv_bytes(
        "Name,Email,Phone",
        "First,dup@example.com,",
        "Second,DUP@example.com,",
        "Third,other@example.com,+14155550127",
        "Fourth,,(415) 555-0127",
    )

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content, policy="skip"))

    assert contact_import.counts == {"new": 2, "updated": 0, "skipped": 2, "invalid": 0}
    assert sorted(Contact.objects.values_list("name", flat=True)) == ["First", "Third"]


def test_duplicates_within_the_file_update_the_earlier_row_under_the_update_policy(
    tenant, tenant_admin, run_worker
):
    content = csv_bytes(
        "Name,Email,Phone,Tags",
        "First,dup@example.com,,a",
        "Second,DUP@example.com,+14155550128,b",
        "Second,dup@example.com,,b",
    )

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content, policy="update"))

    assert contact_import.counts == {"new": 1, "updated": 1, "skipped": 1, "invalid": 0}
    contact = Contact.objects.get(tenant=tenant)
    assert (contact.name, contact.phone, contact.tags) == ("Second", "+14155550128", ["a", "b"])


def test_rows_matching_existing_contacts_by_email_or_phone_are_skipped_under_skip(
    tenant, other_tenant, tenant_admin, run_worker
):
    by_email = make_contact(tenant, name="Kept", email="kept@example.com")
    by_phone = make_contact(tenant, name="Also kept", phone="+14155550129")
    make_contact(other_tenant, name="Elsewhere", email="new@example.com")
    content = csv_bytes(
        "Name,Email,Phone",
        "Changed,KEPT@example.com,",
        "Changed too,,415-555-0129",
        "New,new@example.com,",
    )

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content, policy="skip"))

    assert contact_import.counts == {"new": 1, "updated": 0, "skipped": 2, "invalid": 0}
    by_email.refresh_from_db()
    by_phone.refresh_from_db()
    assert (by_email.name, by_phone.name) == ("Kept", "Also kept")
    assert Contact.objects.for_tenant(tenant).filter(email="new@example.com").exists()


def test_rows_matching_existing_contacts_update_them_under_update(tenant, tenant_admin, run_worker):
    contact = make_contact(
        tenant,
        name="Old",
        email="ann@example.com",
        company="Old Co",
        tags=["a"],
        opted_out=True,
        custom_fields={"plan": "free", "seats": "1"},
    )
    content = csv_bytes(
        "Name,Email,Phone,Company,Tags,Opted out,custom_fields.plan",
        "New Name,ann@example.com,+14155550130,,b,no,pro",
        "New Name,ann@example.com,,,,,",
    )

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content, policy="update"))

    assert contact_import.counts == {"new": 0, "updated": 1, "skipped": 1, "invalid": 0}
    contact.refresh_from_db()
    assert (contact.name, contact.phone, contact.company, contact.tags) == (
        "New Name",
        "+14155550130",
        "Old Co",  # an empty cell keeps the value
        ["a", "b"],  # tags are added
    )
    assert contact.opted_out  # an import never opts a contact back in
    assert contact.custom_fields == {"plan": "pro", "seats": "1"}


def test_a_row_matching_two_different_contacts_is_invalid_under_update(
    tenant, tenant_admin, run_worker
):
    ann = make_contact(tenant, name="Ann", email="ann@example.com")
    bob = make_contact(tenant, name="Bob", phone="+14155550131")
    content = csv_bytes("Email,Phone", "ann@example.com,+14155550131")

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content, policy="update"))

    assert contact_import.counts == {"new": 0, "updated": 0, "skipped": 0, "invalid": 1}
    assert rejections(contact_import) == [
        (
            2,
            [
                f"The email matches contact {ann.pk} but the phone matches contact {bob.pk}: "
                "they are different contacts."
            ],
        )
    ]


# --- Dry runs and batches -----------------------------------------------------------------------

MIXED = csv_bytes(
    "Name,Email,Phone,Tags",
    "New A,a@example.com,,x",
    "Dup A,A@example.com,+14155550140,y",
    "Existing by mail,old@example.com,,z",
    "Existing by phone,,415 555 0141,",
    "Invalid,nope,,",
    "New B,b@example.com,+14155550142,",
    "Conflict,old@example.com,+14155550142,",
    ",old@example.com,,",
    "New C,,+14155550143,",
    "Dup C,c@example.com,+14155550143,w",
)


@pytest.mark.parametrize("policy", ["skip", "update"])
def test_a_dry_run_changes_nothing_and_predicts_the_real_run_exactly(
    tenant, tenant_admin, run_worker, settings, policy
):
    settings.CONTACT_IMPORT_BATCH_SIZE = 3  # duplicates fall in other batches too
    make_contact(tenant, name="Old", email="old@example.com", tags=["z"])
    make_contact(tenant, name="Old phone", phone="+14155550141")
    before = contacts_of(tenant)

    dry = finished(run_worker, upload(tenant, tenant_admin, MIXED, policy=policy, dry_run=True))

    assert contacts_of(tenant) == before
    real = finished(run_worker, upload(tenant, tenant_admin, MIXED, policy=policy))
    assert real.counts == dry.counts
    assert rejections(real) == rejections(dry)
    assert dry.status == real.status == ContactImport.Status.SUCCEEDED
    created = Contact.objects.for_tenant(tenant).count() - len(before)
    assert created == real.counts["new"]
    expected = {
        "skip": {"new": 3, "updated": 0, "skipped": 6, "invalid": 1},
        "update": {"new": 3, "updated": 4, "skipped": 1, "invalid": 2},
    }
    assert real.counts == expected[policy]


def test_each_batch_reports_progress_on_the_job(tenant, tenant_admin, run_worker, settings):
    settings.CONTACT_IMPORT_BATCH_SIZE = 100
    lines = [f"user{n}@example.com" for n in range(1000)]
    content = csv_bytes("Email", *lines)

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content))

    assert contact_import.counts["new"] == 1000
    progress = JobLog.objects.filter(job=job_of(contact_import), event=JobLog.Event.PROGRESS)
    assert [log.data["percent"] for log in progress.order_by("pk")] == list(range(10, 101, 10))


def test_a_retried_import_resumes_after_the_rows_it_already_committed(
    tenant, tenant_admin, run_worker
):
    content = csv_bytes("Email", "a@example.com", "b@example.com", "c@example.com")
    contact_import = upload(tenant, tenant_admin, content)
    make_contact(tenant, email="a@example.com", source=Contact.Source.IMPORT)
    ContactImport.objects.filter(pk=contact_import.pk).update(processed_rows=1, new_count=1)

    contact_import = finished(run_worker, contact_import)

    assert contact_import.counts == {"new": 3, "updated": 0, "skipped": 0, "invalid": 0}
    assert Contact.objects.for_tenant(tenant).count() == 3


# --- When done ----------------------------------------------------------------------------------


def test_a_finished_import_notifies_its_uploader_and_publishes_import_completed(
    tenant, tenant_admin, run_worker, settings
):
    settings.CONVEYOR_WEBHOOK_STATIC_HOSTS = {"hooks.acme.test": ["93.184.215.14"]}
    create_endpoint(
        tenant=tenant, url="https://hooks.acme.test/in", event_types=["import.completed"]
    )
    content = csv_bytes("Email", "a@example.com", "bad")

    contact_import = finished(run_worker, upload(tenant, tenant_admin, content, "leads.csv"))
    run_worker(["notifications", "email"])

    notification = Notification.objects.get(user=tenant_admin)
    assert notification.title == "Contacts imported: 1 new, 0 updated, 0 skipped, 1 invalid"
    assert notification.link == f"/api/v1/contacts/imports/{contact_import.pk}/"
    assert [message.to for message in mail.outbox] == [[tenant_admin.email]]
    assert "leads.csv" in mail.outbox[0].body
    delivery = WebhookDelivery.objects.get(tenant=tenant, event_type="import.completed")
    assert delivery.payload["data"] == {
        "import_id": str(contact_import.pk),
        "file": "leads.csv",
        "dry_run": False,
        "rows": 2,
        "new": 1,
        "updated": 0,
        "skipped": 0,
        "invalid": 1,
    }
