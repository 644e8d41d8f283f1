"""Models of the messaging area: messages (one row per send) and campaigns (bulk sends).

Message templates live beside them; see communications/services for the behaviour.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from communications.models.contacts import Contact
from jobs.models import Batch, Job
from tenants.models import Tenant, TenantQuerySet

__all__ = ["Campaign", "Channel", "DeliveryEvent", "Message"]


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


class Campaign(models.Model):
    """One template sent to many contacts on one channel, in parallel batch jobs."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"  # starts at send_at
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        CANCELED = "canceled", "Canceled"
        FAILED = "failed", "Failed"

    ENDED = (Status.FINISHED, Status.CANCELED, Status.FAILED)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    template = models.CharField(max_length=100, help_text="Template name, e.g. welcome.")
    variables = models.JSONField(
        default=dict, blank=True, help_text="Variables every recipient's message gets."
    )
    contact_ids = ArrayField(
        models.BigIntegerField(),
        default=list,
        blank=True,
        help_text="Audience: these contacts (or use tags).",
    )
    tags = ArrayField(
        models.CharField(max_length=50),
        default=list,
        blank=True,
        help_text="Audience: contacts with any of these tags (or use contact ids).",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # Final totals, written when the campaign ends; while it runs they come from its messages.
    recipients = models.PositiveIntegerField(default=0, help_text="Recipients snapshotted.")
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    canceled = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.ForeignKey(
        Job,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The job that snapshots the recipients and starts the batches.",
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    send_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a scheduled campaign starts (in the admin: the tenant's time zone).",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="campaign_tenant_created_idx"),
            models.Index(
                fields=["tenant", "status", "-created_at"], name="campaign_tenant_status_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_ended(self) -> bool:
        return self.status in self.ENDED


class Message(models.Model):
    """One send to one recipient: checked before the provider is called, marked after."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"  # handed to the provider; outcome not recorded yet
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"  # opted out or no valid address: never sent
        CANCELED = "canceled", "Canceled"  # its campaign was canceled before its turn

    class Delivery(models.TextChoices):
        """What the provider told us after it took the message (its delivery receipts)."""

        DELIVERED = "delivered", "Delivered"
        READ = "read", "Read"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"
        FAILED = "failed", "Failed"

    PENDING = (Status.QUEUED, Status.SENDING)
    ENDED = (Status.SENT, Status.FAILED, Status.SKIPPED, Status.CANCELED)

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="messages")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    recipient = models.CharField(max_length=254, help_text="Email address or E.164 number.")
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    template = models.CharField(max_length=100, blank=True, help_text="Blank: raw content.")
    subject = models.CharField(max_length=500, blank=True)
    html = models.TextField(blank=True)
    text = models.TextField(
        blank=True, help_text="Plain-text email body, or the SMS/WhatsApp body."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    provider_message_id = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Provider calls made.")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, null=True, blank=True, related_name="messages"
    )
    sender = models.ForeignKey(
        "communications.Sender",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The tenant's sender it went through; empty: the deployment's.",
    )
    provider_template = models.JSONField(
        default=dict,
        blank=True,
        help_text="WhatsApp: the approved template sent instead of text "
        '({"name", "language", "parameters"}).',
    )
    send_at = models.DateTimeField(null=True, blank=True, help_text="When a scheduled send goes.")
    delivery_status = models.CharField(
        max_length=10, choices=Delivery.choices, blank=True, help_text="The latest receipt."
    )
    delivery_updated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="message_tenant_created_idx"),
            models.Index(
                fields=["tenant", "status", "-created_at"], name="message_tenant_status_idx"
            ),
            models.Index(
                fields=["tenant", "channel", "-created_at"], name="message_tenant_channel_idx"
            ),
            models.Index(fields=["campaign", "status"], name="message_campaign_status_idx"),
            models.Index(
                fields=["campaign", "id"],
                name="message_campaign_pending_idx",
                condition=Q(status__in=["queued", "sending"]),
            ),
            models.Index(
                fields=["tenant", "provider_message_id"],
                name="message_provider_id_idx",
                condition=~Q(provider_message_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.recipient}"

    @property
    def body(self) -> str:
        """What an SMS or WhatsApp message says (the text part of an email)."""
        return self.text


class DeliveryEvent(models.Model):
    """One step of a message's delivery timeline after `sent`, from a provider's receipt."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Message.Delivery.choices)
    occurred_at = models.DateTimeField(help_text="When the provider says it happened.")
    detail = models.CharField(max_length=500, blank=True, help_text="The provider's reason.")
    received_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            # A provider repeats a receipt when our answer was slow: the timeline keeps one.
            models.UniqueConstraint(fields=["message", "status"], name="delivery_event_once")
        ]

    def __str__(self) -> str:
        return f"{self.status} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"
