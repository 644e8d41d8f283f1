"""What a job body gets besides its payload: `JobContext`."""

import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from jobs.errors import JobCanceled, LeaseLost, Snooze
from jobs.models import Job, JobLog, OnceMarker
from jobs.transport import queueing

logger = logging.getLogger("jobs.runtime.runner")

STOP_CHECK_INTERVAL = 0.2
# How often `stop_if_canceled` also asks PostgreSQL whether this attempt still holds its lease.
LEASE_CHECK_INTERVAL = 5.0
PROGRESS_STEP = 10
PROGRESS_SECONDS = 5.0

# Apps above the engine that chain jobs (workflows) say where a job's parents' results are:
# each provider returns them by name, or None when the job is not one of theirs.
ParentResults = Callable[[Job], dict[str, Any] | None]
_PARENT_RESULTS: list[ParentResults] = []


def register_parent_results(provider: ParentResults) -> None:
    """Let `provider` answer `ctx.parent_results` for the jobs it knows."""
    if provider not in _PARENT_RESULTS:
        _PARENT_RESULTS.append(provider)


_JOB, _LOG, _MARKER = Job._meta.db_table, JobLog._meta.db_table, OnceMarker._meta.db_table

# A log line lands only while the attempt holds its lease (the fence, in the same statement).
_FENCED_LOG_SQL = f"""
INSERT INTO {_LOG} (job_id, tenant_id, created_at, level, event, message, data)
SELECT id, tenant_id, %(now)s, %(level)s, %(event)s, %(message)s, %(data)s::jsonb
FROM {_JOB} WHERE id = %(id)s AND status = 'started' AND lease = %(lease)s
"""

# The marker is taken only while the attempt holds its lease, and the job row stays share-locked
# until the caller's transaction ends, so a rescue waits for the effect to commit or roll back.
_ONCE_SQL = f"""
WITH holder AS (
    SELECT id, tenant_id FROM {_JOB}
    WHERE id = %(id)s AND status = 'started' AND lease = %(lease)s FOR SHARE
), taken AS (
    INSERT INTO {_MARKER} (tenant_id, name, job_id, created_at)
    SELECT tenant_id, %(name)s, id, %(now)s FROM holder
    ON CONFLICT (tenant_id, name) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM holder), (SELECT count(*) FROM taken)
"""


class JobContext:
    """What a job body gets besides its payload: its row, progress, cancel checks and a log.

    Every write it makes names the attempt's lease: once the attempt is rescued (its worker
    looked dead) they are refused and `LeaseLost` ends the attempt without recording anything.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.tenant = job.tenant
        self.attempt = job.attempt
        self.logger = logger  # its lines carry the job, kind, tenant and attempt already
        self._logged_percent = job.progress
        self._logged_at = time.monotonic()
        self._checked_at = 0.0
        self._lease_checked_at = time.monotonic()

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt of this job: for providers that accept an Idempotency-Key."""
        return f"conveyor-{self.job.pk}"

    def once(self, name: str) -> bool:
        """True the first time `name` is asked for in this tenant, False ever after.

        Call it inside the `transaction.atomic()` block that makes the effect, so the marker and
        the effect commit together: a later attempt that asks again gets False.
        """
        if not connection.in_atomic_block:
            raise RuntimeError("ctx.once() must be called inside transaction.atomic()")
        if not name or len(name) > 200:
            raise ValueError("a once-marker's name is 1 to 200 characters")
        params: dict[str, Any] = {
            "id": self.job.pk,
            "lease": self.job.lease,
            "name": name,
            "now": timezone.now(),
        }
        with connection.cursor() as cursor:
            cursor.execute(_ONCE_SQL, params)
            holds, taken = cursor.fetchone()
        if not holds:
            raise LeaseLost(f"job {self.job.pk} attempt {self.attempt} no longer holds its lease")
        return bool(taken)

    @functools.cached_property
    def parent_results(self) -> dict[str, Any]:
        """The results of the jobs this one waited for: a workflow step's parents by step name,
        else its `depends_on` jobs by id."""
        for provider in _PARENT_RESULTS:
            found = provider(self.job)
            if found is not None:
                return found
        pairs = self.job.depends_on.values_list("pk", "result")
        return {str(pk): result for pk, result in pairs}

    def progress(self, percent: float, message: str = "") -> None:
        """Report how far the job is; stored at most once per 10 % or per 5 s."""
        percent = max(0, min(100, int(percent)))
        now = time.monotonic()
        step = percent - self._logged_percent >= PROGRESS_STEP
        if not (step or now - self._logged_at >= PROGRESS_SECONDS or percent == 100):
            return
        if percent == self._logged_percent and percent == 100:
            return
        self._logged_percent, self._logged_at = percent, now
        with transaction.atomic():
            held = self._holding().update(progress=percent, progress_message=message[:200])
            if not held:
                self._lost()
            self.job.progress, self.job.progress_message = percent, message[:200]
            self._add_log(JobLog.Event.PROGRESS, message, data={"percent": percent})

    def stop_if_canceled(self) -> None:
        """Raise JobCanceled once a cancel was requested (checked at most every 0.2 s), and
        LeaseLost once the attempt was rescued (checked at most every 5 s)."""
        now = time.monotonic()
        if now - self._checked_at < STOP_CHECK_INTERVAL:
            return
        self._checked_at = now
        if queueing.is_cancel_requested(self.job):
            raise JobCanceled(self.job.progress_message or f"{self.job.progress}% done")
        if now - self._lease_checked_at >= LEASE_CHECK_INTERVAL:
            self._lease_checked_at = now
            if not self._holding().exists():
                self._lost()

    def log(self, message: str, *, level: str = JobLog.Level.INFO, **data: Any) -> None:
        """Add a line to the job's log."""
        self._add_log(JobLog.Event.NOTE, message, level=level, data=data)

    def snooze(self, seconds: float) -> None:
        """Stop here and run again in `seconds` without using an attempt (raises `Snooze`).

        For "not yet" rather than "failed": a provider asks to wait, a file has not arrived.
        A kind's `max_snoozes` (default CONVEYOR_MAX_SNOOZES) bounds it; later snoozes count
        as attempts.
        """
        raise Snooze(seconds)

    def _holding(self) -> Any:
        return Job.objects.filter(pk=self.job.pk, status=Job.Status.STARTED, lease=self.job.lease)

    def _add_log(
        self, event: str, message: str, *, level: str = JobLog.Level.INFO, data: dict[str, Any]
    ) -> None:
        params: dict[str, Any] = {
            "id": self.job.pk,
            "lease": self.job.lease,
            "now": timezone.now(),
            "level": level,
            "event": event,
            "message": message,
            "data": json.dumps(data, cls=DjangoJSONEncoder),
        }
        with connection.cursor() as cursor:
            cursor.execute(_FENCED_LOG_SQL, params)
            if not cursor.rowcount:
                self._lost()

    def _lost(self) -> None:
        raise LeaseLost(f"job {self.job.pk} attempt {self.attempt} no longer holds its lease")
