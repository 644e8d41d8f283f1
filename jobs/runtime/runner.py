"""The one entry point that runs a job: claim the row, run its kind, record what happened.

Every RQ job Conveyor enqueues calls `execute(job_id)`. The row is claimed under a row lock,
so a second delivery of the same job finds it taken and does nothing. A claim takes a new
lease (`Job.lease`, a fencing token); every later write of the attempt — progress, log lines,
the outcome, a retry — matches it, so once the attempt is rescued nothing it writes lands.
"""

import functools
import json
import logging
import math
import random
import socket
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from jobs import tracing
from jobs.errors import (
    JobCanceled,
    JobTimedOut,
    LeaseLost,
    PermanentError,
    RetryableError,
    Snooze,
    UnknownKind,
)
from jobs.kinds import JobKind, get_kind
from jobs.log_context import job_logging, set_job_attempt
from jobs.models import Job, JobLog
from jobs.runtime.context import JobContext
from jobs.services import jobs as services
from jobs.transport import limits, queueing
from tenants.models import Tenant

logger = logging.getLogger(__name__)

RECORD_RETRY_WAITS = (1, 2, 4, 8, 15, 30)


def execute(
    job_id: str,
    kind_name: str | None = None,
    tenant_id: int | None = None,
    *,
    record_success: "Callable[[Job, Any], None] | None" = None,
) -> Any:
    """Run one delivery of the job; returns an RQ retry request when it must run again later,
    or the Hold of a job its tenant's limits keep from starting now (the worker sets it aside).

    The RQ job carries the kind and tenant id beside the job id, so limits are checked and the
    row claimed without reading it first. `record_success(job, result)` records a success in
    place of the runner (the concurrent worker's batch completer, `record_successes`).
    """
    if kind_name is None or tenant_id is None:
        found = Job.objects.filter(pk=job_id).values_list("kind", "tenant_id").first()
        if found is None:
            logger.info("job=%s skipped: gone", job_id)
            return None
        kind_name, tenant_id = found
    tenant = persisting(cached_tenant)(tenant_id)  # waits out a database restart, as claim does
    with job_logging(job_id, tenant.slug, kind_name):
        try:
            kind = get_kind(kind_name)
        except UnknownKind as error:
            if claimed := claim(job_id, tenant):
                _fail(claimed, error, permanent=True)
            return None
        return _deliver(job_id, tenant, kind, record_success or _succeed)


def _deliver(
    job_id: str, tenant: Tenant, kind: JobKind, record_success: Callable[[Job, Any], None]
) -> Any:
    hold = limits.acquire(tenant, kind, holder=job_id, ttl=kind.default_timeout + 60)
    if hold is not None:
        return _hold(job_id, hold)
    try:
        job = claim(job_id, tenant)
        if job is None:
            logger.info("job=%s skipped: not waiting to run", job_id)
            return None
        with tracing.attempt_span(job):
            return _run(job, kind, record_success)
    finally:
        limits.release(tenant, kind, holder=job_id)


def _hold(job_id: str, hold: limits.Hold) -> limits.Hold | None:
    """The worker sets a held job aside (no attempt, no log line); a job canceled meanwhile
    is simply dropped."""
    if not Job.objects.filter(pk=job_id, status__in=Job.RUNNABLE).exists():
        return None
    logger.debug("job=%s held: %s", job_id, hold.reason)
    return hold


_TENANTS: dict[int, tuple[float, Tenant]] = {}
TENANT_CACHE_SECONDS = 30.0


def cached_tenant(tenant_id: int) -> Tenant:
    """The tenant, read at most every 30 s per worker process (its limits may change)."""
    now = time.monotonic()
    cached = _TENANTS.get(tenant_id)
    if cached is None or now - cached[0] > TENANT_CACHE_SECONDS:
        cached = (now, Tenant.objects.get(pk=tenant_id))
        _TENANTS[tenant_id] = cached
    return cached[1]


