"""Reports a tenant asked for, and the hourly roll-ups of messages."""

import uuid

from django.conf import settings
from django.db import models

from jobs.models import Job
from tenants.models import Tenant, TenantQuerySet


class ReportType(models.TextChoices):
    JOB_ACTIVITY = "job_activity", "Job activity"
    MESSAGING_DELIVERY = "messaging_delivery", "Messaging delivery"
    CONTACT_GROWTH = "contact_growth", "Contact growth"
    WEBHOOK_DELIVERY = "webhook_delivery", "Webhook delivery"


class ReportFormat(models.TextChoices):
    PDF = "pdf", "PDF"
    XLSX = "xlsx", "Excel (XLSX)"
    CSV = "csv", "CSV"
    HTML = "html", "HTML"


def report_path(report: "Report", filename: str) -> str:
    return f"reports/{report.tenant_id}/{report.pk}/{filename}"


class Report(models.Model):
    """One report: what was asked (type, format, parameters) and the file it produced."""

    class Status(models.TextChoices):
        """The engine's words: a report is `succeeded` once its file is stored."""

        PENDING = "pending", "Pending"
        STARTED = "started", "Started"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="reports")
    type = models.CharField(max_length=30, choices=ReportType.choices)
    format = models.CharField(max_length=10, choices=ReportFormat.choices)
    parameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    file = models.FileField(upload_to=report_path, max_length=300, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True, help_text="Bytes.")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="report_tenant_created_idx"),
            models.Index(fields=["created_at"], name="report_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} ({self.format}) {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def filename(self) -> str:
        return (self.file.name or "").rsplit("/", 1)[-1]


class MessageHourlyStat(models.Model):
    """Messages created in one hour, per tenant, channel and status; written only by roll-ups.

    `latency_*` are seconds from created to sent, for messages that were sent.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    channel = models.CharField(max_length=20)
    status = models.CharField(max_length=20)
    count = models.PositiveIntegerField()
    latency_count = models.PositiveIntegerField(default=0)
    latency_sum = models.FloatField(default=0)
    latency_max = models.FloatField(null=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["hour"], name="messagehourlystat_hour_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "hour", "channel", "status"], name="messagehourlystat_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.channel} {self.status}: {self.count}"
