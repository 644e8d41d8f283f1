"""Contact imports and exports: start them as jobs, and the work those jobs do.

An import reads the whole file first (`import_files.read_table`), so a file that cannot be
read imports nothing. Rows are then planned in batches against an in-memory map of every
contact seen so far (in the file or the database) by email and by phone; a real run writes
each batch's plan with `bulk_create` / `bulk_update` in one transaction together with the
import's counters, and a dry run makes exactly the same plan and writes only its report.
"""

import csv
import io
import json
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import serializers

from communications.models import ContactExport, ContactImport, ContactImportRejection
from communications.models.imports import TransferStatus
from communications.resources import write_contacts
from communications.selectors.imports import export_queryset
from communications.services.events import publish_event
from communications.services.import_files import (
    ImportFileError,
    Table,
    detect_format,
    escape_formula,
    is_not_an_object,
    read_table,
)
from communications.services.import_rows import (
    BatchPlan,
    CleanRow,
    Draft,
    ImportRefused,
    Planner,
    check_mapping,
    clean_row,
    describe_target,
    match_columns,
    text_value,
)
from communications.services.import_writes import insert_contacts, update_contacts
from communications.services.notifications import notify_user
from config.exceptions import DomainError
from jobs.models import Job
from jobs.runtime.context import JobContext
from jobs.services.jobs import enqueue_job
from tenants.models import Tenant

logger = logging.getLogger(__name__)
NOT_FOR_REAL = "Only a dry run that succeeded can be imported for real."

# --- Starting -----------------------------------------------------------------------------------


@transaction.atomic
def start_import(
    *,
    tenant: Tenant,
    by: User | None,
    upload: Any,
    format: str = "",
    mapping: dict[str, str] | None = None,
    policy: str = ContactImport.Policy.SKIP,
    dry_run: bool = False,
    checked_by: ContactImport | None = None,
) -> ContactImport:
    """Store the uploaded file and enqueue `communications.import_contacts` for it."""
    name = getattr(upload, "name", "") or "upload"
    try:
        format = detect_format(name, given=format)
    except ImportFileError as error:
        raise serializers.ValidationError({"format": [str(error)]}) from error
    max_bytes = settings.CONTACT_IMPORT_MAX_BYTES
    if upload.size > max_bytes:
        raise serializers.ValidationError(
            {"file": [f"The file is {upload.size:,} bytes; the limit is {max_bytes:,} bytes."]}
        )
    contact_import = ContactImport(
        tenant=tenant,
        created_by=by,
        original_name=name[:255],
        format=format,
        mapping=check_mapping(mapping or {}),
        policy=policy,
        dry_run=dry_run,
        checked_by=checked_by,
    )
    contact_import.file.name = default_storage.save(
        f"imports/{tenant.pk}/{contact_import.pk}.{format}", upload
    )
    contact_import.save(force_insert=True)
    contact_import.job = enqueue_job(
        tenant=tenant,
        kind="communications.import_contacts",
        payload={"import_id": str(contact_import.pk)},
        by=by,
        idempotency_key=f"import:{contact_import.pk}",
    )
    contact_import.save(update_fields=["job"])
    return contact_import


@transaction.atomic
def start_real_import(dry_run: ContactImport, *, by: User | None) -> ContactImport:
    """Import for real the file a finished dry run checked: same format, mapping and policy.

    Once per dry run: asking again (a second click) gives the import already started.
    """
    dry_run = ContactImport.objects.select_for_update().get(pk=dry_run.pk)
    started = ContactImport.objects.filter(checked_by=dry_run).first()
    if started is not None:
        return started
    if not dry_run.can_run_for_real:
        raise DomainError(NOT_FOR_REAL)
    try:
        handle = default_storage.open(dry_run.file.name or "", "rb")
    except FileNotFoundError as error:
        raise DomainError("The uploaded file is gone (cleaned up?): upload it again.") from error
    with handle:
        return start_import(
            tenant=dry_run.tenant,
            by=by,
            upload=File(handle, name=dry_run.original_name or "upload"),
            format=dry_run.format,
            mapping=dry_run.mapping,
            policy=dry_run.policy,
            checked_by=dry_run,
        )


# --- Running ------------------------------------------------------------------------------------


def get_import_for_job(*, tenant: Tenant, import_id: str) -> ContactImport:
    return ContactImport.objects.for_tenant(tenant).select_related("created_by").get(pk=import_id)