def persisting[**P, R](record: Callable[P, R]) -> Callable[P, R]:
    """Retry a claim or an outcome while PostgreSQL is unreachable, for up to a minute.

    The connection is closed before each new try, so the worker reconnects once it is back.
    """

    @functools.wraps(record)
    def attempt(*args: P.args, **kwargs: P.kwargs) -> R:
        for wait in (*RECORD_RETRY_WAITS, None):
            try:
                return record(*args, **kwargs)
            except (OperationalError, InterfaceError) as error:
                if wait is None:
                    raise
                logger.warning("PostgreSQL unreachable (%s); again in %s s", error, wait)
                connection.close()
                time.sleep(wait)
        raise AssertionError("unreachable")

    return attempt


_JOB, _LOG = Job._meta.db_table, JobLog._meta.db_table

# A claim commits without waiting for the WAL to reach disk (set_config(..., true) lasts for
# this statement's own transaction): a crash that forgets it hands the job over again, and the
# outcome's durable commit flushes it anyway. Outcomes wait for the flush unless
# CONVEYOR_DURABLE_OUTCOMES is off; then a crash may forget the last few, and those jobs run
# once more.
_NO_FSYNC = "settings AS (SELECT set_config('synchronous_commit', 'off', true))"
_OUTCOME_COMMIT = "settings AS (SELECT set_config('synchronous_commit', %(commit)s, true))"


def lease_seconds() -> int:
    """How long a lease lasts unless renewed: the heartbeat interval and its grace."""
    return settings.CONVEYOR_HEARTBEAT_SECONDS + settings.CONVEYOR_HEARTBEAT_GRACE


def _outcome_commit() -> str:
    return "on" if settings.CONVEYOR_DURABLE_OUTCOMES else "off"


# One statement claims a waiting row with a new lease and logs it: no second delivery can claim
# it too, and no attempt begins past max_attempts.
_CLAIM_SQL = f"""
WITH {_NO_FSYNC}, claimed AS (
    UPDATE {_JOB} SET status = 'started', attempt = attempt + 1, started_at = %(now)s,
        worker_name = %(worker)s, lease = lease + 1, lease_expires_at = %(expires)s
    WHERE id = %(id)s AND status IN ('pending', 'queued', 'scheduled', 'retrying')
        AND attempt < max_attempts
    RETURNING *
), logged AS (
    INSERT INTO {_LOG} (job_id, tenant_id, created_at, level, event, message, data)
    SELECT id, tenant_id, %(now)s, 'info', 'started',
        'Attempt ' || attempt || ' of ' || max_attempts || ' started.',
        jsonb_build_object('attempt', attempt, 'worker', worker_name)
    FROM claimed
)
SELECT claimed.* FROM claimed, settings
"""

# One statement records success and its log line; it returns what the follow-ups need.
_SUCCEED_SQL = f"""
WITH {_OUTCOME_COMMIT}, done AS (
    UPDATE {_JOB} SET status = 'succeeded', finished_at = %(now)s, progress = 100,
        result = %(result)s::jsonb
    WHERE id = %(id)s AND status = 'started' AND lease = %(lease)s
    RETURNING id, tenant_id, has_dependents, batch_id
), logged AS (
    INSERT INTO {_LOG} (job_id, tenant_id, created_at, level, event, message, data)
    SELECT id, tenant_id, %(now)s, 'info', 'succeeded', 'Succeeded.', '{{}}'::jsonb FROM done
)
SELECT has_dependents, batch_id FROM done, settings
"""


@persisting
def claim(job_id: str, tenant: Tenant) -> Job | None:
    """Mark the job started (a new attempt) unless it is not waiting to run; log the start."""
    worker = queueing.current_worker_name() or socket.gethostname()
    now = timezone.now()
    expires = now + timedelta(seconds=lease_seconds())
    params = {"id": job_id, "now": now, "worker": worker, "expires": expires}
    job = next(iter(Job.objects.raw(_CLAIM_SQL, params)), None)
    if job is None:
        _fail_exhausted(job_id)
        return None
    set_job_attempt(job.attempt)
    job.tenant = tenant
    logger.debug("job=%s kind=%s started attempt %s", job.pk, job.kind, job.attempt)
    return job


