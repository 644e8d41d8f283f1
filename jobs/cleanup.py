"""Deleting old finished jobs and their logs in short batches, and stale RQ records."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs import queueing
from jobs.errors import InvalidTransition
from jobs.models import Job, JobLog
from tenants.models import Tenant

Progress = Callable[[int], None]


@dataclass
class CleanedUp:
    jobs: int = 0
    logs: int = 0
    rq_records: int = 0
    per_tenant: dict[str, int] = field(default_factory=dict)


def _statuses(statuses: Iterable[str] | None) -> list[str]:
    chosen = list(statuses or Job.FINISHED)
    active = sorted(set(chosen) - set(Job.FINISHED))
    if active:
        raise InvalidTransition(
            f"Only finished jobs are cleaned up, not {', '.join(active)}: "
            f"choose among {', '.join(Job.FINISHED)}."
        )
    return chosen


def clean_up_jobs(
    *,
    older_than: timedelta | None = None,
    tenant: Tenant | None = None,
    statuses: Iterable[str] | None = None,
    dry_run: bool = False,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> CleanedUp:
    """Delete finished jobs (and their logs) past retention; each batch its own short transaction.

    Retention is `older_than` when given, else the tenant's own, else CONVEYOR_RETENTION_DAYS.
    """
    chosen = _statuses(statuses)
    outcome = CleanedUp()
    tenants = [tenant] if tenant else Tenant.objects.order_by("pk")
    for each in tenants:
        days = each.retention_days or settings.CONVEYOR_RETENTION_DAYS
        cutoff = timezone.now() - (older_than if older_than is not None else timedelta(days=days))
        expired = Job.objects.for_tenant(each).filter(status__in=chosen, finished_at__lt=cutoff)
        count = _delete(
            expired, dry_run=dry_run, batch_size=batch_size, outcome=outcome, progress=progress
        )
        if count:
            outcome.per_tenant[each.slug] = count
    if not dry_run and tenant is None:
        outcome.rq_records = _clean_rq()
    return outcome


def _delete(
    jobs: QuerySet[Job],
    *,
    dry_run: bool,
    batch_size: int,
    outcome: CleanedUp,
    progress: Progress | None,
) -> int:
    if dry_run:
        count = jobs.count()
        outcome.jobs += count
        outcome.logs += JobLog.objects.filter(job__in=jobs).count()
        return count
    deleted = 0
    while ids := list(jobs.values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            outcome.logs += JobLog.objects.filter(job_id__in=ids).delete()[0]
            Job.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
        outcome.jobs += len(ids)
        if progress:
            progress(len(ids))
    return deleted


def _clean_rq() -> int:
    """Drop RQ's finished and failed records older than the result TTL."""
    return sum(
        queueing.clean(name, older_than=settings.CONVEYOR_RESULT_TTL)
        for name in settings.CONVEYOR_QUEUES
    )
