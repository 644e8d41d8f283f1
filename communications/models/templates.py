"""Message templates: a tenant's own versions of the emails, SMS and WhatsApp messages it sends."""

from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.db import models

from communications.models.messaging import Channel
from tenants.models import Tenant, TenantQuerySet

__all__ = ["MessageTemplate"]

MAX_BODY_CHARS = 100_000
MAX_SHORT_BODY_CHARS = 4_096


class MessageTemplate(models.Model):
    """One template per tenant, name and channel; a built-in default of the same name yields to it.

    Email templates have a subject and an HTML and/or a text body; SMS and WhatsApp templates
    have a body only. `sample_variables` are example values of the template's own variables:
    the preview renders with them, and saving checks that the template renders with them.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="message_templates")
    name = models.SlugField(max_length=100, help_text="e.g. welcome, order-shipped.")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    description = models.CharField(max_length=300, blank=True)
    subject = models.CharField(max_length=300, blank=True, help_text="Email only.")
    html_body = models.TextField(
        blank=True, validators=[MaxLengthValidator(MAX_BODY_CHARS)], help_text="Email only."
    )
    text_body = models.TextField(
        blank=True,
        validators=[MaxLengthValidator(MAX_BODY_CHARS)],
        help_text="Email only: the plain-text alternative; made from the HTML when left empty.",
    )
    body = models.TextField(
        blank=True,
        validators=[MaxLengthValidator(MAX_SHORT_BODY_CHARS)],
        help_text="SMS and WhatsApp only.",
    )
    sample_variables = models.JSONField(
        default=dict,
        blank=True,
        help_text='Example values of the template\'s own variables, e.g. {"order": {"id": 42}}.',
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = "message template"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name", "channel"], name="message_template_unique_name"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_channel_display()})"
