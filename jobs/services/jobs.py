"""Every write to jobs: enqueue, cancel, retry, follow-ups, queue operations."""

import contextlib
import logging
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Count, F, QuerySet
from django.db.models.base import ModelState
from django.utils import timezone
from rest_framework import serializers

from jobs import tracing
from jobs.errors import BacklogFull, InvalidTransition, Throttled, UnknownKind, UnknownQueue
from jobs.kinds import JobKind, get_kind, rerun_refusal
from jobs.models import Batch, Job, JobLog, Priority, Schedule
from jobs.services import inserts
from jobs.signals import job_finished, jobs_finished
from jobs.transport import queueing
from tenants.models import Tenant
from tenants.selectors import get_role
from tenants.users import Actor, acting_user

logger = logging.getLogger(__name__)


def add_log(
    job: Job,
    event: str,
    message: str = "",
    *,
    level: str = JobLog.Level.INFO,
    data: dict[str, Any] | None = None,
    by: Actor = None,
) -> JobLog:
    """Append a line to the job's log."""
    data = {**(data or {}), **_log_data(by)}
    return JobLog.objects.create(
        job=job, tenant_id=job.tenant_id, event=event, message=message, level=level, data=data
    )


def add_logs(jobs: list[Job], event: str, message: str) -> None:
    """Append the same line to each job's log, in one statement."""
    inserts.log_many(jobs, event, message, {}, at=timezone.now())


def check_queue(name: str) -> str:
    if name not in settings.CONVEYOR_QUEUES:
        known = ", ".join(settings.CONVEYOR_QUEUES)
        raise UnknownQueue(f"There is no queue {name!r}; the queues are {known}.")
    return name


def _build_job(
    *,
    tenant: Tenant,
    kind: JobKind,
    payload: dict[str, Any],
    by: Actor,
    priority: str | None,
    queue: str | None,
    run_at: datetime | None,
    timeout: int | None,
    max_attempts: int | None,
    idempotency_key: str,
    batch: Batch | None,
    parent: Job | None,
) -> Job:
    priority = priority or kind.priority
    if priority not in Priority.values:
        raise serializers.ValidationError(
            {"priority": [f"Choose one of {', '.join(Priority.values)}."]}
        )
    queue = check_queue(queue or kind.queue)
    # The call's own choice, else the tenant's for the queue, else the kind's, else the queue's.
    return Job(
        tenant=tenant,
        kind=kind.name,
        queue=queue,
        priority=priority,
        payload=kind.validate(payload),
        timeout=timeout or tenant.queue_default(queue, "timeout") or kind.default_timeout,
        max_attempts=max_attempts
        or tenant.queue_default(queue, "max_attempts")
        or kind.default_max_attempts,
        idempotency_key=idempotency_key,
        scheduled_at=run_at,
        created_by=acting_user(by),
        batch=batch,
        parent=parent,
        trace_context=tracing.carrier(),
    )


def _due(delay: float | timedelta | None, run_at: datetime | None) -> datetime | None:
    if run_at is not None:
        if timezone.is_naive(run_at):
            raise serializers.ValidationError({"run_at": ["Give the time with its time zone."]})
        return run_at
    if delay:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        return timezone.now() + timedelta(seconds=seconds)
    return None


def _check_tenant(tenant: Tenant) -> None:
    if not tenant.is_active:
        raise InvalidTransition(f"Tenant {tenant.slug!r} is inactive: it cannot enqueue jobs.")


