"""Helpers of the contact import and export tests: files in every format, and running them."""

import io
import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from communications.models import Contact, ContactExport, ContactImport
from communications.services.imports import start_import
from jobs.models import Job
from tenants.models import Tenant


def csv_bytes(*lines: str, encoding: str = "utf-8") -> bytes:
    return ("\n".join(lines) + "\n").encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()


def json_bytes(document: Any) -> bytes:
    return json.dumps(document).encode()


def upload(
    tenant: Tenant, user: User | None, content: bytes, name: str = "contacts.csv", **options: Any
) -> ContactImport:
    """Start an import of `content` as the API does."""
    return start_import(tenant=tenant, by=user, upload=SimpleUploadedFile(name, content), **options)


def finished(run_worker: Callable[..., bool], contact_import: ContactImport) -> ContactImport:
    """Run the import's job on a real worker and read the import back."""
    run_worker(["imports"])
    contact_import.refresh_from_db()
    return contact_import


def contacts_of(tenant: Tenant) -> list[tuple[Any, ...]]:
    """Every contact of the tenant, comparable before and after."""
    return list(
        Contact.objects.for_tenant(tenant)
        .order_by("pk")
        .values_list(
            "pk", "name", "email", "phone", "company", "tags", "opted_out", "custom_fields"
        )
    )


def rejections(contact_import: ContactImport) -> list[tuple[int, list[str]]]:
    return list(contact_import.rejections.order_by("line").values_list("line", "errors"))


def job_of(record: ContactImport | ContactExport) -> Job:
    """The job that carried out the import or export."""
    assert record.job_id is not None
    return Job.objects.get(pk=record.job_id)
