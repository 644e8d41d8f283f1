"""django-import-export resources for exports: contacts, messages and jobs.

The export job (`communications.export_contacts`) writes `ContactResource`'s columns in every
format (`write_contacts`). Imports do not go through a resource: the import job matches headers,
cleans rows and writes them in batches itself (`communications.services.imports`).
"""

import csv
import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone
from import_export import fields, resources, widgets

from communications.models import Contact, Message
from communications.services.import_files import escape_formula
from jobs.models import Job
from tenants.models import Tenant

CONTACT_COLUMNS = [
    "name",
    "email",
    "phone",
    "company",
    "tags",
    "opted_out",
    "custom_fields",
    "created_at",
]
CHUNK = 2000


class ContactResource(resources.ModelResource):
    """Contacts of one tenant, as exports write them."""

    tags = fields.Field(
        attribute="tags", column_name="tags", widget=widgets.SimpleArrayWidget(separator=",")
    )
    custom_fields = fields.Field(
        attribute="custom_fields", column_name="custom_fields", widget=widgets.JSONWidget()
    )

    class Meta:
        model = Contact
        fields = CONTACT_COLUMNS
        export_order = CONTACT_COLUMNS

    def __init__(self, tenant: Tenant | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tenant = tenant

    def get_queryset(self) -> QuerySet[Contact]:
        queryset = Contact.objects.all()
        if self.tenant is None:
            return queryset.none()
        return queryset.for_tenant(self.tenant)


class MessageResource(resources.ModelResource):
    """Messages for export: who, how, what happened (no bodies)."""

    contact = fields.Field(attribute="contact_id", column_name="contact_id")

    class Meta:
        model = Message
        fields = [
            "id",
            "channel",
            "recipient",
            "contact",
            "template",
            "subject",
            "status",
            "error",
            "attempts",
            "created_at",
            "sent_at",
        ]
        export_order = fields


class JobResource(resources.ModelResource):
    """Jobs for export: the record without payloads or results (they may hold secrets)."""

    tenant = fields.Field(attribute="tenant__slug", column_name="tenant")

    class Meta:
        model = Job
        fields = [
            "id",
            "tenant",
            "kind",
            "queue",
            "priority",
            "status",
            "attempt",
            "max_attempts",
            "progress",
            "error_type",
            "error_message",
            "created_at",
            "started_at",
            "finished_at",
        ]
        export_order = fields


# --- Writing contact files ----------------------------------------------------------------------


def contact_rows(
    contacts: QuerySet[Contact], *, tenant: Tenant, progress: Callable[[int], None]
) -> Iterable[list[Any]]:
    """Each contact as the resource exports it, reporting progress every 2,000."""
    resource = ContactResource(tenant=tenant)
    for done, contact in enumerate(contacts.iterator(chunk_size=CHUNK), start=1):
        yield resource.export_resource(contact)
        if done % CHUNK == 0:
            progress(done)


def write_contacts(
    contacts: QuerySet[Contact],
    *,
    format: str,
    tenant: Tenant,
    progress: Callable[[int], None] = lambda done: None,
) -> bytes:
    """The file's bytes; CSV and XLSX cells that a spreadsheet would run as formulas are escaped."""
    headers = ContactResource(tenant=tenant).get_export_headers()
    rows = contact_rows(contacts.order_by("pk"), tenant=tenant, progress=progress)
    writers = {"csv": _write_csv, "xlsx": _write_xlsx, "json": _write_json, "pdf": _write_pdf}
    return writers[format](headers, rows, tenant)


def _write_csv(headers: list[str], rows: Iterable[list[Any]], tenant: Tenant) -> bytes:
    output = io.StringIO()
    writer = csv.writer(output)
    writer.writerow([escape_formula(header) for header in headers])
    writer.writerows([escape_formula(cell) for cell in row] for row in rows)
    return output.getvalue().encode("utf-8-sig")


def _write_xlsx(headers: list[str], rows: Iterable[list[Any]], tenant: Tenant) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Contacts")
    sheet.append([escape_formula(header) for header in headers])
    for row in rows:
        sheet.append([escape_formula(_cell(value)) for value in row])
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()


def _cell(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) else str(value)


def _write_json(headers: list[str], rows: Iterable[list[Any]], tenant: Tenant) -> bytes:
    """Objects with native values: tags a list, custom_fields an object, opted_out a boolean."""
    items = []
    for row in rows:
        item = dict(zip(headers, row, strict=True))
        item["tags"] = [tag for tag in str(item.get("tags") or "").split(",") if tag]
        item["custom_fields"] = json.loads(item.get("custom_fields") or "{}")
        item["opted_out"] = str(item.get("opted_out")) in ("1", "True", "true")
        items.append(item)
    return json.dumps(items, ensure_ascii=False, indent=1).encode()


def _write_pdf(headers: list[str], rows: Iterable[list[Any]], tenant: Tenant) -> bytes:
    import weasyprint

    html = render_to_string(
        "communications/exports/contacts.html",
        {
            "tenant": tenant,
            "headers": [h for h in headers if h != "custom_fields"],
            "rows": [
                [
                    cell
                    for header, cell in zip(headers, row, strict=True)
                    if header != "custom_fields"
                ]
                for row in rows
            ],
            "generated_at": timezone.now(),
        },
    )
    return weasyprint.HTML(string=html).write_pdf()
