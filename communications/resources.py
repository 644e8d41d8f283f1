"""django-import-export resources: contacts (import and export), messages and jobs (export).

The admin's import and export buttons use these resources directly, with import-export's own
preview and confirm step. The import job (`communications.import_contacts`) uses the same
header matching and row cleaning (`communications.services.imports`) but plans and writes
rows in batches itself, which is much faster on large files; exports write the resource's
columns in every format (`write_contacts`).
"""

import csv
import io
import json
from collections.abc import Callable, Iterable
from typing import Any

import tablib
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone
from import_export import fields, resources, widgets
from import_export.formats import base_formats

from communications.models import Contact, Message
from communications.services.import_files import ImportFileError, escape_formula, read_table
from communications.services.import_rows import FIELDS, clean_row, match_columns, text_value
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
    """Contacts of one tenant; rows are matched by email or phone, as the import job does."""

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
        import_id_fields = ("email",)
        skip_unchanged = True
        report_skipped = True

    def __init__(self, tenant: Tenant | None = None, user: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tenant = tenant
        self.user = user

    def get_queryset(self) -> QuerySet[Contact]:
        queryset = Contact.objects.all()
        if self.tenant is None:
            return queryset.none()
        return queryset.for_tenant(self.tenant)

    def get_import_fields(self) -> list[Any]:
        return [self.fields[name] for name in CONTACT_COLUMNS if name != "created_at"]

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        """Rename recognised headers ("E-mail", "Phone number"…) to the resource's fields."""
        if self.tenant is None:
            raise ValidationError("Choose the tenant to import into.")
        try:
            columns = match_columns([str(h or "").strip() for h in dataset.headers], {})
        except Exception as error:
            raise ValidationError(str(error)) from error
        self._columns = columns
        dataset.headers = [
            columns.get(index, f"ignored: {header}") for index, header in enumerate(dataset.headers)
        ]
        for name in ("email", "phone"):
            if name not in dataset.headers:
                dataset.append_col([""] * len(dataset), header=name)

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        """Normalise the row as the import job does; an invalid row raises ValidationError."""
        headers = list(row.keys())
        columns = {i: name for i, name in enumerate(headers) if name in FIELDS}
        cleaned = clean_row(0, list(row.values()), columns, region=self.tenant_region)
        if cleaned.errors:
            raise ValidationError(cleaned.errors)
        for name in ("email", "phone", "name"):
            row[name] = cleaned.fields.get(name, "")
        if "tags" in row:
            row["tags"] = ",".join(cleaned.fields.get("tags", []))
        if "opted_out" in row:
            row["opted_out"] = cleaned.fields.get("opted_out", False)

    @property
    def tenant_region(self) -> str:
        return self.tenant.default_region if self.tenant else "US"

    def get_instance(self, instance_loader: Any, row: Any) -> Contact | None:
        match = Q()
        if row.get("email"):
            match |= Q(email=row["email"])
        if row.get("phone"):
            match |= Q(phone=row["phone"])
        if not match:
            return None
        return self.get_queryset().filter(match).order_by("pk").first()

    def before_save_instance(self, instance: Contact, row: Any, **kwargs: Any) -> None:
        instance.tenant = self.tenant  # type: ignore[assignment]
        if instance.pk is None:
            instance.source = Contact.Source.ADMIN
            instance.created_by = self.user


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


# --- Formats for the admin's import and export buttons -----------------------------------------


class UnreadableFile(ValueError):
    """An upload the import checks refused; the message says why."""


class _CheckedFileMixin:
    """Read uploads as the import job does: encodings, limits, zip-bomb and field-size checks."""

    contact_format = "csv"

    def is_binary(self) -> bool:
        return True

    def get_read_mode(self) -> str:
        return "rb"

    def create_dataset(self, in_stream: Any, **kwargs: Any) -> tablib.Dataset:
        data = in_stream if isinstance(in_stream, bytes) else str(in_stream).encode()
        try:
            table = read_table(data, format=self.contact_format)
        except ImportFileError as error:
            raise UnreadableFile(str(error)) from error
        dataset = tablib.Dataset(headers=table.headers)
        width = len(table.headers)
        for _line, values in table.rows:
            cells = [text_value(value) for value in values[:width]]
            dataset.append(cells + [""] * (width - len(cells)))
        return dataset


class _EscapedExportMixin:
    """Export cells a spreadsheet would run as formulas as text (see `escape_formula`)."""

    def export_data(self, dataset: tablib.Dataset, **kwargs: Any) -> Any:
        escaped = tablib.Dataset(headers=dataset.headers)
        for row in dataset:
            escaped.append([escape_formula(cell) for cell in row])
        return super().export_data(escaped, **kwargs)  # type: ignore[misc]


class ImportCSV(_CheckedFileMixin, base_formats.CSV):
    contact_format = "csv"


class ImportXLSX(_CheckedFileMixin, base_formats.XLSX):
    contact_format = "xlsx"


class ImportJSON(_CheckedFileMixin, base_formats.JSON):
    contact_format = "json"


class ExportCSV(_EscapedExportMixin, base_formats.CSV):
    pass


class ExportXLSX(_EscapedExportMixin, base_formats.XLSX):
    pass


IMPORT_FORMATS = [ImportCSV, ImportXLSX, ImportJSON]
EXPORT_FORMATS = [ExportCSV, ExportXLSX, base_formats.JSON]
