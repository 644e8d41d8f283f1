"""Services for schedules: every write to a `Schedule`, and the scheduler's tick.

`run_due_schedules` claims due rows with `SELECT … FOR UPDATE SKIP LOCKED`, enqueues one job for
each under the idempotency key `schedule:<id>:<planned time>`, and moves `next_run_at` on, all
in one transaction: however many schedulers tick at once, each planned run is enqueued once.
Every edit recomputes `next_run_at` at once, so the next tick already follows it.

Built-in schedules (reconcile, clean up, roll up, daily digests) belong to the `system` tenant,
which `ensure_system_schedules` creates; they may be edited or disabled, never deleted.
The reads the API and admin need are in `jobs.selectors.schedules`.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import serializers

from config.exceptions import DomainError
from jobs.errors import UnknownKind
from jobs.kinds import get_kind, tenant_option_errors
from jobs.models import Job, Priority, Schedule
from jobs.services.jobs import enqueue_job
from jobs.triggers import check_cron, get_zone, next_run_after
from tenants.models import Tenant
from tenants.users import Actor

logger = logging.getLogger(__name__)

# A run planned longer ago than this was missed (no scheduler ran): its policy decides.
MISSED_AFTER = timedelta(minutes=1)
SYSTEM_TENANT_SLUG = "system"
TRIGGERS = {
    "cron": "a cron expression",
    "interval_seconds": "an interval",
    "run_at": "a run-at time",
}
EDITABLE = (
    "name",
    "kind",
    "payload",
    "cron",
    "time_zone",
    "interval_seconds",
    "run_at",
    "enabled",
    "queue",
    "priority",
    "overlap_policy",
    "missed_run_policy",
    "starts_at",
    "ends_at",
)


class ScheduleError(DomainError):
    """A schedule cannot do what was asked: delete a built-in one, run an unregistered kind."""


@dataclass(frozen=True)
class BuiltIn:
    name: str
    kind: str
    cron: str
    missed_run_policy: str


SYSTEM_SCHEDULES = (
    BuiltIn("Reconcile jobs", "jobs.reconcile_jobs", "* * * * *", Schedule.MissedRunPolicy.SKIP),
    BuiltIn("Clean up jobs", "jobs.clean_up_jobs", "0 3 * * *", Schedule.MissedRunPolicy.RUN_ONCE),
    BuiltIn(
        "Roll up analytics",
        "reports.roll_up_analytics",
        "0 * * * *",
        Schedule.MissedRunPolicy.RUN_ONCE,
    ),
    BuiltIn(
        "Reconcile workflows",
        "workflows.reconcile_workflows",
        "* * * * *",
        Schedule.MissedRunPolicy.SKIP,
    ),
    BuiltIn(
        "Send daily digests", "alerts.send_digests", "0 7 * * *", Schedule.MissedRunPolicy.SKIP
    ),
)


# --- Validation -------------------------------------------------------------------------------


def check_schedule(
    schedule: Schedule, *, changed: set[str] | None = None, now: datetime | None = None
) -> None:
    """Raise ValidationError (field → messages) unless the schedule can run as it is.

    Tidies the cron expression and the payload in place. `changed` names the fields an edit
    changed (None: a new schedule): an unchanged kind that is no longer registered, or an
    unchanged run-at time in the past, is left alone.
    """
    now = now or timezone.now()
    errors = _field_errors(schedule)
    for field, messages in _rule_errors(schedule, changed=changed, now=now).items():
        errors.setdefault(field, messages)
    if errors:
        raise serializers.ValidationError(errors)


def _field_errors(schedule: Schedule) -> dict[str, Any]:
    """Lengths, blanks and choices, as the model declares them."""
    try:
        schedule.clean_fields(exclude={"tenant", "last_job", "payload"})
    except DjangoValidationError as error:
        return dict(error.message_dict)
    return {}


def _rule_errors(schedule: Schedule, *, changed: set[str] | None, now: datetime) -> dict[str, Any]:
    errors = _trigger_errors(schedule)
    errors.update(_time_errors(schedule, changed=changed, now=now))
    errors.update(_target_errors(schedule))
    errors.update(_kind_errors(schedule, changed=changed))
    if _name_taken(schedule):
        errors["name"] = [f"This tenant already has a schedule named {schedule.name!r}."]
    return errors


def _trigger_errors(schedule: Schedule) -> dict[str, Any]:
    given = [field for field in TRIGGERS if getattr(schedule, field) not in ("", None)]
    if not given:
        return {"cron": ["Give one trigger: a cron expression, an interval or a run-at time."]}
    first = TRIGGERS[given[0]]
    return {field: [f"Give only one trigger: this schedule has {first}."] for field in given[1:]}


def _time_errors(schedule: Schedule, *, changed: set[str] | None, now: datetime) -> dict[str, Any]:
    errors = _cron_and_zone_errors(schedule)
    times = ("run_at", "starts_at", "ends_at")
    naive = [field for field in times if _is_naive(getattr(schedule, field))]
    if naive:
        return {**errors, **{field: ["Give the time with its time zone."] for field in naive}}
    run_at_edited = changed is None or "run_at" in changed
    if schedule.run_at and run_at_edited and schedule.run_at <= now:
        errors["run_at"] = ["Give a time in the future."]
    if schedule.starts_at and schedule.ends_at and schedule.ends_at <= schedule.starts_at:
        errors["ends_at"] = ["The end must be after the start."]
    return errors


def _cron_and_zone_errors(schedule: Schedule) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    try:
        if schedule.cron:
            schedule.cron = check_cron(schedule.cron)
    except DjangoValidationError as error:
        errors["cron"] = error.messages
    try:
        get_zone(schedule.time_zone)
    except DjangoValidationError as error:
        errors["time_zone"] = error.messages
    return errors


def _is_naive(moment: datetime | None) -> bool:
    return moment is not None and timezone.is_naive(moment)


def _target_errors(schedule: Schedule) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    if schedule.queue and schedule.queue not in settings.CONVEYOR_QUEUES:
        known = ", ".join(settings.CONVEYOR_QUEUES)
        errors["queue"] = [f"There is no queue {schedule.queue!r}; the queues are {known}."]
    if schedule.interval_seconds is not None and schedule.interval_seconds < 1:
        errors["interval_seconds"] = ["The interval is at least 1 second."]
    return errors


def _kind_errors(schedule: Schedule, *, changed: set[str] | None) -> dict[str, Any]:
    if changed is not None and schedule.is_system and "kind" in changed:
        return {"kind": ["A built-in schedule keeps its kind."]}
    if changed is not None and not {"kind", "payload", "queue", "priority"} & changed:
        return {}
    try:
        kind = get_kind(schedule.kind)
    except UnknownKind as error:
        return {"kind": [str(error)]}
    if not schedule.is_system:  # built-in ones run the platform's own kinds
        refused = tenant_option_errors(
            kind, role=None, queue=schedule.queue, priority=schedule.priority
        )
        if refused:
            return dict(refused)
    try:
        schedule.payload = kind.validate(schedule.payload)
    except serializers.ValidationError as error:
        # A kind refuses a non-object payload as {"payload": [...]}: do not nest it twice.
        detail: Any = error.detail
        return {"payload": detail.get("payload", detail) if isinstance(detail, dict) else detail}
    if _contains_nul(schedule.payload):
        return {"payload": ["Text in the payload cannot contain NUL (\\u0000) characters."]}
    return {}


def _contains_nul(value: Any) -> bool:
    """PostgreSQL's jsonb refuses NUL characters: find them before the database does."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


