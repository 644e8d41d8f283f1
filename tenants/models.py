"""Tenants, their members and roles, and the API keys applications use."""

import hashlib
import zoneinfo
from typing import Any, Self

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from tenants.limits import parse_rate


class Role(models.TextChoices):
    """Membership roles, lowest to highest; `Role.rank` compares them."""

    VIEWER = "viewer", "Viewer"
    AGENT = "agent", "Agent"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"

    @classmethod
    def rank(cls, role: str) -> int:
        return list(cls.values).index(role)

    @classmethod
    def at_least(cls, role: str) -> list[str]:
        """Every role equal to or above `role`."""
        return list(cls.values)[cls.rank(role) :]


class TenantQuerySet[M: models.Model](models.QuerySet[M]):
    """The one way tenant-owned rows are read: `Model.objects.for_tenant(tenant)`."""

    def for_tenant(self, tenant: "Tenant") -> Self:
        return self.filter(tenant=tenant)

    def for_tenants(self, tenants: Any) -> Self:
        return self.filter(tenant__in=tenants)


def _validate_rate_limits(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError('Rate limits are an object of name → rate, e.g. {"email": "10/s"}.')
    for name, rate in value.items():
        try:
            parse_rate(rate)
        except ValueError as error:
            raise ValidationError(f"{name}: {error}") from error


def _validate_concurrency_limits(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError(
            'Concurrency limits are an object of queue → count, e.g. {"imports": 2}.'
        )
    for name, count in value.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValidationError(f"{name}: the limit must be a whole number of at least 1.")


def _queue_default_limits() -> dict[str, tuple[int, int]]:
    """What a tenant may choose: queues are shared, so settings cap it (as for the API)."""
    limits = settings.CONVEYOR_TENANT_LIMITS
    return {"timeout": (1, limits["max_timeout"]), "max_attempts": (1, limits["max_attempts"])}


def _validate_queue_defaults(value: Any) -> None:
    example = '{"reports": {"timeout": 1800, "max_attempts": 2}}'
    if not isinstance(value, dict):
        raise ValidationError(f"Queue defaults are an object of queue → settings, e.g. {example}.")
    for queue, chosen in value.items():
        if queue not in settings.CONVEYOR_QUEUES:
            known = ", ".join(settings.CONVEYOR_QUEUES)
            raise ValidationError(f"{queue}: there is no such queue; the queues are {known}.")
        if queue in settings.CONVEYOR_TENANT_LIMITS["operator_queues"]:
            raise ValidationError(f"{queue}: the platform's own queue keeps its defaults.")
        if not isinstance(chosen, dict) or not chosen:
            raise ValidationError(f"{queue}: give timeout and/or max_attempts, e.g. {example}.")
        bounds = _queue_default_limits()
        for name, number in chosen.items():
            if name not in bounds:
                raise ValidationError(f"{queue}: {name!r} is not timeout or max_attempts.")
            low, high = bounds[name]
            if not isinstance(number, int) or isinstance(number, bool) or not low <= number <= high:
                raise ValidationError(f"{queue}.{name}: a whole number from {low} to {high}.")


def _validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationError(f"{value!r} is not a known time zone (e.g. Europe/Paris).") from error


class Tenant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    is_active = models.BooleanField(default=True)
    rate_limits = models.JSONField(
        default=dict,
        blank=True,
        validators=[_validate_rate_limits],
        help_text='Overrides of the per-tenant rate limits, e.g. {"email": "20/s", "sms": "5/s"}.',
    )
    concurrency_limits = models.JSONField(
        default=dict,
        blank=True,
        validators=[_validate_concurrency_limits],
        help_text='Overrides of how many jobs may run at once per queue, e.g. {"imports": 3}.',
    )
    queue_defaults = models.JSONField(
        default=dict,
        blank=True,
        validators=[_validate_queue_defaults],
        help_text="Overrides of a queue's timeout (seconds) and attempts for this tenant's jobs, "
        'e.g. {"reports": {"timeout": 1800, "max_attempts": 2}}.',
    )
    retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Keep finished jobs this many days (default 90)."
    )
    default_region = models.CharField(
        max_length=2,
        default="US",
        help_text="ISO country code for phone numbers written without a +country prefix.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[_validate_time_zone],
        help_text="Time zone for reports and scheduled sends, e.g. Europe/Paris.",
    )
    contact_created_notify = models.CharField(
        max_length=10,
        blank=True,
        choices=Role.choices,
        help_text="When a contact is created (API or admin), notify and email the members with "
        "this role or higher; blank: nobody.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def queue_default(self, queue: str, name: str) -> int | None:
        """This tenant's own `timeout` or `max_attempts` for jobs on `queue`, if it has one."""
        value = (self.queue_defaults or {}).get(queue, {}).get(name)
        return value if isinstance(value, int) else None


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user"),
        ]
        indexes = [models.Index(fields=["user", "tenant"], name="membership_user_idx")]

    def __str__(self) -> str:
        return f"{self.user} · {self.tenant} ({self.role})"


class ApiKey(models.Model):
    """A secret an application sends as `Authorization: Bearer <key>`; only its hash is kept."""

    PREFIX = "cvk"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="When set, the key acts only in this tenant.",
    )
    name = models.CharField(max_length=100)
    lookup = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.PREFIX}_{self.lookup}_…)"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()