def renew_lease(job_id: str, *, worker: str) -> bool:
    """Extend the lease of the attempt `worker` runs; False when that attempt no longer holds it."""
    expires = timezone.now() + timedelta(seconds=lease_seconds())
    rows = Job.objects.filter(pk=job_id, status=Job.Status.STARTED, worker_name=worker)
    try:
        return bool(rows.update(lease_expires_at=expires))
    except (OperationalError, InterfaceError):
        connection.close()  # this thread's connection: the next renewal opens a new one
        raise


def _fail_exhausted(job_id: str) -> None:
    """A waiting job with no attempts left (a delivery raced a rescue) fails instead of running."""
    with transaction.atomic():
        job = (
            Job.objects.select_for_update()
            .filter(pk=job_id, status__in=Job.RUNNABLE, attempt__gte=F("max_attempts"))
            .first()
        )
        if job is None:
            return
        job.status, job.finished_at = Job.Status.FAILED, timezone.now()
        job.error_type, job.error_message = "AttemptsExhausted", "No attempts left."
        job.save(update_fields=["status", "finished_at", "error_type", "error_message"])
        services.add_log(
            job,
            JobLog.Event.DEAD_LETTERED,
            f"Dead-lettered: all {job.max_attempts} attempts were used.",
            level=JobLog.Level.ERROR,
        )
        services.settle_followers(job)
    logger.warning("job=%s tenant=%s failed: no attempts left", job.pk, job.tenant_id)
    services.announce_end(job)


def _run(job: Job, kind: JobKind, record_success: Callable[[Job, Any], None]) -> Any:
    ctx = JobContext(job)
    try:
        result = kind.func(ctx, **job.payload)
    except LeaseLost:
        logger.warning("job=%s attempt %s stopped: its lease was taken over", job.pk, job.attempt)
    except JobCanceled as stop:
        _cancel(job, str(stop))
    except Snooze as snooze:
        if job.snoozes < kind.snooze_limit:
            return _snooze(job, snooze.seconds)
        if job.attempt < job.max_attempts:  # past the limit, a snooze uses up its attempt
            return _retry(job, snooze, delay=snooze.seconds)
        _fail(job, RetryableError(f"{snooze}, after {job.snoozes} snoozes and every attempt"))
    except PermanentError as error:
        _fail(job, error, permanent=True)
    except (Exception, JobTimedOut) as error:
        if queueing.is_cancel_requested(job):
            _cancel(job, f"stopped by an error after the cancel request: {error}")
        elif job.attempt < job.max_attempts:
            return _retry(job, error, delay=backoff(kind, job.attempt, error))
        else:
            _fail(job, error)
    else:
        record_success(job, result)
    return None


def backoff(kind: JobKind, attempt: int, error: BaseException | None = None) -> float:
    """Seconds before the next attempt: the error's own delay, else the kind's backoff style."""
    if isinstance(error, RetryableError) and error.delay is not None:
        return min(error.delay, kind.max_delay)
    return kind.delay_before(attempt, lambda ceiling: random.uniform(0, ceiling))


def _error_fields(error: BaseException) -> dict[str, str]:
    return {
        "error_type": type(error).__name__,
        "error_message": str(error)[:5000],
        "error_traceback": "".join(traceback.format_exception(error))[-20000:],
    }


def _holding(job: Job) -> Any:
    """The row while `job`'s attempt still holds its lease: the filter every write goes through."""
    return Job.objects.filter(pk=job.pk, status=Job.Status.STARTED, lease=job.lease)


