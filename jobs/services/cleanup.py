"""Deleting old finished jobs and their logs in short batches, stale RQ records, orphaned files.

Each batch is at most `batch_size` jobs found through the `finished_at` index (walked in
order, so a batch never rescans what the last one deleted) and deleted by primary key with
their logs in one short transaction of its own: only those rows are locked, never a table.
"""

import functools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from django.apps import apps
from django.conf import settings
from django.core.files.storage import Storage, default_storage
from django.db import connection, models, transaction
from django.db.models import ForeignObjectRel, Q
from django.utils import timezone

from jobs.errors import InvalidTransition
from jobs.models import Job, JobLog, OnceMarker
from jobs.transport import queueing
from tenants.models import Tenant

Progress = Callable[[int, int], None]  # (jobs deleted so far, jobs to delete)


@dataclass
class CleanedUp:
    jobs: int = 0
    logs: int = 0
    rq_records: int = 0
    once_markers: int = 0
    files: list[str] = field(default_factory=list)
    per_tenant: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    longest_batch_seconds: float = 0.0


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
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> CleanedUp:
    """Delete finished jobs (and their logs) past retention, each batch its own short transaction.

    Retention is `older_than` when given, else the tenant's own, else CONVEYOR_RETENTION_DAYS.
    Without a tenant it also drops old RQ records and stored files no row refers to any more.
    """
    chosen = _statuses(statuses)
    size = batch_size or settings.CONVEYOR_CLEANUP_BATCH_SIZE
    groups = [
        Job.objects.filter(where, status__in=chosen, finished_at__lt=cutoff)
        for cutoff, where in _retention_groups(tenant=tenant, older_than=older_than)
    ]
    outcome = CleanedUp()
    counted: Counter[int] = Counter()
    if dry_run:
        _count(groups, outcome=outcome, counted=counted)
    else:
        total = sum(expired.count() for expired in groups) if progress else 0
        for expired in groups:
            _delete(
                expired,
                batch_size=size,
                outcome=outcome,
                counted=counted,
                progress=progress,
                total=total,
            )
    slugs = dict(Tenant.objects.filter(pk__in=counted).values_list("pk", "slug"))
    outcome.per_tenant = {slugs[pk]: n for pk, n in sorted(counted.items()) if n}
    if tenant is None:
        outcome.files = clean_up_files(dry_run=dry_run)
        outcome.once_markers = clean_up_once_markers(dry_run=dry_run)
        if not dry_run:
            outcome.rq_records = queueing.clean_rq_records()
    return outcome


def clean_up_once_markers(*, dry_run: bool = False) -> int:
    """Delete `ctx.once` markers older than CONVEYOR_ONCE_MARKER_DAYS (0: keep them all).

    A marker stops the same named effect from happening twice; once it is gone, that name may
    happen again. The default keeps markers well past the longest job retention.
    """
    days = settings.CONVEYOR_ONCE_MARKER_DAYS
    if not days:
        return 0
    old = OnceMarker.objects.filter(created_at__lt=timezone.now() - timedelta(days=days))
    if dry_run:
        return old.count()
    return old.delete()[0]


def _count(
    groups: Sequence[models.QuerySet[Job]], *, outcome: CleanedUp, counted: Counter[int]
) -> None:
    for expired in groups:
        by_tenant = expired.order_by().values_list("tenant").annotate(n=models.Count("pk"))
        counted.update(dict(by_tenant))
        outcome.logs += JobLog.objects.filter(job__in=expired).count()
    outcome.jobs = counted.total()


def _retention_groups(
    *, tenant: Tenant | None, older_than: timedelta | None
) -> list[tuple[datetime, Q]]:
    """(cutoff, which tenants) pairs: one per distinct retention, so one index walk each."""
    now = timezone.now()
    default = timedelta(days=settings.CONVEYOR_RETENTION_DAYS)
    if tenant is not None:
        days = tenant.retention_days
        keep = older_than if older_than is not None else timedelta(days=days) if days else default
        return [(now - keep, Q(tenant=tenant))]
    if older_than is not None:
        return [(now - older_than, Q())]
    own: dict[int, list[int]] = {}
    for pk, days in Tenant.objects.filter(retention_days__gt=0).values_list("pk", "retention_days"):
        own.setdefault(days or 0, []).append(pk)
    others = [pk for pks in own.values() for pk in pks]
    groups = [(now - default, ~Q(tenant__in=others) if others else Q())]
    groups += [(now - timedelta(days=days), Q(tenant__in=pks)) for days, pks in own.items()]
    return groups