def _name_taken(schedule: Schedule) -> bool:
    same_name = Schedule.objects.for_tenant(schedule.tenant).filter(name=schedule.name)
    return bool(schedule.name) and same_name.exclude(pk=schedule.pk).exists()


def _settle(schedule: Schedule, *, changed: set[str] | None, now: datetime) -> None:
    """Check the schedule, fix where an interval counts from, and set its next run."""
    check_schedule(schedule, changed=changed, now=now)
    if schedule.interval_seconds and schedule.starts_at is None:
        schedule.starts_at = now
    schedule.next_run_at = _next_run(schedule, now) if schedule.enabled else None


def _next_run(schedule: Schedule, after: datetime) -> datetime | None:
    try:
        return next_run_after(schedule, after)
    except (ValueError, DjangoValidationError) as error:
        # Only a row written around the checks gets here; it must not stop the scheduler.
        logger.error(
            "schedule=%s tenant=%s has no next run: %s", schedule.pk, schedule.tenant_id, error
        )
        return None


# --- Writes -----------------------------------------------------------------------------------


@transaction.atomic
def create_schedule(*, tenant: Tenant, by: Actor = None, **fields: Any) -> Schedule:
    """Check and save a new schedule; its next run is known at once."""
    _check_names(fields)
    schedule = Schedule(tenant=tenant, **fields)
    _settle(schedule, changed=None, now=timezone.now())
    _save(schedule, force_insert=True)
    logger.info(
        "schedule=%s tenant=%s created by %s: %s", schedule.pk, tenant.pk, by, schedule.trigger
    )
    return schedule


