"""Unreadable, oversized and malicious contact files: a clear error, and nothing imported."""

import io
import zipfile

import pytest

from communications.models import Contact, ContactImport
from jobs.models import Job
from tests.communications.imports_helpers import (
    csv_bytes,
    finished,
    job_of,
    json_bytes,
    upload,
    xlsx_bytes,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def refused(run_worker, tenant, user, content, name="contacts.csv", **options) -> str:
    """Import the file; assert it failed, imported nothing, and failed its job; the reason."""
    contact_import = finished(run_worker, upload(tenant, user, content, name, **options))
    assert contact_import.status == ContactImport.Status.FAILED
    assert not Contact.objects.exists()
    job = job_of(contact_import)
    assert (job.status, job.attempt) == (Job.Status.FAILED, 1)  # not retried: it cannot work
    assert job.error_message == contact_import.error
    return contact_import.error


# --- Encodings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"\xef\xbb\xbfName,Email\nJos\xc3\xa9,jose@example.com\n", "utf-8 with BOM"),
        (b"Name,Email\nJos\xc3\xa9,jose@example.com\n", "utf-8"),
        ("Name,Email\nJosé,jose@example.com\n".encode("utf-16"), "utf-16 with BOM"),
        (b"Name;Email\nJos\xe9 M\xfcller-\xc5berg;jose@example.com\n", "latin-1, semicolons"),
    ],
)
def test_text_files_in_common_encodings_are_read(tenant, tenant_admin, run_worker, content, name):
    contact_import = finished(run_worker, upload(tenant, tenant_admin, content))

    assert contact_import.status == ContactImport.Status.SUCCEEDED, contact_import.error
    assert Contact.objects.get(tenant=tenant).name.startswith("José")


def test_a_binary_file_named_csv_is_refused(tenant, tenant_admin, run_worker):
    error = refused(run_worker, tenant, tenant_admin, b"Email\x00\x01\x02\n\x00\xff")

    assert error == "This is not a text file (it contains NUL bytes)."


def test_a_csv_with_a_ten_megabyte_field_is_refused_with_its_line(tenant, tenant_admin, run_worker):
    content = csv_bytes("Name,Email", "Ok,ok@example.com", f'"{"x" * 10_000_000}",big@example.com')

    error = refused(run_worker, tenant, tenant_admin, content)

    assert error == "Line 3: a value is longer than 10,000 characters."


def test_a_malformed_csv_is_refused_with_its_line(tenant, tenant_admin, run_worker, settings):
    content = b'Name,Email\nOk,ok@example.com\n"unterminated,x@example.com\n'

    error = refused(run_worker, tenant, tenant_admin, content)

    assert error.startswith("Line 3: the CSV is malformed")


# --- Limits -------------------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused(tenant, tenant_admin, run_worker, settings):
    content = csv_bytes("Email", *[f"u{n}@example.com" for n in range(100)])
    contact_import = upload(tenant, tenant_admin, content)
    settings.CONTACT_IMPORT_MAX_BYTES = 500  # lowered after the upload was accepted

    contact_import = finished(run_worker, contact_import)

    assert not Contact.objects.exists()
    error = contact_import.error

    assert error == "The file is larger than the limit of 500 bytes."


def test_a_file_with_too_many_rows_imports_none_of_them(tenant, tenant_admin, run_worker, settings):
    settings.CONTACT_IMPORT_MAX_ROWS = 3
    content = csv_bytes("Email", *[f"u{n}@example.com" for n in range(4)])

    error = refused(run_worker, tenant, tenant_admin, content)

    assert error == "The file has more than 3 rows, the most one import takes."


def test_an_empty_file_is_refused(tenant, tenant_admin, run_worker):
    assert refused(run_worker, tenant, tenant_admin, b"\n\n") == "The file is empty."


def test_a_header_naming_a_column_twice_is_refused(tenant, tenant_admin, run_worker):
    content = csv_bytes("Email,email", "a@example.com,b@example.com")

    error = refused(run_worker, tenant, tenant_admin, content)

    assert error == "The column 'email' appears twice in the header."