def _delete(
    expired: models.QuerySet[Job],
    *,
    batch_size: int,
    outcome: CleanedUp,
    counted: Counter[int],
    progress: Progress | None,
    total: int,
) -> None:
    after: tuple[datetime | None, UUID] | None = None
    while True:
        page = expired.order_by("finished_at", "pk")
        if after is not None:  # keyset: start past the last batch, never over deleted entries
            page = page.filter(
                Q(finished_at__gt=after[0]) | Q(finished_at=after[0], pk__gt=after[1])
            )
        rows = list(page.values_list("pk", "tenant_id", "finished_at")[:batch_size])
        if not rows:
            return
        started = time.monotonic()
        outcome.logs += _delete_batch([pk for pk, _, _ in rows])
        outcome.longest_batch_seconds = max(
            outcome.longest_batch_seconds, time.monotonic() - started
        )
        outcome.batches += 1
        outcome.jobs += len(rows)
        counted.update(tenant_id for _, tenant_id, _ in rows)
        after = (rows[-1][2], rows[-1][0])
        if progress:
            progress(outcome.jobs, max(total, outcome.jobs))


def _delete_batch(ids: list[UUID]) -> int:
    """Delete these jobs by primary key in one transaction; returns how many logs went with them.

    Rows of any app that point at a job go with it (its logs, its dependency links) or let go
    of it (SET_NULL), as their foreign keys say: a few statements, each an index lookup per id.
    """
    logs = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for table, column, cascade in _pointers_to_jobs():
            if cascade:
                cursor.execute(f'DELETE FROM "{table}" WHERE "{column}" = ANY(%s)', [ids])
                logs += cursor.rowcount if table == JobLog._meta.db_table else 0
            else:
                cursor.execute(
                    f'UPDATE "{table}" SET "{column}" = NULL WHERE "{column}" = ANY(%s)', [ids]
                )
        cursor.execute(f'DELETE FROM "{Job._meta.db_table}" WHERE id = ANY(%s)', [ids])
    return logs


@functools.cache
def _pointers_to_jobs() -> list[tuple[str, str, bool]]:
    """(table, column, cascade) of every foreign key to Job, from every installed app."""
    pointers = []
    for relation in Job._meta.get_fields(include_hidden=True):
        if not isinstance(relation, ForeignObjectRel) or relation.many_to_many:
            continue
        on_delete = relation.on_delete
        if on_delete not in (models.CASCADE, models.SET_NULL):
            continue  # PROTECT and the like: the database refuses, as it should
        table = relation.related_model._meta.db_table
        pointers.append((table, str(relation.field.column), on_delete is models.CASCADE))
    return pointers


# --- Stored files -----------------------------------------------------------------------------


def clean_up_files(*, dry_run: bool = False) -> list[str]:
    """Delete stored files under CONVEYOR_STORED_FILE_PREFIXES that no row's file field names.

    Only files older than CONVEYOR_STORED_FILE_MIN_AGE seconds go: a file is written before the
    row that names it commits. Returns the names deleted (or, in a dry run, that would be).
    """
    cutoff = timezone.now() - timedelta(seconds=settings.CONVEYOR_STORED_FILE_MIN_AGE)
    prefixes = [prefix.strip("/") for prefix in settings.CONVEYOR_STORED_FILE_PREFIXES if prefix]
    orphans: list[str] = []
    for storage, fields in _file_fields_by_storage().items():
        named = _named_files(fields, prefixes)
        for prefix in prefixes:
            for name in _walk(storage, prefix):
                if name not in named and _older(storage, name, cutoff):
                    orphans.append(name)
                    if not dry_run:
                        storage.delete(name)
    return orphans


def _file_fields_by_storage() -> dict[Storage, list[models.FileField]]:
    """Every FileField of every installed model, by the storage it writes to."""
    by_storage: dict[Storage, list[models.FileField]] = {default_storage: []}
    for model in apps.get_models():
        for each in model._meta.concrete_fields:
            if isinstance(each, models.FileField):
                by_storage.setdefault(each.storage, []).append(each)
    return by_storage


def _named_files(fields: list[models.FileField], prefixes: list[str]) -> set[str]:
    named: set[str] = set()
    for each in fields:
        under = Q()
        for prefix in prefixes:
            under |= Q(**{f"{each.attname}__startswith": f"{prefix}/"})
        rows = each.model._base_manager.filter(under).values_list(each.attname, flat=True)
        named.update(rows.iterator(chunk_size=10_000))
    return named


def _walk(storage: Storage, directory: str) -> Iterator[str]:
    try:
        directories, files = storage.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in files:
        yield f"{directory}/{name}"
    for name in directories:
        yield from _walk(storage, f"{directory}/{name}")


def _older(storage: Storage, name: str, cutoff: datetime) -> bool:
    try:
        return storage.get_modified_time(name) < cutoff
    except (NotImplementedError, OSError):
        return False  # an age we cannot tell is not old enough to delete
