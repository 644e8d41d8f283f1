"""Reconcile the two records of a job: PostgreSQL is the truth, Redis is brought back in line.

One pass hands `pending` rows to Redis, re-pushes waiting rows whose RQ job Redis lost,
settles `started` rows whose worker is gone, releases deferred rows whose parents ended, and
moves overdue delayed jobs and retries to their queues when no RQ scheduler did.
Each step works in batches of `limit` rows, skips rows another reconciler holds, and goes on
while batches come back full (for at most `budget` seconds), so thousands of jobs Redis lost are
back in one pass. A started row is rescued only when both records say its worker is gone: no
live heartbeat in Redis and an expired lease in PostgreSQL (which survives Redis losing
everything). The rescue takes the lease over, so nothing the old attempt writes later lands.
It also writes tenants' dispatch settings (weights, pauses) to Redis again.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import Job, JobLog
from jobs.runtime import runner
from jobs.services import dispatch
from jobs.services.jobs import add_logs, release_if_ready
from jobs.transport import queueing

logger = logging.getLogger(__name__)

# A row younger than this may still be on its way to Redis through on_commit.
SETTLE_SECONDS = 10
# Delayed jobs and retries later than this are moved to their queues even without RQ's scheduler.
OVERDUE_SECONDS = 30
# A pass stops starting new batches after this many seconds; the next pass goes on.
BUDGET_SECONDS = 50.0


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
    budget: float = BUDGET_SECONDS,
) -> Reconciled:
    """One pass over rows whose Redis side may be missing or stale."""
    cutoff = timezone.now() - timedelta(seconds=settle_seconds)
    deadline = time.monotonic() + budget
    outcome = Reconciled()
    outcome.pushed = _while_full(lambda: push_pending(cutoff=cutoff, limit=limit), limit, deadline)
    outcome.repushed = repush_lost(cutoff=cutoff, limit=limit, deadline=deadline)
    outcome.rescued = rescue_orphans(limit=limit)
    outcome.released = release_deferred(cutoff=cutoff, limit=limit)
    outcome.overdue = queueing.release_overdue(grace=overdue_seconds)
    dispatch.mirror_all()  # tenants' weights and pauses, in case Redis lost them
    return outcome


def _while_full(step: Callable[[], int], limit: int, deadline: float) -> int:
    """Run `step` again while it handles a full batch and time is left; returns the total."""
    total = 0
    while True:
        done = step()
        total += done
        if done < limit or time.monotonic() >= deadline:
            return total


def hand_over_pending(*, limit: int = 1000) -> int:
    """The scheduler loop's share of reconciling: hand settled `pending` rows to Redis."""
    cutoff = timezone.now() - timedelta(seconds=SETTLE_SECONDS)
    return _while_full(
        lambda: push_pending(cutoff=cutoff, limit=limit), limit, time.monotonic() + 5
    )


def repush_if_redis_emptied(*, limit: int = 1000) -> int:
    """The scheduler loop's other share: once Redis is found emptied, re-push every waiting row
    at once instead of at the next reconcile pass, up to a minute later.

    Every row handed over before this moment is checked: one whose push was still on its way
    may be delivered twice, which the runner's claim makes harmless.
    """
    if not queueing.redis_was_emptied():
        return 0
    deadline = time.monotonic() + BUDGET_SECONDS
    try:
        repushed = repush_lost(cutoff=timezone.now(), limit=limit, deadline=deadline)
        dispatch.mirror_all()
    except Exception:
        queueing.forget_marker()  # the next tick starts over
        raise
    if repushed:
        logger.warning("redis had lost its data: %d waiting job(s) handed over again", repushed)
    return repushed


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


def repush_lost(*, cutoff: datetime, limit: int, deadline: float | None = None) -> int:
    """Re-push queued, scheduled and retrying rows whose RQ job Redis no longer has waiting.

    Walks every waiting row in (enqueued_at, id) order, `limit` at a time, each batch starting
    strictly after the last one's final row: rows a bulk enqueue gave one timestamp are neither
    skipped nor checked twice. Stops early only when `deadline` (monotonic) passes.
    """
    after: tuple[datetime, object] | None = None
    pushed = 0
    while True:
        rows, lost = _repush_batch(cutoff=cutoff, limit=limit, after=after)
        pushed += lost
        if len(rows) < limit or (deadline is not None and time.monotonic() >= deadline):
            return pushed
        last = rows[-1]
        assert last.enqueued_at is not None
        after = (last.enqueued_at, last.pk)


def _repush_batch(
    *, cutoff: datetime, limit: int, after: tuple[datetime, object] | None
) -> tuple[list[Job], int]:
    statuses = (Job.Status.QUEUED, Job.Status.SCHEDULED, Job.Status.RETRYING)
    with transaction.atomic():
        candidates = Job.objects.select_for_update(skip_locked=True).filter(
            status__in=statuses, enqueued_at__lt=cutoff
        )
        if after is not None:
            at, pk = after
            candidates = candidates.filter(Q(enqueued_at__gt=at) | Q(enqueued_at=at, pk__gt=pk))
        rows = list(candidates.order_by("enqueued_at", "pk")[:limit])
        waiting = queueing.is_waiting([job.rq_id for job in rows])
        lost = [job for job, found in zip(rows, waiting, strict=True) if not found]
        add_logs(lost, JobLog.Event.REQUEUED, "Redis had lost it; handed over again.")
        return rows, queueing.push_many(lost)


def rescue_orphans(*, limit: int) -> dict[str, int]:
    """Settle `started` rows that no live worker runs any more, by their kind's retry policy.

    Gone means both: no live heartbeat in Redis, and a lease in PostgreSQL that was not renewed
    in time. So a Redis restarted empty under a live worker rescues nothing (its lease is fresh),
    and a worker cut off from both is rescued once its lease expires. The old attempt is asked
    to stop (its cancel flag); if it runs on regardless, its writes are refused.
    """
    now = timezone.now()
    rows = list(
        Job.objects.filter(status=Job.Status.STARTED)
        .filter(Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True))
        .order_by("started_at")[:limit]
    )
    running = queueing.running_job_ids() if rows else set()
    outcome: dict[str, int] = {}
    for job in rows:
        if job.rq_id in running:
            continue
        status = runner.settle_interrupted(
            job.rq_id, reason="its worker is gone", event=JobLog.Event.RESCUED, lease=job.lease
        )
        if status:
            # Flags only the old attempt; a stop command would also reach a successor.
            queueing.flag_stop(job)
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