# --- XLSX ---------------------------------------------------------------------------------------


def zip_of(parts: dict[str, bytes]) -> bytes:
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return output.getvalue()


def test_an_xlsx_zip_bomb_is_refused_before_it_is_opened(tenant, tenant_admin, run_worker):
    bomb = zip_of(
        {
            "xl/workbook.xml": b"<workbook/>",
            "xl/worksheets/sheet1.xml": b"\0" * 20_000_000,
        }
    )
    assert len(bomb) < 100_000

    error = refused(run_worker, tenant, tenant_admin, bomb, "bomb.xlsx")

    assert "it looks like a zip bomb" in error
    assert error.startswith("The workbook part xl/worksheets/sheet1.xml is compressed")


def test_an_xlsx_expanding_past_the_limit_is_refused(tenant, tenant_admin, run_worker, settings):
    settings.CONTACT_IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES = 1000
    content = xlsx_bytes([["Email"], ["a@example.com"]])

    error = refused(run_worker, tenant, tenant_admin, content, "big.xlsx")

    assert error.startswith("The workbook expands to ")
    assert error.endswith("bytes; the limit is 1,000 bytes.")


def test_a_file_named_xlsx_that_is_no_zip_is_refused(tenant, tenant_admin, run_worker):
    error = refused(run_worker, tenant, tenant_admin, b"Email\na@example.com\n", "fake.xlsx")

    assert error == "This is not an XLSX workbook (not a zip archive)."


def test_a_damaged_workbook_is_refused(tenant, tenant_admin, run_worker):
    damaged = zip_of({"xl/workbook.xml": b"<workbook", "[Content_Types].xml": b"<nope"})

    error = refused(run_worker, tenant, tenant_admin, damaged, "damaged.xlsx")

    assert error.startswith("The XLSX workbook could not be read (")


def test_a_workbook_with_xml_entity_expansion_is_refused(tenant, tenant_admin, run_worker):
    good = zipfile.ZipFile(io.BytesIO(xlsx_bytes([["Email"], ["a@example.com"]])))
    parts = {name: good.read(name) for name in good.namelist()}
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    )
    workbook = parts["xl/workbook.xml"]
    if workbook.startswith(b"<?xml"):
        workbook = workbook.split(b"?>", 1)[1]
    parts["xl/workbook.xml"] = laughs + workbook

    error = refused(run_worker, tenant, tenant_admin, zip_of(parts), "laughs.xlsx")

    assert error.startswith("The XLSX workbook could not be read (")


# --- JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'[{"email": "a@example.com"', "The file is not valid JSON ("),
        (json_bytes({"email": "a@example.com"}), "The JSON must be a list of contact objects"),
        (b"[" * 100_000 + b"]" * 100_000, "The JSON is nested too deeply."),
    ],
)
def test_json_that_is_not_a_list_of_objects_is_refused(
    tenant, tenant_admin, run_worker, content, message
):
    error = refused(run_worker, tenant, tenant_admin, content, "contacts.json")

    assert error.startswith(message)


# --- Formats ------------------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_when_uploaded(tenant, tenant_admin, settings):
    from rest_framework.exceptions import ValidationError

    settings.CONTACT_IMPORT_MAX_BYTES = 10

    with pytest.raises(ValidationError) as refusal:
        upload(tenant, tenant_admin, b"Email\na@example.com\n")

    assert "The file is 20 bytes; the limit is 10 bytes." in str(refusal.value.detail)
    assert not ContactImport.objects.exists()


def test_a_file_of_an_unknown_format_is_refused_when_uploaded(tenant, tenant_admin):
    from rest_framework.exceptions import ValidationError

    with pytest.raises(ValidationError) as refusal:
        upload(tenant, tenant_admin, b"Email\n", "contacts.txt")

    assert "name it .csv, .xlsx or .json" in str(refusal.value.detail)
    assert not ContactImport.objects.exists()