@tracing.enqueue_span
def enqueue_job(
    *,
    tenant: Tenant,
    kind: str | JobKind,
    payload: dict[str, Any],
    by: Actor = None,
    priority: str | None = None,
    queue: str | None = None,
    delay: float | timedelta | None = None,
    run_at: datetime | None = None,
    timeout: int | None = None,
    max_attempts: int | None = None,
    idempotency_key: str = "",
    depends_on: Sequence[Job] = (),
    batch: Batch | None = None,
    parent: Job | None = None,
    schedule: Schedule | None = None,
    unique_for: timedelta | None = None,
    debounce: timedelta | None = None,
    throttle: timedelta | None = None,
) -> Job:
    """Record a job and hand it to Redis after commit; an active job with the same key wins.

    With an idempotency key, one window (or the kind's) widens what "the same" means:
    `unique_for` returns the key's job created within the window, even after it finished;
    `debounce` delays the job by the window, and an enqueue within it replaces the waiting
    job's payload and starts the delay again; `throttle` refuses (`Throttled`) a second job
    with the key within the window. `priority` defaults to the kind's (transactional kinds high,
    bulk ones low).
    """
    _check_tenant(tenant)
    kind = get_kind(kind) if isinstance(kind, str) else kind
    window = _window(kind, idempotency_key, unique_for, debounce, throttle)
    with transaction.atomic() if window else contextlib.nullcontext():
        if window is not None:
            mode, length = window
            _lock_key(tenant, kind, idempotency_key)
            found = _within_window(tenant, kind, idempotency_key, mode, length, payload, by)
            if found is not None:
                return found
            if mode == DEBOUNCE:
                delay, run_at = length, None
        return _enqueue_one(
            tenant=tenant,
            kind=kind,
            payload=payload,
            by=by,
            priority=priority,
            queue=queue,
            run_at=_due(delay, run_at),
            timeout=timeout,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            depends_on=depends_on,
            batch=batch,
            parent=parent,
            schedule=schedule,
        )


def _enqueue_one(
    *,
    tenant: Tenant,
    kind: JobKind,
    payload: dict[str, Any],
    by: Actor,
    priority: str | None,
    queue: str | None,
    run_at: datetime | None,
    timeout: int | None,
    max_attempts: int | None,
    idempotency_key: str,
    depends_on: Sequence[Job],
    batch: Batch | None,
    parent: Job | None,
    schedule: Schedule | None,
) -> Job:
    job = _build_job(
        tenant=tenant,
        kind=kind,
        payload=payload,
        by=by,
        priority=priority,
        queue=queue,
        run_at=run_at,
        timeout=timeout,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        batch=batch,
        parent=parent,
    )
    job.schedule = schedule
    parents = _check_parents(tenant, depends_on)
    if parents:
        job.status = Job.Status.DEFERRED  # handed over once its parents succeed
    else:
        queueing.mark_for_handover(job, timezone.now())
    capped = job.queue in tenant.backlog_caps
    if capped or parents or batch is not None or transaction.get_connection().in_atomic_block:
        saved = _insert_in_transaction(job, kind=kind, by=by, parents=parents, batch=batch)
    else:
        saved = _insert_alone(job, kind=kind, by=by)
    if saved is not job:
        return saved  # an active job holds the idempotency key
    if not parents:
        queueing.push_on_commit([job])
    return job


UNIQUE_FOR, DEBOUNCE, THROTTLE = "unique_for", "debounce", "throttle"


def _window(
    kind: JobKind,
    key: str,
    unique_for: timedelta | None,
    debounce: timedelta | None,
    throttle: timedelta | None,
) -> tuple[str, timedelta] | None:
    """The one window that applies (the call's, else the kind's), or None."""
    given = {UNIQUE_FOR: unique_for, DEBOUNCE: debounce, THROTTLE: throttle}
    chosen = {mode: length for mode, length in given.items() if length is not None}
    if not chosen:
        defaults = {UNIQUE_FOR: kind.unique_for, DEBOUNCE: kind.debounce, THROTTLE: kind.throttle}
        chosen = {mode: length for mode, length in defaults.items() if length is not None}
    if not chosen:
        return None
    if len(chosen) > 1:
        raise serializers.ValidationError(
            {"unique_for": ["Choose one of unique_for, debounce and throttle."]}
        )
    ((mode, length),) = chosen.items()
    if length.total_seconds() <= 0:
        raise serializers.ValidationError({mode: ["The window must be longer than zero."]})
    if not key:
        raise serializers.ValidationError(
            {"idempotency_key": [f"{mode} needs an idempotency key: the key names the window."]}
        )
    return mode, length


def _lock_key(tenant: Tenant, kind: JobKind, key: str) -> None:
    """One enqueue at a time per tenant, kind and key, until the transaction ends."""
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"conveyor-key:{tenant.pk}:{kind.name}:{key}"],
        )


