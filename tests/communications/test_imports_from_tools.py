"""Contact files exported from Google Contacts, Outlook, HubSpot and Mailchimp import without
a mapping: their columns are recognised, extra emails and phones are kept, labels become tags."""

import pytest

from communications.models import Contact, ContactImport
from tests.communications.imports_helpers import csv_bytes, finished, upload

pytestmark = pytest.mark.django_db(transaction=True)

GOOGLE = csv_bytes(
    "First Name,Middle Name,Last Name,Organization Name,Labels,E-mail 1 - Label,E-mail 1 - Value,"
    "E-mail 2 - Label,E-mail 2 - Value,Phone 1 - Label,Phone 1 - Value",
    "Ada,,Lovelace,Analytical Engines,* myContacts ::: Friends ::: VIP,* Home,ada@example.com,"
    "Work,ada@engines.example.com,Mobile,+1 415 555 0123",
    "Grace,M,Hopper,US Navy,* myContacts,Work,,Home,grace@example.com,,",
)
OUTLOOK = csv_bytes(
    "First Name,Last Name,Company,E-mail Address,E-mail 2 Address,Mobile Phone,Business Phone,"
    "Categories",
    "Alan,Turing,Bletchley,alan@example.com,,,+44 20 7946 0018,Team;Research",
)
HUBSPOT = csv_bytes(
    "Record ID,First Name,Last Name,Email,Phone Number,Mobile Phone Number,Company Name",
    "901,Katherine,Johnson,katherine@example.com,,+1 757 555 0100,NASA",
)
MAILCHIMP = csv_bytes(
    "Email Address,First Name,Last Name,Phone Number,MEMBER_RATING,TAGS",
    'dorothy@example.com,Dorothy,Vaughan,,2,"""Customer"",""Newsletter"""',
)


def contact(tenant, email: str) -> Contact:
    return Contact.objects.get(tenant=tenant, email=email)


def test_a_google_contacts_export_imports_as_it_is(tenant, tenant_admin, run_worker):
    done = finished(run_worker, upload(tenant, tenant_admin, GOOGLE, "contacts.csv"))

    assert (done.status, done.new_count, done.invalid_count) == (
        ContactImport.Status.SUCCEEDED,
        2,
        0,
    )
    ada = contact(tenant, "ada@example.com")
    assert (ada.name, ada.company, ada.phone) == (
        "Ada Lovelace",
        "Analytical Engines",
        "+14155550123",
    )
    assert ada.tags == ["Friends", "VIP"]
    assert ada.custom_fields == {"E-mail 2 - Value": "ada@engines.example.com"}
    grace = contact(tenant, "grace@example.com")  # her first email cell is empty
    assert (grace.name, grace.tags, grace.custom_fields) == ("Grace Hopper", [], {})


@pytest.mark.parametrize(
    ("content", "email", "expected"),
    [
        (
            OUTLOOK,
            "alan@example.com",
            ("Alan Turing", "Bletchley", "+442079460018", ["Team", "Research"]),
        ),
        (HUBSPOT, "katherine@example.com", ("Katherine Johnson", "NASA", "+17575550100", [])),
        (MAILCHIMP, "dorothy@example.com", ("Dorothy Vaughan", "", "", ["Customer", "Newsletter"])),
    ],
    ids=["outlook", "hubspot", "mailchimp"],
)
def test_outlook_hubspot_and_mailchimp_exports_import_as_they_are(
    tenant, tenant_admin, run_worker, content, email, expected
):
    done = finished(run_worker, upload(tenant, tenant_admin, content, "export.csv"))

    assert (done.new_count, done.invalid_count) == (1, 0)
    found = contact(tenant, email)
    assert (found.name, found.company, found.phone, found.tags) == expected


def test_the_dry_run_shows_the_mapping_it_chose(tenant, tenant_admin, run_worker):
    done = finished(run_worker, upload(tenant, tenant_admin, GOOGLE, "contacts.csv", dry_run=True))

    assert done.columns == {
        "First Name": "first_name",
        "Last Name": "last_name",
        "Organization Name": "company",
        "Labels": "tags",
        "E-mail 1 - Value": "email",
        "E-mail 2 - Value": "email if the earlier ones are empty, else "
        "custom_fields.E-mail 2 - Value",
        "Phone 1 - Value": "phone",
    }
    assert not Contact.objects.exists()