def run_import(contact_import: ContactImport, *, ctx: JobContext | None = None) -> dict[str, Any]:
    """Import (or, for a dry run, plan) every row; returns the counts. Resumes a retried run."""
    _mark_started(contact_import)
    try:
        data = _read_upload(contact_import)
        table = read_table(data, format=contact_import.format)
        columns = match_columns(table.headers, contact_import.mapping)
    except (ImportFileError, ImportRefused) as error:
        _fail(contact_import, str(error))
        raise ImportRefused(str(error)) from error
    _record_columns(contact_import, table, columns)
    _import_rows(contact_import, table, columns, ctx=ctx)
    _finish(contact_import, table)
    return {**contact_import.counts, "rows": len(table.rows), "dry_run": contact_import.dry_run}


def _read_upload(contact_import: ContactImport) -> bytes:
    max_bytes = settings.CONTACT_IMPORT_MAX_BYTES
    try:
        with default_storage.open(contact_import.file.name or "", "rb") as upload:
            data = upload.read(max_bytes + 1)
    except FileNotFoundError as error:
        raise ImportFileError(
            "The uploaded file is gone (cleaned up?): upload it again."
        ) from error
    if len(data) > max_bytes:
        raise ImportFileError(f"The file is larger than the limit of {max_bytes:,} bytes.")
    return data


def _mark_started(contact_import: ContactImport) -> None:
    resume = not contact_import.dry_run and contact_import.processed_rows > 0
    if not resume:
        ContactImportRejection.objects.filter(contact_import=contact_import).delete()
        for name in ("processed_rows", "new_count", "updated_count", "skipped_count"):
            setattr(contact_import, name, 0)
        contact_import.invalid_count = 0
    contact_import.status = ContactImport.Status.STARTED
    contact_import.started_at = contact_import.started_at or timezone.now()
    contact_import.error = ""
    contact_import.save(
        update_fields=[
            "status",
            "started_at",
            "error",
            "processed_rows",
            "new_count",
            "updated_count",
            "skipped_count",
            "invalid_count",
        ]
    )


def _record_columns(contact_import: ContactImport, table: Table, columns: dict[int, str]) -> None:
    contact_import.columns = {
        table.headers[index]: describe_target(target) for index, target in columns.items()
    }
    contact_import.total_rows = len(table.rows)
    contact_import.save(update_fields=["columns", "total_rows"])