def _within_window(
    tenant: Tenant,
    kind: JobKind,
    key: str,
    mode: str,
    length: timedelta,
    payload: dict[str, Any],
    by: Actor,
) -> Job | None:
    """The job that answers this enqueue under the window's rule, or None to make a new one."""
    now = timezone.now()
    same = Job.objects.filter(tenant=tenant, kind=kind.name, idempotency_key=key)
    if mode == DEBOUNCE:
        waiting = same.select_for_update().filter(status=Job.Status.SCHEDULED).first()
        if waiting is None:
            return None
        waiting.payload = kind.validate(payload)
        waiting.scheduled_at = now + length
        waiting.save(update_fields=["payload", "scheduled_at"])
        seconds = round(length.total_seconds())
        message = f"Debounced: new payload, due in {seconds} s."
        add_log(waiting, JobLog.Event.REQUEUED, message, by=by)
        queueing.push_on_commit([waiting])  # the same RQ job, rescheduled at the new time
        return waiting
    latest = same.filter(created_at__gt=now - length).order_by("-created_at").first()
    if latest is None:
        return None
    if mode == THROTTLE:
        wait = (latest.created_at + length - now).total_seconds()
        raise Throttled(
            f"At most one {kind.name} job with key {key!r} per {_seconds(length)}: "
            f"the last was created at {latest.created_at.isoformat()}; "
            f"try again in {math.ceil(wait)} s.",
            retry_after=wait,
        )
    return latest  # unique_for: the key's job within the window, whatever its state


def _seconds(length: timedelta) -> str:
    return f"{length.total_seconds():g} s"


def _insert_alone(job: Job, *, kind: JobKind, by: Actor) -> Job:
    """Outside any transaction the row and its log line are one statement, its own commit."""
    message = _enqueued_message(job)
    durable = settings.CONVEYOR_DURABLE_ENQUEUE
    if not inserts.insert_job(job, message=message, data=_log_data(by), durable=durable):
        return _active_job(job.tenant, kind, job.idempotency_key)
    return job


def _active_job(tenant: Tenant, kind: JobKind, idempotency_key: str) -> Job:
    return Job.objects.get(
        tenant=tenant, kind=kind.name, idempotency_key=idempotency_key, status__in=Job.ACTIVE
    )


def _log_data(by: Actor) -> dict[str, Any]:
    user = acting_user(by)
    return {"by": user.get_username()} if user is not None else {}


@transaction.atomic
def _insert_in_transaction(
    job: Job, *, kind: JobKind, by: Actor, parents: list[Job], batch: Batch | None
) -> Job:
    idempotency_key = job.idempotency_key
    tenant = job.tenant
    check_backlog(tenant, job.queue, adding=1)
    if not idempotency_key:
        job.save(force_insert=True)  # no savepoint: an error here rolls everything back anyway
    else:
        try:
            with transaction.atomic():
                job.save(force_insert=True)
        except IntegrityError:
            return _active_job(tenant, kind, idempotency_key)
    if batch is not None:
        Batch.objects.filter(pk=batch.pk).update(total=F("total") + 1)
        batch.total += 1
    add_log(job, JobLog.Event.ENQUEUED, _enqueued_message(job), by=by)
    if parents:
        job.depends_on.set(parents)
        Job.objects.filter(pk__in=[parent.pk for parent in parents]).update(has_dependents=True)
        release_if_ready(job)
    return job


# What a refused enqueue is told to wait: a backlog drains at the pace of its workers.
BACKLOG_RETRY_AFTER = 30


def check_backlog(tenant: Tenant, queue: str, *, adding: int) -> None:
    """Refuse (BacklogFull) when `adding` more jobs would pass the tenant's cap on `queue`.

    Inside the caller's transaction: a lock per tenant and queue, held to its commit, makes
    concurrent enqueues count one after another.
    """
    cap = tenant.backlog_caps.get(queue)
    if cap is None:
        return
    with transaction.get_connection().cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [tenant.pk, queue])
    waiting = Job.objects.filter(tenant=tenant, queue=queue, status__in=Job.WAITING).count()
    if waiting + adding > cap:
        raise BacklogFull(
            f"Tenant {tenant.slug!r} may have at most {cap} job(s) waiting on {queue}; "
            f"{waiting} wait already and this adds {adding}. Nothing was enqueued.",
            retry_after=BACKLOG_RETRY_AFTER,
        )


def _enqueued_message(job: Job) -> str:
    where = f"on {job.queue} ({job.priority})"
    if job.status == Job.Status.DEFERRED:
        return f"Enqueued {where}, waiting for the jobs it depends on."
    if job.scheduled_at:
        return f"Enqueued {where} to run at {job.scheduled_at.isoformat()}."
    return f"Enqueued {where}."