def _durable_outcome() -> None:
    """This transaction's commit waits for the WAL flush unless outcomes are set to be fast."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('synchronous_commit', %s, true)", [_outcome_commit()])


def _finish(job: Job, status: str, **fields: Any) -> bool:
    """Move a started job to its outcome; False when something else settled it first."""
    now = timezone.now()
    _durable_outcome()
    updated = _holding(job).update(status=status, finished_at=now, **fields)
    job.status, job.finished_at = status, now
    for name, value in fields.items():
        setattr(job, name, value)
    return bool(updated)


# Many successes in one statement (the concurrent worker's batch completer), as _SUCCEED_SQL.
_SUCCEED_MANY_SQL = f"""
WITH {_OUTCOME_COMMIT}, outcome AS (
    SELECT * FROM unnest(
        %(ids)s::uuid[], %(leases)s::int[], %(ats)s::timestamptz[], %(results)s::jsonb[]
    ) AS outcome(id, lease, finished_at, result)
), done AS (
    UPDATE {_JOB} AS job SET status = 'succeeded', finished_at = outcome.finished_at,
        progress = 100, result = outcome.result
    FROM outcome
    WHERE job.id = outcome.id AND job.status = 'started' AND job.lease = outcome.lease
    RETURNING job.id, job.tenant_id, job.has_dependents, job.batch_id, job.finished_at
), logged AS (
    INSERT INTO {_LOG} (job_id, tenant_id, created_at, level, event, message, data)
    SELECT id, tenant_id, finished_at, 'info', 'succeeded', 'Succeeded.', '{{}}'::jsonb
    FROM done
)
SELECT id, has_dependents, batch_id FROM done, settings
"""


@persisting
def record_successes(successes: "list[tuple[Job, Any, datetime]]") -> None:
    """Record jobs that succeeded (each with its result and end) in one statement, then tell.

    A job settled meanwhile by something else (a rescue) is left as it is. Repeating the call
    records nothing twice: only `started` rows change.
    """
    params: dict[str, Any] = {
        "ids": [str(job.pk) for job, _, _ in successes],
        "leases": [job.lease for job, _, _ in successes],
        "commit": _outcome_commit(),
        "ats": [ended for _, _, ended in successes],
        "results": [
            json.dumps(_jsonable(result), cls=DjangoJSONEncoder) for _, result, _ in successes
        ],
    }
    with connection.cursor() as cursor:
        cursor.execute(_SUCCEED_MANY_SQL, params)
        recorded = {str(pk): (dependents, batch) for pk, dependents, batch in cursor.fetchall()}
    succeeded = []
    for job, _, ended in successes:
        if str(job.pk) not in recorded:
            continue
        job.status, job.finished_at, job.progress = Job.Status.SUCCEEDED, ended, 100
        job.has_dependents, job.batch_id = recorded[str(job.pk)]
        if job.has_dependents or job.batch_id:
            with transaction.atomic():
                services.settle_followers(job)
        succeeded.append(job)
    services.announce_ends(succeeded)


@persisting
def _succeed(job: Job, result: Any) -> None:
    now = timezone.now()
    stored = json.dumps(_jsonable(result), cls=DjangoJSONEncoder)
    with connection.cursor() as cursor:
        params: dict[str, Any] = {"id": job.pk, "lease": job.lease, "commit": _outcome_commit()}
        cursor.execute(_SUCCEED_SQL, {**params, "now": now, "result": stored})
        row = cursor.fetchone()
    if row is None:
        return
    job.status, job.finished_at, job.progress = Job.Status.SUCCEEDED, now, 100
    job.has_dependents, job.batch_id = row
    if job.has_dependents or job.batch_id:
        with transaction.atomic():
            services.settle_followers(job)
    logger.debug("job=%s succeeded", job.pk)
    services.announce_end(job)


@persisting
def _cancel(job: Job, how_far: str) -> None:
    with transaction.atomic():
        if not _finish(job, Job.Status.CANCELED):
            return
        services.add_log(job, JobLog.Event.CANCELED, f"Canceled while running; {how_far}.")
        services.settle_followers(job)
    queueing.clear_cancel_flag(job)
    logger.info("job=%s tenant=%s canceled: %s", job.pk, job.tenant_id, how_far)
    services.announce_end(job)


@persisting
def _fail(job: Job, error: BaseException, *, permanent: bool = False) -> None:
    fields = _error_fields(error)
    why = "a permanent error" if permanent else f"attempt {job.attempt} of {job.max_attempts}"
    with transaction.atomic():
        if not _finish(job, Job.Status.FAILED, **fields):
            return
        services.add_log(
            job,
            JobLog.Event.FAILED,
            f"{fields['error_type']}: {fields['error_message']}",
            level=JobLog.Level.ERROR,
            data={"attempt": job.attempt, "traceback": fields["error_traceback"]},
        )
        services.add_log(job, JobLog.Event.DEAD_LETTERED, f"Dead-lettered after {why}.")
        services.settle_followers(job)
    logger.warning("job=%s tenant=%s failed after %s: %s", job.pk, job.tenant_id, why, error)
    services.announce_end(job)


@persisting
def _retry(job: Job, error: BaseException, *, delay: float) -> Any:
    seconds = math.ceil(delay)
    fields = _error_fields(error)
    due = timezone.now() + timedelta(seconds=seconds)
    with transaction.atomic():
        _durable_outcome()
        updated = _holding(job).update(status=Job.Status.RETRYING, scheduled_at=due, **fields)
        if not updated:
            return None
        job.status, job.error_type = Job.Status.RETRYING, fields["error_type"]
        job.error_message = fields["error_message"]
        services.add_log(
            job,
            JobLog.Event.RETRY_SCHEDULED,
            f"{fields['error_type']}: {fields['error_message']} — retrying in {seconds} s.",
            level=JobLog.Level.WARNING,
            data={"attempt": job.attempt, "delay": seconds, "traceback": fields["error_traceback"]},
        )
    logger.info("job=%s tenant=%s retry in %ss after %s", job.pk, job.tenant_id, seconds, error)
    return queueing.retry_later(seconds)


@persisting
def _snooze(job: Job, seconds: float) -> Any:
    """Put the job back for `seconds`, giving its attempt back: the snooze is not a failure."""
    seconds = max(1, math.ceil(seconds))
    due = timezone.now() + timedelta(seconds=seconds)
    with transaction.atomic():
        _durable_outcome()
        updated = _holding(job).update(
            status=Job.Status.SCHEDULED,
            scheduled_at=due,
            attempt=F("attempt") - 1,
            snoozes=F("snoozes") + 1,
        )
        if not updated:
            return None
        job.status = Job.Status.SCHEDULED  # the attempt's span ends snoozed, not started
        services.add_log(
            job,
            JobLog.Event.SNOOZED,
            f"Snoozed for {seconds} s ({job.snoozes + 1} so far); the attempt is given back.",
            data={"attempt": job.attempt, "delay": seconds},
        )
    logger.info("job=%s tenant=%s snoozed for %ss", job.pk, job.tenant_id, seconds)
    return queueing.retry_later(seconds)


def settle_interrupted(
    job_id: str,
    *,
    reason: str,
    event: str = JobLog.Event.STOPPED,
    lease: int | None = None,
    worker: str | None = None,
) -> str | None:
    """Settle a started job whose attempt ended without recording: cancel, retry or fail it.

    `lease` or `worker` names the attempt that ended (the one a rescuer saw, the one a worker
    ran), so a newer attempt that began meanwhile is left alone.
    """
    rows = Job.objects.select_related("tenant").filter(pk=job_id, status=Job.Status.STARTED)
    if lease is not None:
        rows = rows.filter(lease=lease)
    if worker is not None:
        rows = rows.filter(worker_name=worker)
    job = rows.first()
    if job is None:
        return None
    if job.cancel_requested_at or queueing.is_cancel_requested(job):
        _cancel(job, f"stopped: {reason}")
        return job.status
    error = RetryableError(reason)
    try:
        kind = get_kind(job.kind)
    except UnknownKind:
        kind = None  # its next run would fail it for good: no retry
    if kind is None or job.attempt >= job.max_attempts:
        _fail(job, error)
        return job.status
    delay = math.ceil(backoff(kind, job.attempt, error))
    with transaction.atomic():
        updated = _holding(job).update(
            status=Job.Status.RETRYING,
            scheduled_at=timezone.now() + timedelta(seconds=delay),
            **_error_fields(error),
        )
        if not updated:
            return None
        services.add_log(
            job, event, f"{reason}; retrying in {delay} s.", level=JobLog.Level.WARNING
        )
        job.refresh_from_db()
        queueing.push_on_commit([job])
    return Job.Status.RETRYING


def _jsonable(result: Any) -> Any:
    try:
        return json.loads(json.dumps(result, cls=DjangoJSONEncoder))
    except (TypeError, ValueError):
        return {"repr": repr(result)[:5000]}