@transaction.atomic
def update_schedule(schedule: Schedule, *, by: Actor = None, **changes: Any) -> Schedule:
    """Change a schedule; its next run is recomputed at once, so the next tick follows it."""
    _check_names(changes)
    locked, now = _lock(schedule), timezone.now()
    was_due = locked.next_run_at if locked.next_run_at and locked.next_run_at <= now else None
    changed = {name for name, value in changes.items() if getattr(locked, name) != value}
    for name, value in changes.items():
        setattr(locked, name, value)
    _settle(locked, changed=changed, now=now)
    if locked.enabled and was_due is not None:
        locked.next_run_at = was_due  # due before the edit, not yet run: the next tick runs it
    fields = {*changes, "cron", "payload", "starts_at", "next_run_at", "updated_at"}
    _save(locked, update_fields=sorted(fields))
    logger.info(
        "schedule=%s tenant=%s changed by %s: %s", locked.pk, locked.tenant_id, by, sorted(changed)
    )
    return locked


def enable_schedule(schedule: Schedule, *, by: Actor = None) -> Schedule:
    """Turn the schedule on; its next run is counted from now."""
    return update_schedule(schedule, by=by, enabled=True)


def disable_schedule(schedule: Schedule, *, by: Actor = None) -> Schedule:
    """Turn the schedule off: it has no next run until it is enabled again."""
    return update_schedule(schedule, by=by, enabled=False)


@transaction.atomic
def run_schedule_now(schedule: Schedule, *, by: Actor = None) -> Job:
    """Enqueue one job of the schedule now, counted as a run; planned runs stay as they are."""
    locked = _lock(schedule)
    try:
        job = _enqueue(locked, by=by, idempotency_key="")
    except UnknownKind as error:
        raise ScheduleError(f"Schedule {locked.name!r} cannot run: {error}") from None
    locked.save(update_fields=_note_run(locked, job, now=timezone.now()))
    logger.info(
        "schedule=%s tenant=%s run by hand by %s: job=%s", locked.pk, locked.tenant_id, by, job.pk
    )
    return job


@transaction.atomic
def delete_schedule(schedule: Schedule, *, by: Actor = None) -> None:
    """Delete the schedule; its jobs stay, without it. Built-in schedules are refused."""
    if schedule.is_system:
        raise ScheduleError(f"{schedule.name!r} is built in: disable it instead of deleting it.")
    Schedule.objects.filter(pk=schedule.pk).delete()
    logger.info("schedule=%s tenant=%s deleted by %s", schedule.pk, schedule.tenant_id, by)


def _check_names(fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise TypeError(f"Not editable on a schedule: {', '.join(unknown)}.")


def _lock(schedule: Schedule) -> Schedule:
    return (
        Schedule.objects.select_for_update(of=("self",))
        .select_related("tenant")
        .get(pk=schedule.pk)
    )


def _save(schedule: Schedule, **options: Any) -> None:
    try:
        with transaction.atomic():
            schedule.save(**options)
    except IntegrityError as error:
        # Lost a race with another edit to the same name, or to a built-in schedule's kind.
        raise serializers.ValidationError(
            {"name": [f"This tenant already has a schedule named {schedule.name!r}."]}
        ) from error


def _enqueue(schedule: Schedule, *, by: Actor = None, idempotency_key: str) -> Job:
    if not schedule.is_system:  # a row written before kinds were fenced runs no internal kind
        refused = tenant_option_errors(
            get_kind(schedule.kind), role=None, queue=schedule.queue, priority=schedule.priority
        )
        if refused:
            raise ScheduleError(f"Schedule {schedule.name!r} cannot run: {_error_text(refused)}")
    return enqueue_job(
        tenant=schedule.tenant,
        kind=schedule.kind,
        payload=schedule.payload,
        by=by,
        priority=schedule.priority or Priority.NORMAL,
        queue=schedule.queue or None,
        idempotency_key=idempotency_key,
        schedule=schedule,
    )


def _error_text(errors: dict[str, list[str]]) -> str:
    return " ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())


def _note_run(schedule: Schedule, job: Job, *, now: datetime) -> list[str]:
    """Count `job` as the schedule's latest run; returns the fields to save."""
    schedule.last_run_at, schedule.last_job = now, job
    schedule.run_count += 1
    return ["last_run_at", "last_job", "run_count"]


# --- The scheduler's tick ---------------------------------------------------------------------


def run_due_schedules(now: datetime | None = None, limit: int = 100) -> int:
    """Enqueue each due run exactly once, even with several schedulers; returns jobs enqueued.

    Rows another scheduler holds are skipped, not waited for; it is handling them.
    """
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Schedule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant")
            .filter(enabled=True, next_run_at__lte=now)
            .order_by("next_run_at")[:limit]
        )
        return sum(_run_due(schedule, now=now) for schedule in due)