def _check_parents(tenant: Tenant, depends_on: Sequence[Job]) -> list[Job]:
    parents = list(depends_on)
    if any(parent.tenant_id != tenant.pk for parent in parents):
        raise serializers.ValidationError(
            {"depends_on": ["A job can only depend on its tenant's jobs."]}
        )
    return parents


@tracing.enqueue_span
@transaction.atomic
def enqueue_jobs(
    *,
    tenant: Tenant,
    kind: str | JobKind,
    payloads: Iterable[dict[str, Any]],
    by: Actor = None,
    priority: str | None = None,
    queue: str | None = None,
    delay: float | timedelta | None = None,
    batch: Batch | None = None,
    parent: Job | None = None,
    idempotency_keys: Sequence[str] = (),
) -> list[Job]:
    """Record many jobs of one kind in one transaction and hand them over in one pipeline.

    `idempotency_keys`, if given, has one key per payload; the keys must not be held by active
    jobs (the insert fails as a whole if one is).
    """
    _check_tenant(tenant)
    kind = get_kind(kind) if isinstance(kind, str) else kind
    run_at = _due(delay, None)
    jobs: list[Job] = []
    errors = {}
    first: Job | None = None
    for index, payload in enumerate(payloads):
        try:
            if first is None:
                first = _build_job(
                    tenant=tenant,
                    kind=kind,
                    payload=payload,
                    by=by,
                    priority=priority,
                    queue=queue,
                    run_at=run_at,
                    timeout=None,
                    max_attempts=None,
                    idempotency_key="",
                    batch=batch,
                    parent=parent,
                )
                queueing.mark_for_handover(first, timezone.now())
                jobs.append(first)
            else:
                jobs.append(_like(first, payload=kind.validate(payload)))
        except serializers.ValidationError as error:
            errors[str(index)] = error.detail
    if errors:
        raise serializers.ValidationError({"payloads": errors})
    for job, key in zip(jobs, idempotency_keys, strict=False):
        job.idempotency_key = key
    if jobs:
        check_backlog(tenant, jobs[0].queue, adding=len(jobs))  # all or nothing
    inserts.copy_jobs(jobs)
    message = _enqueued_message(jobs[0]) if jobs else ""
    inserts.log_many(jobs, JobLog.Event.ENQUEUED, message, _log_data(by))
    if batch is not None and jobs:
        Batch.objects.filter(pk=batch.pk).update(total=F("total") + len(jobs))
        batch.total += len(jobs)
    queueing.push_on_commit(jobs)
    return jobs


def _like(job: Job, *, payload: dict[str, Any]) -> Job:
    """Another new job like `job` (a copy is much cheaper than building a model instance)."""
    twin = Job.__new__(Job)
    twin.__dict__.update(job.__dict__)
    twin._state = state = ModelState()
    state.adding, state.db = job._state.adding, job._state.db
    state.fields_cache = dict(job._state.fields_cache)
    twin.pk = uuid.uuid4()
    twin.payload = payload
    return twin


@transaction.atomic
def create_batch(
    *,
    tenant: Tenant,
    callback_kind: str = "",
    callback_payload: dict[str, Any] | None = None,
    description: str = "",
) -> Batch:
    """Open a batch; add members in the same transaction with `batch=`."""
    if callback_kind:
        get_kind(callback_kind)
    return Batch.objects.create(
        tenant=tenant,
        callback_kind=callback_kind,
        callback_payload=callback_payload or {},
        description=description,
    )


def cancel_batch(batch: Batch, *, by: Actor = None) -> dict[str, int]:
    """Cancel every member of `batch` that has not ended; the callback still runs once all end."""
    return cancel_jobs(Job.objects.filter(batch=batch, tenant_id=batch.tenant_id), by=by)


def announce_end(job: Job) -> None:
    """Tell the job's kind (its `on_end`) and every `job_finished` and `jobs_finished` receiver
    that it ended.

    Called once its outcome is committed: by the runner, and after a waiting job's cancel.
    A hook's error is logged; it cannot undo the outcome.
    """
    announce_ends([job])


