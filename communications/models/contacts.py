"""A tenant's contacts: the people messages, campaigns and imports are about."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q

from tenants.models import Tenant, TenantQuerySet

__all__ = ["Contact"]


class Contact(models.Model):
    """Unique per tenant by email and by phone where present; phone is kept in E.164."""

    class Source(models.TextChoices):
        API = "api", "API"
        ADMIN = "admin", "Admin"
        IMPORT = "import", "Import"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +14155550123.")
    company = models.CharField(max_length=200, blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    opted_out = models.BooleanField(default=False)
    custom_fields = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "email"], condition=~Q(email=""), name="contact_unique_email"
            ),
            models.UniqueConstraint(
                fields=["tenant", "phone"], condition=~Q(phone=""), name="contact_unique_phone"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="contact_tenant_created_idx"),
            GinIndex(fields=["tags"], name="contact_tags_idx"),
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.phone or f"Contact {self.pk}"