def _run_due(schedule: Schedule, *, now: datetime) -> int:
    planned = schedule.next_run_at
    assert planned is not None
    job = None
    if not _skips(schedule, planned=planned, now=now):
        job = _enqueue_planned(schedule, planned)
    fields = _note_run(schedule, job, now=now) if job is not None else []
    # From now, not from `planned`: after downtime, the missed runs are behind us.
    schedule.next_run_at = _next_run(schedule, now)
    schedule.save(update_fields=[*fields, "next_run_at"])
    return 0 if job is None else 1


def _skips(schedule: Schedule, *, planned: datetime, now: datetime) -> bool:
    """Whether a policy skips this run; says why in the log."""
    where = f"schedule={schedule.pk} tenant={schedule.tenant_id}"
    if now - planned > MISSED_AFTER and schedule.missed_run_policy == Schedule.MissedRunPolicy.SKIP:
        logger.info(
            "%s skipped the run missed at %s (missed-run policy skip)", where, planned.isoformat()
        )
        return True
    if schedule.overlap_policy == Schedule.OverlapPolicy.SKIP and _previous_run_active(schedule):
        logger.info(
            "%s skipped the run of %s: its previous job is still active", where, planned.isoformat()
        )
        return True
    return False


def _previous_run_active(schedule: Schedule) -> bool:
    jobs = Job.objects.for_tenant(schedule.tenant).filter(schedule=schedule)
    return jobs.filter(status__in=Job.ACTIVE).exists()


def _enqueue_planned(schedule: Schedule, planned: datetime) -> Job | None:
    """The job of the run planned at `planned`, or None (logged) when it cannot be enqueued."""
    key = f"schedule:{schedule.pk}:{planned.astimezone(UTC).isoformat()}"
    try:
        job = _enqueue(schedule, idempotency_key=key)
    except (UnknownKind, DomainError, serializers.ValidationError) as error:
        logger.warning(
            "schedule=%s tenant=%s skipped the run of %s: %s",
            schedule.pk,
            schedule.tenant_id,
            planned.isoformat(),
            error,
        )
        return None
    logger.info(
        "schedule=%s tenant=%s enqueued job=%s kind=%s planned for %s",
        schedule.pk,
        schedule.tenant_id,
        job.pk,
        job.kind,
        planned.isoformat(),
    )
    return job


# --- Built-in schedules -----------------------------------------------------------------------


def ensure_system_schedules() -> list[Schedule]:
    """Create the `system` tenant and the built-in schedules where missing; returns them."""
    tenant, _ = Tenant.objects.get_or_create(slug=SYSTEM_TENANT_SLUG, defaults={"name": "System"})
    if not tenant.is_active:
        logger.warning("tenant=%s is inactive: the built-in schedules cannot enqueue", tenant.pk)
    existing = set(
        Schedule.objects.for_tenant(tenant).filter(is_system=True).values_list("kind", flat=True)
    )
    for built_in in SYSTEM_SCHEDULES:
        if built_in.kind not in existing:
            _create_built_in(tenant, built_in)
    return list(Schedule.objects.for_tenant(tenant).filter(is_system=True))


def _create_built_in(tenant: Tenant, built_in: BuiltIn) -> None:
    # Not checked against the registry: its kind may arrive in a later release.
    schedule = Schedule(
        tenant=tenant,
        name=built_in.name,
        kind=built_in.kind,
        cron=built_in.cron,
        missed_run_policy=built_in.missed_run_policy,
        is_system=True,
    )
    schedule.next_run_at = next_run_after(schedule, timezone.now())
    try:
        with transaction.atomic():
            schedule.save(force_insert=True)
    except IntegrityError:
        return  # another scheduler starting at the same moment made it
    logger.info(
        "schedule=%s tenant=%s built in: %s, %s",
        schedule.pk,
        tenant.pk,
        schedule.name,
        schedule.trigger,
    )