def announce_ends(jobs: list[Job]) -> None:
    """`announce_end` for jobs whose outcomes were committed together: each one's `on_end` and
    `job_finished`, then one `jobs_finished` with them all."""
    for job in jobs:
        try:
            on_end = get_kind(job.kind).on_end
        except UnknownKind:
            on_end = None
        if on_end is not None:
            try:
                on_end(job)
            except Exception:
                logger.exception(
                    "job=%s tenant=%s: on_end of %s failed", job.pk, job.tenant_id, job.kind
                )
        job_finished.send_robust(sender=Job, job=job)
    if jobs:
        jobs_finished.send_robust(sender=Job, jobs=jobs)


def settle_followers(job: Job) -> None:
    """After `job` ended: release or cancel the jobs that depend on it and close its batch."""
    dependents = Job.objects.none()
    if job.has_dependents or Job.objects.filter(pk=job.pk, has_dependents=True).exists():
        dependents = Job.objects.select_for_update().filter(
            depends_on=job, status=Job.Status.DEFERRED
        )
    for dependent in dependents:
        if job.status == Job.Status.SUCCEEDED:
            release_if_ready(dependent)
        else:
            cancel_waiting(dependent, f"Canceled: the job it depends on ({job.pk}) {job.status}.")
    if job.batch_id:
        _close_batch_if_done(job.batch_id)


def release_if_ready(job: Job) -> None:
    statuses = set(job.depends_on.values_list("status", flat=True))
    if statuses == {Job.Status.SUCCEEDED} or not statuses:
        queueing.mark_for_handover(job, timezone.now())
        Job.objects.filter(pk=job.pk, status=Job.Status.DEFERRED).update(
            status=job.status, enqueued_at=job.enqueued_at
        )
        add_log(job, JobLog.Event.REQUEUED, "The jobs it depends on succeeded.")
        queueing.push_on_commit([job])
        return
    ended = statuses & {Job.Status.FAILED, Job.Status.CANCELED}
    if ended:
        cancel_waiting(job, f"Canceled: a job it depends on {sorted(ended)[0]}.")


def _close_batch_if_done(batch_id: Any) -> None:
    # Locking the batch orders concurrent members: the last one to commit sees all ended.
    batch = Batch.objects.select_for_update().get(pk=batch_id)
    if batch.finished_at is not None:
        return
    counts = dict(
        Job.objects.filter(batch=batch).values_list("status").annotate(n=Count("pk")).order_by()
    )
    if any(counts.get(status) for status in Job.ACTIVE):
        return
    batch.finished_at = timezone.now()
    batch.save(update_fields=["finished_at"])
    if batch.callback_kind:
        tally = {str(status): counts.get(status, 0) for status in Job.FINISHED}
        batch.callback_job = enqueue_job(
            tenant=batch.tenant,
            kind=batch.callback_kind,
            payload={**batch.callback_payload, "batch_id": str(batch.pk), **tally},
            idempotency_key=f"batch:{batch.pk}",
        )
        batch.save(update_fields=["callback_job"])


def cancel_waiting(job: Job, reason: str, *, by: Actor = None) -> None:
    updated = Job.objects.filter(pk=job.pk, status__in=Job.WAITING).update(
        status=Job.Status.CANCELED, finished_at=timezone.now()
    )
    if not updated:
        return
    job.status = Job.Status.CANCELED
    add_log(job, JobLog.Event.CANCELED, reason, by=by)
    transaction.on_commit(lambda: queueing.withdraw(job))
    transaction.on_commit(lambda: announce_end(job))
    settle_followers(job)


