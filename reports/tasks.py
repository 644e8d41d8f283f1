"""Job kinds of reports: generating a report, and the hourly analytics roll-up."""

from datetime import datetime
from typing import Any

from django.db.models import Max
from rest_framework import serializers

from jobs.kinds import job_kind
from jobs.models import Job
from jobs.runtime.context import JobContext
from reports.models import Report
from reports.rollups import roll_up_analytics
from reports.services import clean_up_reports, fail_report, generate_report

ROLL_UP_KIND = "reports.roll_up_analytics"


class GeneratePayload(serializers.Serializer):
    report_id = serializers.UUIDField()


@job_kind("reports.generate_report", queue="reports", payload=GeneratePayload)
def generate(ctx: JobContext, *, report_id: str) -> dict[str, Any]:
    """Build the report's file; on its last failed attempt the report is marked failed."""
    report = Report.objects.select_related("tenant", "created_by").get(
        tenant=ctx.tenant, pk=report_id
    )
    try:
        generate_report(report, progress=ctx.progress)
    except Exception as error:
        if ctx.attempt >= ctx.job.max_attempts:
            fail_report(report, error=f"{type(error).__name__}: {error}")
        raise
    return {"report_id": str(report.pk), "file": report.file.name, "size": report.size}


@job_kind(ROLL_UP_KIND, queue="maintenance", max_attempts=1)
def roll_up(ctx: JobContext) -> dict[str, Any]:
    """Roll jobs and messages up into hourly rows since the last run; expire old reports."""
    written = roll_up_analytics(since=_last_run_started(ctx.job))
    return {**written, **clean_up_reports()}


def _last_run_started(current: Job) -> datetime | None:
    """When the last successful roll-up started: hours since then may have changed."""
    return (
        Job.objects.filter(kind=ROLL_UP_KIND, status=Job.Status.SUCCEEDED)
        .exclude(pk=current.pk)
        .aggregate(latest=Max("started_at"))["latest"]
    )