def _import_rows(
    contact_import: ContactImport,
    table: Table,
    columns: dict[int, str],
    *,
    ctx: JobContext | None,
) -> None:
    tenant = contact_import.tenant
    planner = Planner(tenant=tenant, policy=contact_import.policy)
    size = settings.CONTACT_IMPORT_BATCH_SIZE
    total = len(table.rows)
    for start in range(contact_import.processed_rows, total, size):
        if ctx is not None:
            ctx.stop_if_canceled()
        rows = [
            clean_row(line, values, columns, region=tenant.default_region)
            for line, values in table.rows[start : start + size]
        ]
        plan = planner.plan(rows)
        apply_batch(contact_import, plan, table.headers, done=start + len(rows))
        if ctx is not None:
            done = start + len(rows)
            ctx.progress(done * 100 // total, f"{done:,} of {total:,} rows")


@transaction.atomic
def apply_batch(
    contact_import: ContactImport, plan: BatchPlan, headers: list[str], *, done: int
) -> None:
    """One batch: its contacts (unless a dry run), its rejected rows and the counters at once."""
    if not contact_import.dry_run:
        _write_contacts(contact_import, plan)
    if plan.rejected:
        ContactImportRejection.objects.bulk_create(
            ContactImportRejection(
                tenant_id=contact_import.tenant_id,
                contact_import=contact_import,
                line=row.line,
                values=_raw_values(headers, row.raw),
                errors=row.errors,
            )
            for row in plan.rejected
        )
    contact_import.new_count += plan.counts["new"]
    contact_import.updated_count += plan.counts["updated"]
    contact_import.skipped_count += plan.counts["skipped"]
    contact_import.invalid_count += plan.counts["invalid"]
    contact_import.processed_rows = done
    contact_import.save(
        update_fields=[
            "new_count",
            "updated_count",
            "skipped_count",
            "invalid_count",
            "processed_rows",
        ]
    )


def _raw_values(headers: list[str], values: list[Any]) -> dict[str, str]:
    if is_not_an_object(values):
        return {"value": str(values[0])}
    return {
        header or f"column {index + 1}": text_value(value)
        for index, (header, value) in enumerate(zip(headers, values, strict=False))
    }


def _write_contacts(contact_import: ContactImport, plan: BatchPlan) -> None:
    ids = {"tenant_id": contact_import.tenant_id}
    now = timezone.now()
    try:
        with transaction.atomic():
            created = insert_contacts(
                plan.creates, user_id=contact_import.created_by_id, now=now, **ids
            )
            update_contacts(plan.updates, now=now, **ids)
    except IntegrityError:
        # A contact with one of these emails or phones was saved meanwhile: row by row.
        created = _write_one_by_one(contact_import, plan, now=now)
    for draft in plan.creates:
        draft.contact_id = created.get((draft.email, draft.phone))


def _write_one_by_one(
    contact_import: ContactImport, plan: BatchPlan, *, now: Any
) -> dict[tuple[str, str], int]:
    ids = {"tenant_id": contact_import.tenant_id}
    created: dict[tuple[str, str], int] = {}
    for draft in plan.creates:
        try:
            with transaction.atomic():
                created |= insert_contacts(
                    [draft], user_id=contact_import.created_by_id, now=now, **ids
                )
        except IntegrityError:
            _reject_late(plan, draft, "new")
    for draft in plan.updates:
        try:
            with transaction.atomic():
                update_contacts([draft], now=now, **ids)
        except IntegrityError:
            _reject_late(plan, draft, "updated")
    return created


def _reject_late(plan: BatchPlan, draft: Draft, counted_as: str) -> None:
    plan.counts[counted_as] -= 1
    plan.counts["invalid"] += 1
    row = CleanRow(draft.line, draft.raw)
    row.errors.append("Another contact with this email or phone was saved meanwhile.")
    plan.rejected.append(row)


def _finish(contact_import: ContactImport, table: Table) -> None:
    if contact_import.invalid_count:
        contact_import.error_file.name = write_error_file(contact_import, table.headers)
    contact_import.status = ContactImport.Status.SUCCEEDED
    contact_import.finished_at = timezone.now()
    with transaction.atomic():
        contact_import.save(update_fields=["status", "finished_at", "error_file"])
        announce_import(contact_import)


def _fail(contact_import: ContactImport, message: str) -> None:
    contact_import.status = ContactImport.Status.FAILED
    contact_import.error = message
    contact_import.finished_at = timezone.now()
    contact_import.save(update_fields=["status", "error", "finished_at"])
    if contact_import.created_by is not None:
        notify(
            contact_import.created_by,
            tenant=contact_import.tenant,
            title=f"Contact import of {contact_import.original_name} failed",
            body=message,
        )


def _ended_as(job: Job) -> str:
    canceled = job.status == Job.Status.CANCELED
    return TransferStatus.CANCELED if canceled else TransferStatus.FAILED


def _stopped_reason(job: Job) -> str:
    reason = f": {job.error_message}" if job.error_message else "."
    return f"The job was {job.status} before it finished{reason}"


def settle_import_job(job: Job) -> None:
    """`on_end` of the import kind: an import whose job failed or was canceled before it
    finished (out of attempts, canceled, its worker gone) is failed, saying why."""
    if job.status == Job.Status.SUCCEEDED:
        return
    ContactImport.objects.filter(tenant_id=job.tenant_id, pk=job.payload.get("import_id")).exclude(
        status__in=ContactImport.FINISHED
    ).update(
        status=_ended_as(job),
        error=_stopped_reason(job)[:2000],
        finished_at=timezone.now(),
    )


def write_error_file(contact_import: ContactImport, headers: list[str]) -> str:
    """A CSV of the rejected rows: their line, their values and an `errors` column."""
    output = io.StringIO()
    writer = csv.writer(output)
    columns = [header for header in headers if header] or ["value"]
    writer.writerow([escape_formula(cell) for cell in ["line", *columns, "errors"]])
    rejections = ContactImportRejection.objects.for_tenant(contact_import.tenant).filter(
        contact_import=contact_import
    )
    for rejection in rejections.order_by("line").iterator(chunk_size=2000):
        values = [rejection.values.get(column, "") for column in columns]
        cells = [rejection.line, *values, "; ".join(rejection.errors)]
        writer.writerow([escape_formula(cell) for cell in cells])
    name = f"imports/{contact_import.tenant_id}/{contact_import.pk}-errors.csv"
    return default_storage.save(name, ContentFile(output.getvalue().encode("utf-8-sig")))


def announce_import(contact_import: ContactImport) -> None:
    """The `import.completed` notification (in-app and email) and webhook event."""
    data = {
        "import_id": str(contact_import.pk),
        "file": contact_import.original_name,
        "dry_run": contact_import.dry_run,
        "rows": contact_import.total_rows,
        **contact_import.counts,
    }
    if contact_import.created_by is not None:
        counts = contact_import.counts
        verb = "checked (dry run)" if contact_import.dry_run else "imported"
        link = f"/api/v1/contacts/imports/{contact_import.pk}/"
        notify(
            contact_import.created_by,
            tenant=contact_import.tenant,
            title=f"Contacts {verb}: {counts['new']} new, {counts['updated']} updated, "
            f"{counts['skipped']} skipped, {counts['invalid']} invalid",
            link=link,
            email_template="import-completed",
            context={"import": {"file_name": contact_import.original_name, **data}, "link": link},
        )
    publish_event(contact_import.tenant, "import.completed", data)


# --- Exports ------------------------------------------------------------------------------------


@transaction.atomic
def start_export(
    *, tenant: Tenant, by: User | None, format: str, filters: dict[str, Any]
) -> ContactExport:
    """Record the export and enqueue `communications.export_contacts` for it."""
    export = ContactExport.objects.create(
        tenant=tenant,
        created_by=by,
        format=format,
        filters=json.loads(json.dumps(filters, default=str)),
    )
    export.job = enqueue_job(
        tenant=tenant,
        kind="communications.export_contacts",
        payload={"export_id": str(export.pk)},
        by=by,
        idempotency_key=f"export:{export.pk}",
    )
    export.save(update_fields=["job"])
    return export


def get_export_for_job(*, tenant: Tenant, export_id: str) -> ContactExport:
    return ContactExport.objects.for_tenant(tenant).get(pk=export_id)


def run_export(export: ContactExport, *, ctx: JobContext | None = None) -> dict[str, Any]:
    """Write the file of the filtered contacts to storage; returns how many rows it holds."""
    ContactExport.objects.filter(pk=export.pk).update(status=ContactExport.Status.STARTED)
    contacts = export_queryset(tenant=export.tenant, filters=export.filters)
    count = contacts.count()
    pdf_rows = settings.CONTACT_EXPORT_PDF_MAX_ROWS
    if export.format == ContactExport.Format.PDF and count > pdf_rows:
        message = (
            f"{count:,} contacts match: a PDF holds at most {pdf_rows:,}. "
            "Narrow the filters or choose CSV, XLSX or JSON."
        )
        fail_export(export, message)
        raise ImportRefused(message)

    def progress(done: int) -> None:
        if ctx is not None:
            ctx.stop_if_canceled()
            ctx.progress(done * 100 // max(count, 1), f"{done:,} of {count:,} contacts")

    content = write_contacts(
        contacts, format=export.format, tenant=export.tenant, progress=progress
    )
    export.file.name = default_storage.save(
        f"exports/{export.tenant_id}/{export.pk}.{export.format}", ContentFile(content)
    )
    export.row_count = count
    export.status = ContactExport.Status.SUCCEEDED
    export.finished_at = timezone.now()
    export.save(update_fields=["file", "row_count", "status", "finished_at"])
    announce_export(export)
    return {"rows": count, "format": export.format}


def settle_export_job(job: Job) -> None:
    """`on_end` of the export kind: an export whose job ended without its file is failed."""
    if job.status == Job.Status.SUCCEEDED:
        return
    ContactExport.objects.filter(tenant_id=job.tenant_id, pk=job.payload.get("export_id")).exclude(
        status__in=ContactExport.FINISHED
    ).update(
        status=_ended_as(job),
        error=_stopped_reason(job)[:2000],
        finished_at=timezone.now(),
    )


def fail_export(export: ContactExport, message: str) -> None:
    ContactExport.objects.filter(pk=export.pk).exclude(status__in=ContactExport.FINISHED).update(
        status=ContactExport.Status.FAILED, error=message[:2000], finished_at=timezone.now()
    )


def announce_export(export: ContactExport) -> None:
    """Tell whoever asked for the export that it can be downloaded (in-app and email)."""
    if export.created_by is None:
        return
    link = f"/api/v1/contacts/exports/{export.pk}/download/"
    notify(
        export.created_by,
        tenant=export.tenant,
        title=f"Contact export ready: {export.row_count:,} contacts ({export.format.upper()})",
        link=link,
        email_template="export-ready",
        context={
            "export": {"format": export.format.upper(), "rows": export.row_count},
            "download_url": link,
        },
    )


def notify(user: User, **notification: Any) -> None:
    """Notify the user; a failure (say, a broken email template) is logged, never fatal."""
    try:
        with transaction.atomic():
            notify_user(user, **notification)
    except Exception:
        logger.exception("could not notify user %s: %s", user.pk, notification.get("title"))
