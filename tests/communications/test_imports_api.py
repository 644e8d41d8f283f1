"""The imports API: upload → 202 with the job → status, counts, errors, the error file."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from communications.models import Contact, ContactImport
from tests.communications.imports_helpers import csv_bytes, upload
from tests.factories import make_api_key, make_member

pytestmark = pytest.mark.django_db(transaction=True)
IMPORTS = "/api/v1/contacts/imports/"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def as_admin(api_client, tenant_admin):
    api_client.force_authenticate(tenant_admin)
    return api_client


def post_file(client, content, name="contacts.csv", **fields):
    body = {"file": SimpleUploadedFile(name, content), **fields}
    return client.post(IMPORTS, body, format="multipart")


def test_an_admin_uploads_a_file_and_gets_the_import_and_its_job_with_202(
    as_admin, tenant, run_worker
):
    content = csv_bytes("Email,Phone", "a@example.com,", "bad,")

    response = post_file(as_admin, content, policy="update", dry_run="false")

    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["policy"], body["dry_run"], body["file_name"]) == (
        "pending",
        "update",
        False,
        "contacts.csv",
    )
    assert body["job"]["status"] == "queued"
    run_worker(["imports"])
    detail = as_admin.get(f"{IMPORTS}{body['id']}/").json()
    assert detail["status"] == "succeeded"
    assert detail["counts"] == {"new": 1, "updated": 0, "skipped": 0, "invalid": 1}
    assert detail["errors"] == [
        {
            "line": 3,
            "errors": ["email: 'bad' is not a valid email address."],
            "values": {"Email": "bad", "Phone": ""},
        }
    ]
    assert detail["job"]["status"] == "succeeded"
    assert detail["errors_url"] == f"{IMPORTS}{body['id']}/errors/"


def test_the_error_file_downloads_as_csv(as_admin, tenant, tenant_admin, run_worker):
    contact_import = upload(tenant, tenant_admin, csv_bytes("Email", "ok@example.com", "nope"))
    run_worker(["imports"])

    response = as_admin.get(f"{IMPORTS}{contact_import.pk}/errors/")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == 'attachment; filename="contacts-errors.csv"'
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert text.splitlines() == [
        "line,Email,errors",
        "3,nope,email: 'nope' is not a valid email address.",
    ]


def test_an_import_without_rejected_rows_has_no_error_file(
    as_admin, tenant, tenant_admin, run_worker
):
    contact_import = upload(tenant, tenant_admin, csv_bytes("Email", "ok@example.com"))
    run_worker(["imports"])

    response = as_admin.get(f"{IMPORTS}{contact_import.pk}/errors/")

    assert response.status_code == 404
    assert as_admin.get(f"{IMPORTS}{contact_import.pk}/").json()["errors_url"] is None


def test_a_mapping_is_sent_as_json_in_the_form(as_admin, tenant, run_worker):
    content = csv_bytes("Work mail,Who", "w@example.com,Wendy")
    mapping = json.dumps({"Work mail": "email", "Who": "name"})

    response = post_file(as_admin, content, mapping=mapping)
    run_worker(["imports"])

    assert response.status_code == 202
    assert response.json()["mapping"] == {"Work mail": "email", "Who": "name"}
    assert Contact.objects.get(tenant=tenant).name == "Wendy"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"mapping": '{"Mail": "mail"}'}, "mapping", "'Mail' → 'mail': the field must be one of"),
        ({"mapping": '{"A": "email", "B": "email"}'}, "mapping", "'A' and 'B' both map to"),
        ({"mapping": "[1, 2]"}, "mapping", "The mapping is a JSON object"),
        ({"policy": "merge"}, "policy", '"merge" is not a valid choice.'),
    ],
)
def test_bad_options_answer_400_with_the_fields_message(as_admin, fields, field, message):
    response = post_file(as_admin, csv_bytes("Email", "a@example.com"), **fields)

    assert response.status_code == 400
    assert message in response.json()[field][0]
    assert not ContactImport.objects.exists()


def test_an_upload_over_the_size_limit_answers_400(as_admin, settings):
    settings.CONTACT_IMPORT_MAX_BYTES = 10

    response = post_file(as_admin, csv_bytes("Email", "a@example.com"))

    assert response.status_code == 400
    assert response.json() == {"file": ["The file is 20 bytes; the limit is 10 bytes."]}


def test_an_upload_of_an_unknown_format_answers_400(as_admin):
    response = post_file(as_admin, b"<contacts/>", "contacts.xml")

    assert response.status_code == 400
    assert "Cannot tell the format of 'contacts.xml'" in response.json()["format"][0]


def test_a_dry_run_through_the_api_leaves_contacts_alone(as_admin, tenant, run_worker):
    response = post_file(as_admin, csv_bytes("Email", "a@example.com"), dry_run="true")
    run_worker(["imports"])

    detail = as_admin.get(f"{IMPORTS}{response.json()['id']}/").json()
    assert (detail["dry_run"], detail["counts"]["new"]) == (True, 1)
    assert not Contact.objects.exists()


def test_a_succeeded_dry_run_is_imported_for_real_once(as_admin, tenant, run_worker):
    response = post_file(as_admin, csv_bytes("Email", "a@example.com"), dry_run="true")
    run_worker(["imports"])
    dry_run = response.json()["id"]

    first = as_admin.post(f"{IMPORTS}{dry_run}/run/")
    again = as_admin.post(f"{IMPORTS}{dry_run}/run/")  # a second click
    run_worker(["imports"])

    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["id"] == again.json()["id"]
    assert (first.json()["dry_run"], first.json()["checked_by"]) == (False, dry_run)
    assert list(Contact.objects.values_list("email", flat=True)) == ["a@example.com"]
    assert ContactImport.objects.filter(dry_run=False).count() == 1
    real = as_admin.post(f"{IMPORTS}{first.json()['id']}/run/")
    assert real.status_code == 409
    assert "Only a dry run that succeeded" in real.json()["detail"]


def test_an_agent_may_not_import(api_client, agent):
    api_client.force_authenticate(agent)

    response = post_file(api_client, csv_bytes("Email", "a@example.com"))

    assert response.status_code == 403
    assert "admin role" in response.json()["detail"]


def test_another_tenants_import_answers_404(
    api_client, tenant, other_tenant, tenant_admin, run_worker
):
    theirs = upload(other_tenant, None, csv_bytes("Email", "ok@example.com", "nope"))
    run_worker(["imports"])
    outsider = make_member(other_tenant, "admin")
    mine = upload(tenant, tenant_admin, csv_bytes("Email", "mine@example.com"))
    _key, raw_key = make_api_key(tenant_admin, tenant=tenant)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}

    assert api_client.get(f"{IMPORTS}{theirs.pk}/", **headers).status_code == 404
    assert api_client.get(f"{IMPORTS}{theirs.pk}/errors/", **headers).status_code == 404
    assert api_client.post(f"{IMPORTS}{theirs.pk}/run/", **headers).status_code == 404
    listed = api_client.get(IMPORTS, **headers).json()["results"]
    assert [row["id"] for row in listed] == [str(mine.pk)]
    assert outsider.pk  # the other tenant has its own admin; ours still cannot see its import


def test_the_list_reads_a_page_in_a_fixed_number_of_queries(
    as_admin, tenant, tenant_admin, django_assert_max_num_queries
):
    for _ in range(5):
        upload(tenant, tenant_admin, csv_bytes("Email", "a@example.com"))

    with django_assert_max_num_queries(8):
        response = as_admin.get(IMPORTS)

    assert response.json()["count"] == 5
