"""In-app notifications: a message to one user of one tenant, read or unread."""

from django.conf import settings
from django.db import models

from jobs.models import Job
from tenants.models import Tenant, TenantQuerySet

__all__ = ["Notification"]


class Notification(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="notifications")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=500, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    job = models.ForeignKey(
        Job,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The notifications job that wrote it.",
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(
                fields=["tenant", "user", "read_at", "-created_at"], name="notification_user_idx"
            )
        ]
        constraints = [
            models.UniqueConstraint(fields=["job", "user"], name="notification_once_per_job")
        ]

    def __str__(self) -> str:
        return self.title
