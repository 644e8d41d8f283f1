"""The durable record of background work: jobs, their logs and batches, and schedules."""

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q

from tenants.models import Tenant, TenantQuerySet


class Priority(models.TextChoices):
    """Higher priorities start before every lower one waiting in the same queue."""

    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    NORMAL = "normal", "Normal"
    LOW = "low", "Low"


class Batch(models.Model):
    """A group of jobs; when every member has ended, its callback kind is enqueued once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    description = models.CharField(max_length=200, blank=True)
    callback_kind = models.CharField(max_length=100, blank=True)
    callback_payload = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    callback_job = models.OneToOneField(
        "Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["tenant", "-created_at"], name="batch_tenant_created_idx")]

    def __str__(self) -> str:
        return self.description or str(self.id)


class Job(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        QUEUED = "queued", "Queued"
        SCHEDULED = "scheduled", "Scheduled"
        DEFERRED = "deferred", "Deferred"
        STARTED = "started", "Started"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    WAITING = (Status.PENDING, Status.QUEUED, Status.SCHEDULED, Status.DEFERRED, Status.RETRYING)
    ACTIVE = (*WAITING, Status.STARTED)
    CANCELABLE = ACTIVE
    RETRYABLE = (Status.FAILED, Status.CANCELED)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
    # A row in one of these may be claimed by a worker delivering its RQ job.
    RUNNABLE = (Status.PENDING, Status.QUEUED, Status.SCHEDULED, Status.RETRYING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Foreign keys get no index of their own where a composite index below leads with them,
    # and a partial one (rows that have a value) where most rows have none: every index is
    # written on every enqueue.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="jobs", db_index=False
    )
    kind = models.CharField(max_length=100)
    queue = models.CharField(max_length=50)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    payload = models.JSONField(default=dict, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    progress_message = models.CharField(max_length=200, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    snoozes = models.PositiveIntegerField(
        default=0, help_text="Times the job put itself back without using an attempt."
    )
    timeout = models.PositiveIntegerField(help_text="Seconds an attempt may run.")
    idempotency_key = models.CharField(max_length=200, blank=True)
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="When it is due to run.")
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    parent = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="children",
        db_index=False,
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs", db_index=False
    )
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="dependents"
    )
    worker_name = models.CharField(max_length=200, blank=True)
    # The running attempt's lease: every claim takes a new token (never reset, unlike
    # `attempt`), and every write an attempt makes names it, so a rescued attempt that runs on
    # cannot overwrite its successor. The expiry is renewed with the worker's heartbeat.
    lease = models.PositiveIntegerField(default=0, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The W3C trace context of the enqueue (jobs.tracing): every attempt continues its trace.
    trace_context = models.JSONField(default=dict, blank=True, editable=False)
    # Set when another job depends on this one, so that ending it looks for dependents.
    has_dependents = models.BooleanField(default=False, editable=False)
    schedule = models.ForeignKey(
        "Schedule",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
        db_index=False,
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="job_tenant_created_idx"),
            models.Index(fields=["tenant", "status", "-created_at"], name="job_tenant_status_idx"),
            models.Index(fields=["tenant", "queue", "-created_at"], name="job_tenant_queue_idx"),
            models.Index(fields=["tenant", "kind", "-created_at"], name="job_tenant_kind_idx"),
            models.Index(
                fields=["tenant", "priority", "-created_at"], name="job_tenant_priority_idx"
            ),
            models.Index(fields=["-created_at"], name="job_created_idx"),
            # Operators filter across tenants: one index per filter, newest first.
            models.Index(fields=["status", "-created_at"], name="job_status_created_idx"),
            models.Index(fields=["queue", "-created_at"], name="job_queue_created_idx"),
            models.Index(fields=["kind", "-created_at"], name="job_kind_created_idx"),
            models.Index(fields=["priority", "-created_at"], name="job_priority_created_idx"),
            models.Index(
                fields=["idempotency_key"],
                name="job_idempotency_key_idx",
                condition=~Q(idempotency_key=""),
            ),
            GinIndex(fields=["payload"], opclasses=["jsonb_path_ops"], name="job_payload_idx"),
            models.Index(fields=["status", "queue", "created_at"], name="job_status_queue_idx"),
            models.Index(
                fields=["batch", "status"],
                name="job_batch_status_idx",
                condition=Q(batch__isnull=False),
            ),
            # A schedule belongs to one tenant: its jobs need no tenant column in the index.
            models.Index(
                fields=["schedule", "-created_at"],
                name="job_schedule_created_idx",
                condition=Q(schedule__isnull=False),
            ),
            models.Index(
                fields=["created_by"],
                name="job_created_by_idx",
                condition=Q(created_by__isnull=False),
            ),
            models.Index(
                fields=["parent"], name="job_parent_idx", condition=Q(parent__isnull=False)
            ),
            # Only finished jobs are in it: a new job is one index write fewer.
            models.Index(
                fields=["finished_at"],
                name="job_finished_at_idx",
                condition=Q(finished_at__isnull=False),
            ),
            models.Index(
                fields=["status", "enqueued_at"],
                name="job_active_idx",
                condition=Q(status__in=["pending", "queued", "scheduled", "started", "retrying"]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "idempotency_key"],
                name="job_active_idempotency_key",
                condition=Q(
                    status__in=["pending", "queued", "scheduled", "deferred", "started", "retrying"]
                )
                & ~Q(idempotency_key=""),
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="job_progress_percent"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"

    @property
    def rq_id(self) -> str:
        return str(self.id)

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class JobLog(models.Model):
    class Event(models.TextChoices):
        ENQUEUED = "enqueued", "Enqueued"
        STARTED = "started", "Started"
        PROGRESS = "progress", "Progress"
        NOTE = "note", "Note"
        RETRY_SCHEDULED = "retry_scheduled", "Retry scheduled"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        DEAD_LETTERED = "dead_lettered", "Dead-lettered"
        CANCEL_REQUESTED = "cancel_requested", "Cancel requested"
        CANCELED = "canceled", "Canceled"
        STOPPED = "stopped", "Stopped"
        RESCUED = "rescued", "Rescued"
        SNOOZED = "snoozed", "Snoozed"
        REQUEUED = "requeued", "Requeued"

    class Level(models.TextChoices):
        DEBUG = "debug", "Debug"
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    # Indexed through the composite indexes below, which lead with them. PostgreSQL does not
    # check these keys: the engine writes every line in the transaction that changes its job,
    # Django cascades deletions and clean-up deletes lines with their jobs, while a checked key
    # costs a locked job row (and its WAL record) per line, at commit.
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="logs", db_index=False, db_constraint=False
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    event = models.CharField(max_length=20, choices=Event.choices)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["job", "created_at"], name="joblog_job_idx"),
            models.Index(fields=["tenant", "-created_at"], name="joblog_tenant_idx"),
            models.Index(fields=["tenant", "event", "-created_at"], name="joblog_tenant_event_idx"),
            # For the rare events across tenants (retries, dead letters, rescues): the lines
            # every job writes are left out, so writing them costs one index fewer.
            models.Index(
                fields=["event", "-id"],
                name="joblog_rare_event_idx",
                condition=~Q(event__in=["enqueued", "started", "progress", "note", "succeeded"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event}: {self.message}"


class Schedule(models.Model):
    """Enqueues a job of `kind` on a cron expression, a fixed interval or once at `run_at`."""

    class OverlapPolicy(models.TextChoices):
        SKIP = "skip", "Skip a run while the previous one is still waiting or running"
        ALLOW = "allow", "Allow runs to overlap"

    class MissedRunPolicy(models.TextChoices):
        RUN_ONCE = "run_once", "Run once for all runs missed while no scheduler ran"
        SKIP = "skip", "Skip missed runs; wait for the next one"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True)
    cron = models.CharField(
        max_length=100,
        blank=True,
        help_text="Five fields, minute hour day month weekday (e.g. '30 2 * * *'), or @daily.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="IANA time zone the cron expression is read in, e.g. Europe/London.",
    )
    interval_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Run every this many seconds, counted from the start."
    )
    run_at = models.DateTimeField(null=True, blank=True, help_text="Run once at this time.")
    enabled = models.BooleanField(default=True)
    queue = models.CharField(max_length=50, blank=True, help_text="Blank: the kind's queue.")
    priority = models.CharField(
        max_length=10, choices=Priority.choices, blank=True, help_text="Blank: normal."
    )
    overlap_policy = models.CharField(
        max_length=10, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP
    )
    missed_run_policy = models.CharField(
        max_length=10, choices=MissedRunPolicy.choices, default=MissedRunPolicy.RUN_ONCE
    )
    starts_at = models.DateTimeField(null=True, blank=True, help_text="No run before this time.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="No run after this time.")
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_job = models.ForeignKey(
        Job, on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="+"
    )
    run_count = models.PositiveIntegerField(default=0, editable=False)
    # Built in (reconcile, clean up, roll up): editable, never deleted.
    is_system = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["tenant", "kind"], name="schedule_tenant_kind_idx"),
            # The scheduler's query: due rows of every tenant.
            models.Index(
                fields=["next_run_at"], name="schedule_due_idx", condition=Q(enabled=True)
            ),
        ]
        constraints = [
            # Also the index of the tenant's list, which is ordered by name.
            models.UniqueConstraint(fields=["tenant", "name"], name="schedule_unique_name"),
            models.UniqueConstraint(
                fields=["tenant", "kind"], condition=Q(is_system=True), name="schedule_system_kind"
            ),
            models.CheckConstraint(
                condition=(
                    Q(~Q(cron=""), interval_seconds__isnull=True, run_at__isnull=True)
                    | Q(cron="", interval_seconds__isnull=False, run_at__isnull=True)
                    | Q(cron="", interval_seconds__isnull=True, run_at__isnull=False)
                ),
                name="schedule_one_trigger",
                violation_error_message=(
                    "Give exactly one trigger: a cron expression, an interval or a run-at time."
                ),
            ),
            models.CheckConstraint(
                condition=Q(interval_seconds__isnull=True) | Q(interval_seconds__gte=1),
                name="schedule_interval_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def trigger(self) -> str:
        """The trigger in words: `cron 30 2 * * * (Europe/London)`, `every 600 s`, `once at …`."""
        if self.cron:
            return f"cron {self.cron} ({self.time_zone})"
        if self.interval_seconds:
            return f"every {self.interval_seconds} s"
        return f"once at {self.run_at.isoformat()}" if self.run_at else "no trigger"


class JobHourlyStat(models.Model):
    """Jobs created in one hour, per tenant, queue, kind and status: counts and durations.

    Written only by `jobs.selectors.stats.roll_up_jobs`, which replaces an hour's rows as a whole.
    Durations are seconds; wait is enqueued → started, run is started → finished.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    queue = models.CharField(max_length=50)
    kind = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Job.Status.choices)
    count = models.PositiveIntegerField()
    wait_count = models.PositiveIntegerField(default=0)
    wait_sum = models.FloatField(default=0)
    wait_max = models.FloatField(null=True)
    wait_p50 = models.FloatField(null=True)
    wait_p95 = models.FloatField(null=True)
    run_count = models.PositiveIntegerField(default=0)
    run_sum = models.FloatField(default=0)
    run_max = models.FloatField(null=True)
    run_p50 = models.FloatField(null=True)
    run_p95 = models.FloatField(null=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["hour"], name="jobhourlystat_hour_idx")]
        constraints = [
            # Also the index of every tenant read, which always bounds the hour.
            models.UniqueConstraint(
                fields=["tenant", "hour", "queue", "kind", "status"], name="jobhourlystat_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.kind} {self.status}: {self.count}"


class HealthCheck(models.Model):
    """One scheduled health check, kept compactly for the timeline and the alert rules.

    `components` maps each component to `[status, reason, figures]`; `workers` maps each live
    worker to what it last reported of itself (memory, CPU, its host's load and free disk).
    Written by `jobs.services.health.record_health_check`; deleted after `history_days`.
    """

    checked_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=10)
    components = models.JSONField(default=dict)
    workers = models.JSONField(default=dict)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-checked_at"]

    def __str__(self) -> str:
        return f"{self.checked_at:%Y-%m-%d %H:%M:%S} {self.status}"


class OnceMarker(models.Model):
    """A side effect in our own database that happened: `ctx.once(name)` takes it once per tenant.

    Inserted in the transaction of the job's own writes, so the marker and the effect commit or
    roll back together, and a later attempt (or another job) that asks again is told no.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    name = models.CharField(max_length=200)
    # Which job took it, kept as a plain id: the marker outlives the job's clean-up.
    job_id = models.UUIDField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="oncemarker_unique"),
        ]

    def __str__(self) -> str:
        return self.name
