"""Job kinds of contact imports and exports (both on the `imports` queue, forking workers)."""

from typing import Any

from rest_framework import serializers

from communications.services.imports import (
    ImportRefused,
    get_export_for_job,
    get_import_for_job,
    run_export,
    run_import,
    settle_export_job,
    settle_import_job,
)
from jobs.errors import PermanentError
from jobs.kinds import job_kind
from jobs.models import Priority
from jobs.runtime.context import JobContext


class ImportPayload(serializers.Serializer):
    import_id = serializers.UUIDField()


class ExportPayload(serializers.Serializer):
    export_id = serializers.UUIDField()


@job_kind(
    "communications.import_contacts",
    queue="imports",
    priority=Priority.LOW,
    payload=ImportPayload,
    on_end=settle_import_job,
)
def import_contacts(ctx: JobContext, *, import_id: str) -> dict[str, Any]:
    """Import (or dry-run) an uploaded contact file in batches; a retry resumes where it was."""
    contact_import = get_import_for_job(tenant=ctx.tenant, import_id=import_id)
    try:
        return run_import(contact_import, ctx=ctx)
    except ImportRefused as error:
        raise PermanentError(str(error)) from error


@job_kind(
    "communications.export_contacts",
    queue="imports",
    priority=Priority.LOW,
    payload=ExportPayload,
    on_end=settle_export_job,
)
def export_contacts(ctx: JobContext, *, export_id: str) -> dict[str, Any]:
    """Write the tenant's filtered contacts to a CSV, XLSX, JSON or PDF file."""
    export = get_export_for_job(tenant=ctx.tenant, export_id=export_id)
    try:
        return run_export(export, ctx=ctx)
    except ImportRefused as error:
        raise PermanentError(str(error)) from error
