"""Operations on whole queues, for every tenant at once: pause, resume, empty, clean."""

import logging

from django.db import transaction
from django.db.models import Q

from jobs.models import Job
from jobs.services.jobs import cancel_waiting, check_queue
from jobs.transport import queueing
from tenants.users import Actor

logger = logging.getLogger(__name__)


def pause_queue(name: str, *, by: Actor = None) -> None:
    """Workers stop taking jobs from the queue; running ones finish; enqueueing still works."""
    queueing.pause(check_queue(name))
    logger.info("queue=%s paused by %s", name, by)


def resume_queue(name: str, *, by: Actor = None) -> None:
    queueing.resume(check_queue(name))
    logger.info("queue=%s resumed by %s", name, by)


def empty_queue(name: str, *, by: Actor = None) -> int:
    """Cancel every job waiting in the queue, for all tenants; returns how many.

    Deferred jobs (waiting on parents) are canceled too, and with them their own dependents in
    any queue, as a failed parent would have them.
    """
    check_queue(name)
    waiting = Q(queue=name, status__in=Job.WAITING)
    canceled = 0
    while True:
        with transaction.atomic():
            chunk = list(Job.objects.select_for_update(skip_locked=True).filter(waiting)[:500])
            if not chunk:
                break
            for job in chunk:
                cancel_waiting(job, "Canceled: the queue was emptied.", by=by)
            canceled += len(chunk)
    queueing.empty(name)
    return canceled


def clean_queue(name: str, *, older_than: int) -> int:
    """Delete RQ's finished and failed records of the queue older than `older_than` seconds."""
    return queueing.clean(check_queue(name), older_than=older_than)
