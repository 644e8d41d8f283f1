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
from reports.services import (
    GENERATE_KIND,
    clean_up_reports,
    generate_report,
    settle_report_job,
)

ROLL_UP_KIND = "reports.roll_up_analytics"


class GeneratePayload(serializers.Serializer):
    report_id = serializers.UUIDField()


@job_kind(GENERATE_KIND, queue="reports", payload=GeneratePayload, on_end=settle_report_job)
def generate(ctx: JobContext, *, report_id: str) -> dict[str, Any]:
    """Build the report's file; once its job fails or is canceled the report is failed."""
    report = Report.objects.select_related("tenant", "created_by").get(
        tenant=ctx.tenant, pk=report_id
    )
    generate_report(report, progress=ctx.progress)
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
