"""A tenant's own sender per channel: its address or number, its provider and that provider's
account. Credentials are stored encrypted (communications/secrets.py) and never shown again."""

import uuid

from django.db import models

from communications.models.messaging import Channel
from tenants.models import Tenant, TenantQuerySet

__all__ = ["Provider", "Sender"]


class Provider(models.TextChoices):
    """Who carries a sender's messages. Email: Django's mailer or an ESP through django-anymail;
    SMS: Twilio or the generic HTTP provider; WhatsApp: Meta's Cloud API, Twilio or HTTP."""

    DEPLOYMENT = "deployment", "The deployment's own (settings)"
    SENDGRID = "sendgrid", "SendGrid"
    AMAZON_SES = "amazon_ses", "Amazon SES"
    MAILGUN = "mailgun", "Mailgun"
    POSTMARK = "postmark", "Postmark"
    RESEND = "resend", "Resend"
    BREVO = "brevo", "Brevo"
    TWILIO = "twilio", "Twilio"
    META = "meta", "Meta WhatsApp Cloud API"
    HTTP = "http", "Generic HTTP (JSON)"


class Sender(models.Model):
    """How one tenant sends one channel; tenants without one use the deployment's settings."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="senders")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    from_name = models.CharField(max_length=100, blank=True, help_text="Email: display name.")
    from_address = models.CharField(
        max_length=254, help_text="Email address, or the E.164 number SMS/WhatsApp go from."
    )
    reply_to = models.EmailField(blank=True, help_text="Email only.")
    settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="The provider's non-secret settings: account_sid, phone_number_id, api_url…",
    )
    # Fernet token of a JSON object (api_key, auth_token, …); written, never shown.
    credentials = models.TextField(blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    last_test_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_test_result = models.CharField(max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["channel"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "channel"], name="sender_one_per_channel")
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} from {self.from_address} ({self.provider})"
