"""Job kinds of contact imports and exports (both on the `imports` queue, forking workers)."""

from typing import Any

from rest_framework import serializers

from communications.services.imports import (
    ImportRefused,
    fail_export,
    get_export_for_job,
    get_import_for_job,
    mark_import_stopped,
    run_export,
    run_import,
)
from jobs.errors import JobCanceled, PermanentError
from jobs.kinds import job_kind
from jobs.runtime.context import JobContext


class ImportPayload(serializers.Serializer):
    import_id = serializers.UUIDField()


class ExportPayload(serializers.Serializer):
    export_id = serializers.UUIDField()


@job_kind("communications.import_contacts", queue="imports", payload=ImportPayload)
def import_contacts(ctx: JobContext, *, import_id: str) -> dict[str, Any]:
    """Import (or dry-run) an uploaded contact file in batches; a retry resumes where it was."""
    contact_import = get_import_for_job(tenant=ctx.tenant, import_id=import_id)
    try:
        return run_import(contact_import, ctx=ctx)
    except ImportRefused as error:
        raise PermanentError(str(error)) from error
    except JobCanceled as stop:
        mark_import_stopped(contact_import, f"Canceled after {stop}.")
        raise
    except Exception as error:
        if ctx.attempt >= ctx.job.max_attempts:
            mark_import_stopped(contact_import, f"The import stopped: {error}")
        raise


@job_kind("communications.export_contacts", queue="imports", payload=ExportPayload)
def export_contacts(ctx: JobContext, *, export_id: str) -> dict[str, Any]:
    """Write the tenant's filtered contacts to a CSV, XLSX, JSON or PDF file."""
    export = get_export_for_job(tenant=ctx.tenant, export_id=export_id)
    try:
        return run_export(export, ctx=ctx)
    except ImportRefused as error:
        raise PermanentError(str(error)) from error
    except JobCanceled:
        fail_export(export, "Canceled.")
        raise
    except Exception as error:
        if ctx.attempt >= ctx.job.max_attempts:
            fail_export(export, f"The export stopped: {error}")
        raise
