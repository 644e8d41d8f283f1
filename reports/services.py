"""Every write to reports: asking for one, generating it, failing it, cleaning up files."""

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User as AuthUser
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from communications.services.events import publish_event
from communications.services.notifications import notify_user
from config.exceptions import DomainError
from jobs.models import Job
from jobs.services.jobs import enqueue_job
from reports.models import Report, ReportType
from reports.parameters import filters_of, period_of
from reports.renderers import render
from reports.rollups import refresh_recent
from reports.types import get_type
from reports.types.base import BuildContext, Progress
from tenants.models import Tenant
from tenants.users import Actor

logger = logging.getLogger(__name__)

GENERATE_KIND = "reports.generate_report"


@transaction.atomic
def create_report(
    *, tenant: Tenant, by: Actor, type: str, format: str, parameters: dict[str, Any]
) -> Report:
    """Record the report and enqueue its generation on the reports queue."""
    report = Report.objects.create(
        tenant=tenant,
        type=type,
        format=format,
        parameters=parameters,
        created_by=by if isinstance(by, AuthUser) else None,
    )
    return _enqueue(report, by=by)


def _enqueue(report: Report, *, by: Actor) -> Report:
    report.job = enqueue_job(
        tenant=report.tenant,
        kind=GENERATE_KIND,
        payload={"report_id": str(report.pk)},
        by=by,
        idempotency_key=f"report:{report.pk}",
    )
    report.save(update_fields=["job"])
    return report


@transaction.atomic
def regenerate_report(report: Report, *, by: Actor) -> Report:
    """Generate the report again from today's data; refused while it is being generated."""
    updated = Report.objects.filter(pk=report.pk, status__in=Report.FINISHED).update(
        status=Report.Status.PENDING, error="", started_at=None, finished_at=None
    )
    if not updated:
        raise DomainError("This report is being generated already.")
    report.refresh_from_db()
    return _enqueue(report, by=by)


def generate_report(report: Report, *, progress: Progress) -> Report:
    """Build the report's data, render it, store the file and tell its author it is ready."""
    Report.objects.filter(pk=report.pk).update(
        status=Report.Status.STARTED, started_at=timezone.now(), error=""
    )
    info = get_type(report.type)
    if info is None:
        raise DomainError(f"{ReportType(report.type).label} reports are not available.")
    period = period_of(report.parameters)
    refresh_recent(tenant=report.tenant, start=period.since, end=period.until)
    progress(10, "Roll-ups refreshed")
    context = BuildContext(
        tenant=report.tenant,
        period=period,
        filters=filters_of(report.parameters),
        progress=lambda percent, message: progress(10 + percent * 7 // 10, message),
    )
    data = info.build(context)
    rendered = render(data, report.format)
    progress(90, f"{report.get_format_display()} rendered")
    name = f"{report.type.replace('_', '-')}-{period.start:%Y%m%d}-{period.end:%Y%m%d}"
    _store(report, f"{name}.{rendered.extension}", rendered.content)
    transaction.on_commit(lambda: _announce(report))
    return report


@transaction.atomic
def _store(report: Report, filename: str, content: bytes) -> None:
    old = report.file.name if report.file else ""
    report.file.save(filename, ContentFile(content), save=False)
    report.status, report.size, report.finished_at = (
        Report.Status.SUCCEEDED,
        len(content),
        timezone.now(),
    )
    report.save(update_fields=["file", "status", "size", "finished_at"])
    if old and old != report.file.name:
        transaction.on_commit(lambda: default_storage.delete(old))


def download_link(report: Report) -> str:
    return reverse("report-download", kwargs={"report_id": report.pk})


def _announce(report: Report) -> None:
    title = f"Your {report.get_type_display().lower()} report is ready"
    url = settings.CONVEYOR_BASE_URL.rstrip("/") + download_link(report)
    period = f"{report.parameters.get('start')} to {report.parameters.get('end')}"
    context = {
        "report": {
            "name": f"{report.get_type_display()}, {period}",
            "format": report.get_format_display(),
        },
        "download_url": url,
    }
    if report.created_by is not None:
        notify_user(
            report.created_by,
            tenant=report.tenant,
            title=title,
            link=url,
            email_template="report-ready",
            context=context,
        )
    publish_event(
        report.tenant,
        "report.ready",
        {
            "id": str(report.pk),
            "type": report.type,
            "format": report.format,
            "parameters": report.parameters,
            "size": report.size,
            "download_url": url,
        },
    )


def settle_report_job(job: Job) -> None:
    """`on_end` of the generate kind: a report whose job ended without building it.

    Its job was canceled, or failed without the body recording why (its worker died).
    """
    if job.status == Job.Status.SUCCEEDED:
        return
    status, error = Report.Status.FAILED, "Its job failed"
    if job.status == Job.Status.CANCELED:
        status, error = Report.Status.CANCELED, "Its job was canceled"
    elif job.error_type:
        error = f"{job.error_type}: {job.error_message}"
    Report.objects.filter(
        tenant_id=job.tenant_id,
        pk=job.payload.get("report_id"),
        status__in=[Report.Status.PENDING, Report.Status.STARTED],
    ).update(status=status, error=error[:2000], finished_at=timezone.now())


def delete_report(report: Report) -> None:
    """Delete the report and, once that commits, its file."""
    name = report.file.name if report.file else ""
    report.delete()
    if name:
        transaction.on_commit(lambda: default_storage.delete(name))


def clean_up_reports(*, older_than: timedelta | None = None) -> dict[str, int]:
    """Delete reports older than REPORTS_RETENTION_DAYS, each with its file.

    Files whose rows are gone otherwise are removed by the daily `cleanup_jobs`.
    """
    days = settings.REPORTS_RETENTION_DAYS
    cutoff = timezone.now() - (older_than if older_than is not None else timedelta(days=days))
    expired = list(Report.objects.filter(created_at__lt=cutoff).order_by("created_at")[:1000])
    for report in expired:
        with transaction.atomic():
            delete_report(report)
    return {"reports": len(expired)}
