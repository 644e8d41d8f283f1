"""Workflows: a tenant's graph of steps run as jobs, and automations that start them on events."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from jobs.models import Job
from jobs.selectors.jobs import workflow_key_prefix
from tenants.models import Tenant, TenantQuerySet


class Workflow(models.Model):
    """One run of a graph of steps; it ends once, when every step has ended or on a cancel."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    ENDED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="workflows")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    input = models.JSONField(default=dict, blank=True, help_text="Templates read it as `input`.")
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0, help_text="Steps ended (skipped included).")
    on_end_kind = models.CharField(max_length=100, blank=True)
    on_end_payload = models.JSONField(default=dict, blank=True)
    on_end_job = models.ForeignKey(
        Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    automation = models.ForeignKey(
        "Automation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="workflows",
    )
    trigger_job = models.ForeignKey(
        Job,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The job (a schedule's) that started it.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="workflow_tenant_created_idx"),
            models.Index(fields=["tenant", "status", "-created_at"], name="workflow_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(done__lte=models.F("total")), name="workflow_done")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def job_key_prefix(self) -> str:
        """Every step's job has an idempotency key starting so (the job list filters by it)."""
        return workflow_key_prefix(self.pk)


class Edge(models.TextChoices):
    """When a step runs after a parent: the parent's outcome that lets it."""

    ON_SUCCESS = "on_success", "On success"
    ON_FAILURE = "on_failure", "On failure"
    ALWAYS = "always", "Always"


class Join(models.TextChoices):
    ALL = "all", "Every parent's edge holds"
    ANY = "any", "One parent's edge holds"


class WorkflowStep(models.Model):
    """A node of the graph: its kind and payload, its parents' edges, its job once it runs."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"
        SKIPPED = "skipped", "Skipped"

    ENDED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.SKIPPED)

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=64)
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True, help_text="May hold {{ templates }}.")
    delay = models.PositiveIntegerField(default=0, help_text="Seconds to wait once it is ready.")
    needs = models.JSONField(
        default=list, blank=True, help_text='Parents and edges: [{"step": "a", "when": "…"}].'
    )
    join = models.CharField(max_length=3, choices=Join.choices, default=Join.ALL)
    condition = models.JSONField(
        default=list, blank=True, help_text='All must hold: [{"field", "op", "value"}].'
    )
    dependents = models.JSONField(default=list, blank=True, help_text="The steps that need it.")
    parents_left = models.PositiveIntegerField(
        default=0, help_text="Parents not ended yet: counted down as they end."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    reason = models.CharField(max_length=500, blank=True, help_text="Why it was skipped or failed.")
    job = models.OneToOneField(
        Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="workflow_step"
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "name"], name="workflow_step_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class Automation(models.Model):
    """When the tenant's event `event_type` matches `conditions`, start the workflow it holds."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="automations")
    name = models.CharField(max_length=200)
    event_type = models.CharField(max_length=50)
    conditions = models.JSONField(
        default=list, blank=True, help_text='All must hold: [{"field": "data.x", "op", "value"}].'
    )
    workflow_name = models.CharField(max_length=200)
    steps = models.JSONField(help_text="The graph each start runs (as POST /workflows/ takes).")
    enabled = models.BooleanField(default=True)
    start_count = models.PositiveIntegerField(default=0, editable=False)
    last_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(
                fields=["tenant", "event_type"],
                name="automation_event_idx",
                condition=Q(enabled=True),
            )
        ]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="automation_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class AutomationStart(models.Model):
    """One event that started an automation's workflow: an event starts it at most once."""

    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="starts")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    event_key = models.CharField(max_length=64, help_text="The event's identity (a digest).")
    event_type = models.CharField(max_length=50)
    event_id = models.CharField(max_length=64, blank=True)
    workflow = models.ForeignKey(
        Workflow, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["automation", "event_key"], name="automation_start_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.automation} ← {self.event_type}"
