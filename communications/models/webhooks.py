"""Webhook endpoints of a tenant, the deliveries of events to them and each delivery attempt."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from tenants.models import Tenant, TenantQuerySet

__all__ = ["EventType", "WebhookAttempt", "WebhookDelivery", "WebhookEndpoint"]

ALL_EVENTS = "*"


class EventType(models.TextChoices):
    """The events Conveyor publishes; `webhook.test` goes only to the endpoint being tested."""

    CONTACT_CREATED = "contact.created", "Contact created"
    CONTACT_UPDATED = "contact.updated", "Contact updated"
    CONTACT_DELETED = "contact.deleted", "Contact deleted"
    JOB_SUCCEEDED = "job.succeeded", "Job succeeded"
    JOB_FAILED = "job.failed", "Job failed"
    CAMPAIGN_FINISHED = "campaign.finished", "Campaign finished"
    IMPORT_COMPLETED = "import.completed", "Import completed"
    REPORT_READY = "report.ready", "Report ready"
    MESSAGE_FAILED = "message.failed", "Message failed"
    WORKFLOW_FINISHED = "workflow.finished", "Workflow finished"
    ALERT_OPENED = "alert.opened", "Alert opened"
    ALERT_ESCALATED = "alert.escalated", "Alert escalated"
    ALERT_RESOLVED = "alert.resolved", "Alert resolved"
    WEBHOOK_TEST = "webhook.test", "Test event"


class WebhookEndpoint(models.Model):
    """A URL of the tenant's that receives signed POSTs of the events it subscribes to."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100, editable=False)
    # While a rotation's grace period lasts, deliveries carry signatures with both secrets.
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    legacy_signature = models.BooleanField(
        default=True,
        help_text=(
            "Also send the Conveyor-Timestamp and Conveyor-Signature headers of earlier "
            "releases beside the Standard Webhooks ones. Turn off once the receiver checks "
            "webhook-signature."
        ),
    )
    event_types = ArrayField(
        models.CharField(max_length=50),
        default=list,
        help_text='Event types to receive, or ["*"] for every event.',
    )
    is_active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Dead-lettered deliveries since the last successful one."
    )
    dead_deliveries = models.PositiveIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="webhook_endpoint_tenant_idx"),
        ]

    def __str__(self) -> str:
        return self.url

    def subscribes_to(self, event_type: str) -> bool:
        return ALL_EVENTS in self.event_types or event_type in self.event_types

    @property
    def secret_hint(self) -> str:
        """Enough of the secret to tell two apart, never enough to sign."""
        return f"{self.secret[:6]}…{self.secret[-4:]}" if self.secret else ""


class WebhookDelivery(models.Model):
    """One event for one endpoint: retried until it succeeds or fails for good (then replayable).

    Its status speaks the engine's words: `retrying` means the last attempt failed and another
    is scheduled (`next_attempt_at`); `failed` means no attempt is left, or the endpoint refused
    it for good (a dead letter); `canceled` that its job was canceled.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        STARTED = "started", "Delivering"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
    # What a replay may start again: a dead letter, or one whose job was canceled.
    REPLAYABLE = (Status.FAILED, Status.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.UUIDField(db_index=True)
    event_type = models.CharField(max_length=50)
    payload = models.JSONField(help_text="The JSON body: id, type, created, tenant, data.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response_excerpt = models.CharField(max_length=500, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="webhook_delivery_tenant_idx"),
            models.Index(
                fields=["tenant", "status", "-created_at"], name="webhook_delivery_status_idx"
            ),
            models.Index(
                fields=["tenant", "endpoint", "-created_at"], name="webhook_delivery_endpoint_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id}"


class WebhookAttempt(models.Model):
    """What one POST of a delivery got: a response code and excerpt, or an error."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        RETRYING = "retrying", "Failed, retry scheduled"
        FAILED = "failed", "Failed, no retry"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)
    retry_in = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds until the next attempt."
    )
    address = models.CharField(max_length=45, blank=True, help_text="The IP address connected to.")

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["delivery", "number"]
        indexes = [
            models.Index(fields=["tenant", "delivery", "number"], name="webhook_attempt_idx"),
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number}: {self.outcome}"