@transaction.atomic
def cancel_job(job: Job, *, by: Actor = None) -> Job:
    """A waiting job never runs; a started one is told to stop. Repeating it changes nothing."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.status == Job.Status.CANCELED:
        return job
    if job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED):
        raise InvalidTransition(
            f"Job {job.pk} already {job.status}: only waiting or running jobs can be canceled."
        )
    if job.status == Job.Status.STARTED:
        if job.cancel_requested_at is None:
            job.cancel_requested_at = timezone.now()
            job.save(update_fields=["cancel_requested_at"])
            add_log(job, JobLog.Event.CANCEL_REQUESTED, "Cancel requested while running.", by=by)
        # Asking again sends the stop again, in case Redis missed it the first time.
        transaction.on_commit(lambda: queueing.request_stop(job))
        return job
    cancel_waiting(job, "Canceled before it ran.", by=by)
    job.refresh_from_db()
    return job


def check_rerun(job: Job, *, by: Actor) -> None:
    """Refuse (PermissionDenied) a tenant's member asking `job` to run again beyond what they may
    enqueue (`jobs.kinds.rerun_refusal`); the system itself (`by=None`) and operators may."""
    if by is None:
        return
    user = acting_user(by)
    if user is not None and user.is_superuser:
        return
    reason = rerun_refusal(job.kind, role=get_role(user, job.tenant) if user else None)
    if reason:
        raise PermissionDenied(reason)


@transaction.atomic
def retry_job(job: Job, *, by: Actor = None) -> Job:
    """Give a failed or canceled job a fresh set of attempts (`check_rerun` decides who may)."""
    check_rerun(job, by=by)
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.status not in Job.RETRYABLE:
        raise InvalidTransition(
            f"Job {job.pk} is {job.status}: only failed or canceled jobs can be retried."
        )
    job.attempt, job.progress, job.progress_message = 0, 0, ""
    job.finished_at = job.cancel_requested_at = job.scheduled_at = None
    queueing.mark_for_handover(job, timezone.now())
    try:
        with transaction.atomic():
            job.save(
                update_fields=[
                    "status",
                    "enqueued_at",
                    "attempt",
                    "progress",
                    "progress_message",
                    "finished_at",
                    "cancel_requested_at",
                    "scheduled_at",
                ]
            )
    except IntegrityError:
        raise InvalidTransition(
            f"Another active job holds idempotency key {job.idempotency_key!r}."
        ) from None
    add_log(job, JobLog.Event.REQUEUED, "Retried by hand with fresh attempts.", by=by)
    queueing.push_on_commit([job])
    return job


def cancel_jobs(jobs: QuerySet[Job], *, by: Actor = None) -> dict[str, int]:
    """Cancel every cancelable job of `jobs`; returns how many were canceled or asked to stop."""
    counts = {"canceled": 0, "cancel_requested": 0, "skipped": 0}
    for job in jobs.iterator(chunk_size=500):
        if job.status not in Job.CANCELABLE:
            counts["skipped"] += 1
            continue
        done = cancel_job(job, by=by)
        counts["canceled" if done.status == Job.Status.CANCELED else "cancel_requested"] += 1
    return counts


def retry_jobs(jobs: QuerySet[Job], *, by: Actor = None) -> dict[str, int]:
    """Retry every failed or canceled job of `jobs` that `by` may run again; returns how many were
    retried or skipped."""
    counts = {"retried": 0, "skipped": 0}
    for job in jobs.iterator(chunk_size=500):
        try:
            if job.status not in Job.RETRYABLE:
                raise InvalidTransition(job.status)
            retry_job(job, by=by)
            counts["retried"] += 1
        except (InvalidTransition, PermissionDenied):
            counts["skipped"] += 1
    return counts


def discard_jobs(
    jobs: QuerySet[Job], *, before_delete: Callable[[QuerySet[Job]], object] | None = None
) -> int:
    """Delete the failed jobs (dead letters) of `jobs` with their logs, 500 per transaction.

    `before_delete` sees each chunk inside its transaction, e.g. to record who deleted what.
    Returns how many were deleted; jobs in other statuses are left alone.
    """
    failed = jobs.filter(status=Job.Status.FAILED)
    discarded = 0
    while chunk := list(failed.values_list("pk", flat=True)[:500]):
        with transaction.atomic():
            rows = Job.objects.filter(pk__in=chunk, status=Job.Status.FAILED)
            if before_delete is not None:
                before_delete(rows)
            discarded += rows.delete()[1].get("jobs.Job", 0)
    return discarded


@transaction.atomic
def retry_now(job: Job, *, by: Actor = None) -> Job:
    """Run a retrying or scheduled job now instead of at its due time (`check_rerun` decides
    who may)."""
    check_rerun(job, by=by)
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.status not in (Job.Status.RETRYING, Job.Status.SCHEDULED):
        raise InvalidTransition(
            f"Job {job.pk} is {job.status}: only retrying or scheduled jobs can run now."
        )
    job.scheduled_at = None
    queueing.mark_for_handover(job, timezone.now())
    job.save(update_fields=["status", "scheduled_at", "enqueued_at"])
    add_log(job, JobLog.Event.REQUEUED, "Due time moved to now by hand.", by=by)
    # The RQ job waits in the scheduled registry: take it out so it is not delivered twice.
    transaction.on_commit(lambda: queueing.withdraw(job))
    queueing.push_on_commit([job])
    return job
