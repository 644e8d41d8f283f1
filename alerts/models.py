"""Alert rules, who they tell, the incidents they open and each notice sent about one.

A rule watches one condition (a component down, a backlog, a failure rate…). When the
condition holds at a scheduled check the rule opens one incident; while it stays open only an
escalation is sent; when the condition clears a "resolved" notice goes to everyone who was told.
A rule without a tenant is platform-wide (superusers only); a tenant's rule sees only its jobs.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from tenants.models import Tenant, TenantQuerySet

__all__ = [
    "AlertNotice",
    "AlertRecipient",
    "AlertRule",
    "Channel",
    "DigestSubscription",
    "Incident",
]


class Condition(models.TextChoices):
    COMPONENT_DOWN = "component_down", "A component is down (PostgreSQL, Redis)"
    NO_WORKER = "no_worker", "A queue has work and no live worker"
    OLDEST_WAITING = "oldest_waiting", "Oldest waiting job older than N seconds"
    FAILURE_RATE = "failure_rate", "Failure rate in the window above X (0–1)"
    DEAD_LETTERS = "dead_letters", "Dead letters grew by N or more in the window"
    TENANT_WAIT_P95 = "tenant_wait_p95", "A tenant's wait p95 in the window above N seconds"
    WORKER_MEMORY = "worker_memory", "A worker's memory above N MB"
    DISK_FREE = "disk_free", "A worker host's free disk below N GB"


# What a tenant's own rule may watch: only figures made of its own jobs.
TENANT_CONDITIONS = (
    Condition.OLDEST_WAITING,
    Condition.FAILURE_RATE,
    Condition.DEAD_LETTERS,
    Condition.TENANT_WAIT_P95,
)


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    IN_APP = "in_app", "In-app notification"
    SLACK = "slack", "Slack-compatible incoming webhook"
    WEBHOOK = "webhook", "Signed webhook events (the tenant's endpoints)"


class AlertRule(models.Model):
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_rules",
        help_text="Blank: platform-wide (superusers only). Set: only this tenant's jobs.",
    )
    name = models.CharField(max_length=200)
    condition = models.CharField(max_length=20, choices=Condition.choices)
    threshold = models.FloatField(
        default=0,
        help_text="Seconds, a rate between 0 and 1, a count, MB or GB, as the condition says.",
    )
    window_minutes = models.PositiveIntegerField(
        default=15, help_text="For failure rate, dead letters and wait p95."
    )
    queue = models.CharField(max_length=50, blank=True, help_text="Blank: every queue.")
    kind = models.CharField(max_length=100, blank=True, help_text="Blank: every kind.")
    component = models.CharField(
        max_length=20, blank=True, help_text="database or redis; blank: either."
    )
    min_jobs = models.PositiveIntegerField(
        default=5, help_text="Failure rate: fewer finished jobs in the window are not judged."
    )
    notify_admins = models.BooleanField(
        default=True,
        help_text="First tell, by email and in-app, the tenant's admins and owners (platform "
        "rules: every superuser), besides the recipients of level 0.",
    )
    publish_webhooks = models.BooleanField(
        default=True,
        help_text="Publish alert.opened, alert.escalated and alert.resolved to the tenant's "
        "subscribed webhook endpoints (platform rules: the system tenant's).",
    )
    escalate_after_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Unacknowledged this long, tell the next level's recipients. Blank: never.",
    )
    cooldown_minutes = models.PositiveIntegerField(
        default=10, help_text="After an incident resolves, do not open another for this long."
    )
    enabled = models.BooleanField(default=True)
    silenced_until = models.DateTimeField(
        null=True, blank=True, help_text="Open no incident before this time."
    )
    builtin = models.CharField(max_length=50, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["tenant", "name"], name="alertrule_tenant_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["builtin"], condition=~Q(builtin=""), name="alertrule_builtin_unique"
            ),
            models.CheckConstraint(
                condition=Q(threshold__gte=0), name="alertrule_threshold_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class AlertRecipient(models.Model):
    """Someone a rule tells: a user by email or in-app, or a Slack-compatible URL.

    Level 0 is told when an incident opens; level 1 when it escalates, and so on.
    """

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="recipients")
    level = models.PositiveSmallIntegerField(default=0)
    # Not `webhook`: the rule's publish_webhooks flag stands for the tenant's endpoints.
    channel = models.CharField(max_length=10, choices=Channel.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    url = models.URLField(max_length=2000, blank=True, help_text="Slack-compatible URL.")

    class Meta:
        ordering = ["rule", "level", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(channel="slack") & ~Q(url="") & Q(user__isnull=True))
                | (~Q(channel="slack") & Q(url="") & Q(user__isnull=False)),
                name="alertrecipient_user_or_url",
                violation_error_message="Email and in-app need a user; Slack needs a URL only.",
            ),
        ]

    def __str__(self) -> str:
        who = self.url if self.channel == Channel.SLACK else str(self.user)
        return f"level {self.level}: {self.get_channel_display()} {who}"


class Incident(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents")
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    summary = models.CharField(max_length=500)
    figures = models.JSONField(default=dict, blank=True)
    level = models.PositiveSmallIntegerField(default=0, help_text="Escalations so far.")
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    escalated_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    silenced_until = models.DateTimeField(
        null=True, blank=True, help_text="No escalation before this time."
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at"]
        indexes = [
            models.Index(fields=["tenant", "status", "-opened_at"], name="incident_tenant_idx"),
            models.Index(fields=["rule", "-resolved_at"], name="incident_rule_resolved_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["rule"], condition=Q(status="open"), name="incident_one_open_per_rule"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule}: {self.summary}"


class AlertNotice(models.Model):
    """One notice of one incident event to one recipient: recorded once, sent once."""

    class Event(models.TextChoices):
        OPENED = "opened", "Opened"
        ESCALATED = "escalated", "Escalated"
        RESOLVED = "resolved", "Resolved"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notices")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=10, choices=Event.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    url = models.URLField(max_length=2000, blank=True)
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["incident", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "event", "channel", "user", "url"],
                nulls_distinct=False,
                name="alertnotice_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel} {self.user_id or self.url}"


class DigestSubscription(models.Model):
    """A member who asked for the tenant's daily digest email."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="digest_one_per_member"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.tenant}"
