"""Reconcile the two records of a job: PostgreSQL is the truth, Redis is brought back in line.

One pass hands `pending` rows to Redis, re-pushes waiting rows whose RQ job Redis lost,
settles `started` rows whose worker is gone, releases deferred rows whose parents ended, and
moves overdue delayed jobs and retries to their queues when no RQ scheduler did; it also writes
tenants' dispatch settings (weights, pauses) to Redis again.
Each step takes a bounded number of rows and skips rows another reconciler holds.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from jobs.models import Job, JobLog
from jobs.runtime import runner
from jobs.services import dispatch
from jobs.services.jobs import add_log, release_if_ready
from jobs.transport import queueing
from jobs.transport.queueing import as_text

logger = logging.getLogger(__name__)

# A row younger than this may still be on its way to Redis through on_commit.
SETTLE_SECONDS = 10
# Delayed jobs and retries later than this are moved to their queues even without RQ's scheduler.
OVERDUE_SECONDS = 30
CURSOR_KEY = "conveyor:reconcile:repush-cursor"


@dataclass
class Reconciled:
    pushed: int = 0
    repushed: int = 0
    rescued: dict[str, int] = field(default_factory=dict)
    released: int = 0
    overdue: int = 0

    @property
    def total(self) -> int:
        return (
            self.pushed + self.repushed + sum(self.rescued.values()) + self.released + self.overdue
        )


def reconcile(
    *,
    limit: int = 1000,
    settle_seconds: int = SETTLE_SECONDS,
    overdue_seconds: int = OVERDUE_SECONDS,
) -> Reconciled:
    """One bounded pass over rows whose Redis side may be missing or stale."""
    cutoff = timezone.now() - timedelta(seconds=settle_seconds)
    outcome = Reconciled()
    outcome.pushed = push_pending(cutoff=cutoff, limit=limit)
    outcome.repushed = repush_lost(cutoff=cutoff, limit=limit)
    outcome.rescued = rescue_orphans(limit=limit)
    outcome.released = release_deferred(cutoff=cutoff, limit=limit)
    outcome.overdue = queueing.release_overdue(grace=overdue_seconds)
    dispatch.mirror_all()  # tenants' weights and pauses, in case Redis lost them
    return outcome


def push_pending(*, cutoff: datetime, limit: int) -> int:
    """Hand `pending` rows (Redis was down at enqueue, or the process died) to Redis."""
    with transaction.atomic():
        rows = list(
            Job.objects.select_for_update(skip_locked=True)
            .filter(status=Job.Status.PENDING, created_at__lt=cutoff)
            .order_by("created_at")[:limit]
        )
        now = timezone.now()
        for job in rows:
            queueing.mark_for_handover(job, now)
        Job.objects.bulk_update(rows, ["status", "enqueued_at"])
        # Pushed while the rows are locked: a worker's claim waits for this commit.
        return queueing.push_many(rows)


def repush_lost(*, cutoff: datetime, limit: int) -> int:
    """Re-push queued, scheduled and retrying rows whose RQ job Redis no longer has waiting.

    Each pass checks the next `limit` rows after where the last pass stopped, so a large
    backlog is walked through over several passes rather than its oldest rows again and again.
    """
    statuses = (Job.Status.QUEUED, Job.Status.SCHEDULED, Job.Status.RETRYING)
    redis = queueing.connection()
    after = redis.get(CURSOR_KEY)
    with transaction.atomic():
        candidates = Job.objects.select_for_update(skip_locked=True).filter(
            status__in=statuses, enqueued_at__lt=cutoff
        )
        if after:
            candidates = candidates.filter(enqueued_at__gt=datetime.fromisoformat(as_text(after)))
        rows = list(candidates.order_by("enqueued_at")[:limit])
        waiting = queueing.is_waiting([job.rq_id for job in rows])
        lost = [job for job, found in zip(rows, waiting, strict=True) if not found]
        for job in lost:
            add_log(job, JobLog.Event.REQUEUED, "Redis had lost it; handed over again.")
        pushed = queueing.push_many(lost)
    if len(rows) < limit:
        redis.delete(CURSOR_KEY)
    elif rows[-1].enqueued_at:
        redis.set(CURSOR_KEY, rows[-1].enqueued_at.isoformat(), ex=3600)
    return pushed


def rescue_orphans(*, limit: int) -> dict[str, int]:
    """Settle `started` rows that no live worker runs any more, by their kind's retry policy."""
    rows = list(Job.objects.filter(status=Job.Status.STARTED).order_by("started_at")[:limit])
    running = queueing.running_job_ids()
    outcome: dict[str, int] = {}
    for job in rows:
        if job.rq_id in running:
            continue
        status = runner.settle_interrupted(
            job.rq_id, reason="its worker is gone", event=JobLog.Event.RESCUED
        )
        if status:
            outcome[status] = outcome.get(status, 0) + 1
    return outcome


def release_deferred(*, cutoff: datetime, limit: int) -> int:
    """Release or cancel deferred rows whose parents have all ended."""
    released = 0
    rows = Job.objects.filter(status=Job.Status.DEFERRED, created_at__lt=cutoff)
    for job in rows.exclude(depends_on__status__in=Job.ACTIVE).distinct()[:limit]:
        with transaction.atomic():
            locked = Job.objects.select_for_update(skip_locked=True).filter(pk=job.pk).first()
            if locked and locked.status == Job.Status.DEFERRED:
                release_if_ready(locked)
                released += 1
    return released
