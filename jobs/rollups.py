"""Hourly roll-ups of jobs: counts and durations per tenant, queue, kind, status and hour.

`roll_up_jobs` replaces the rows of whole hours in one transaction, so running it again for an
hour changes nothing unless jobs changed. Jobs count in the hour they were created; a job that
finishes later moves between statuses when its hour is rolled up again, which the hourly kind
does for the last `LOOKBACK` hours. `window_stats` is `jobs.selectors.job_stats` for long
windows: settled hours from roll-ups, the rest from job rows.
"""

from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from jobs.models import Job, JobHourlyStat
from tenants.models import Tenant

HOUR = timedelta(hours=1)
# Hours younger than this are rolled up again every hour and read from job rows by stats.
LOOKBACK = timedelta(hours=6)
# Stats over windows longer than this read roll-ups (jobs.selectors.job_stats).
ROLLUPS_AFTER = timedelta(hours=36)

_INSERT = """
INSERT INTO jobs_jobhourlystat (
    tenant_id, hour, queue, kind, status, count,
    wait_count, wait_sum, wait_max, wait_p50, wait_p95,
    run_count, run_sum, run_max, run_p50, run_p95
)
SELECT
    tenant_id, date_trunc('hour', created_at), queue, kind, status, count(*),
    count(wait), coalesce(sum(wait), 0), max(wait),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY wait),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY wait),
    count(run), coalesce(sum(run), 0), max(run),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY run),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY run)
FROM (
    SELECT tenant_id, created_at, queue, kind, status,
           extract(epoch FROM started_at - enqueued_at)::float8 AS wait,
           extract(epoch FROM finished_at - started_at)::float8 AS run
    FROM jobs_job
    WHERE created_at >= %(start)s AND created_at < %(end)s {tenant_filter}
) AS jobs
GROUP BY 1, 2, 3, 4, 5
"""


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


@transaction.atomic
def roll_up_jobs(
    start: datetime, end: datetime | None = None, *, tenant: Tenant | None = None
) -> int:
    """Replace the roll-up rows of the hours from `start` up to `end` (default: one hour).

    Both ends are rounded down to whole hours (UTC); returns how many rows were written.
    """
    start = floor_hour(start)
    end = floor_hour(end) if end is not None else start + HOUR
    stale = JobHourlyStat.objects.filter(hour__gte=start, hour__lt=end)
    if tenant is not None:
        stale = stale.filter(tenant=tenant)
    stale.delete()
    sql = _INSERT.format(tenant_filter="AND tenant_id = %(tenant)s" if tenant else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, {"start": start, "end": end, "tenant": tenant.pk if tenant else None})
        return cursor.rowcount


def list_hourly_stats(
    *, tenant: Tenant, start: datetime, end: datetime, queue: str = "", kind: str = ""
) -> QuerySet[JobHourlyStat]:
    """The tenant's roll-up rows for the hours in [start, end), optionally of one queue/kind."""
    rows = JobHourlyStat.objects.for_tenant(tenant).filter(hour__gte=start, hour__lt=end)
    if queue:
        rows = rows.filter(queue=queue)
    if kind:
        rows = rows.filter(kind=kind)
    return rows


def window_stats(
    *, tenant: Tenant | None, window: timedelta, queue: str | None = None, kind: str | None = None
) -> dict[str, Any]:
    """`job_stats` over a long window: settled whole hours from roll-ups, the edges from rows.

    Counts are exact; wait and run percentiles are estimates (the count-weighted mean of the
    hourly percentiles, and of the edges' own).
    """
    now = timezone.now()
    since = now - window
    rolled_from, rolled_to = ceil_hour(since), floor_hour(now - LOOKBACK)
    jobs = Job.objects.all() if tenant is None else Job.objects.for_tenant(tenant)
    stats = (
        JobHourlyStat.objects.all() if tenant is None else JobHourlyStat.objects.for_tenant(tenant)
    )
    if queue:
        jobs, stats = jobs.filter(queue=queue), stats.filter(queue=queue)
    if kind:
        jobs, stats = jobs.filter(kind=kind), stats.filter(kind=kind)
    edges = jobs.filter(
        Q(created_at__gte=since, created_at__lt=rolled_from) | Q(created_at__gte=rolled_to)
    )
    rolled = stats.filter(hour__gte=rolled_from, hour__lt=rolled_to)
    counts = dict.fromkeys(Job.Status.values, 0)
    by_kind: dict[str, dict[str, Any]] = {}
    for row in _edge_counts(edges) + _rolled_counts(rolled):
        counts[row["status"]] = counts.get(row["status"], 0) + row["n"]
        entry = by_kind.setdefault(
            row["kind"], {"kind": row["kind"], "total": 0, "succeeded": 0, "failed": 0}
        )
        entry["total"] += row["n"]
        if row["status"] in (Job.Status.SUCCEEDED, Job.Status.FAILED):
            entry[row["status"]] += row["n"]
    ended = counts[Job.Status.SUCCEEDED] + counts[Job.Status.FAILED]
    return {
        "window_seconds": int(window.total_seconds()),
        "counts": counts,
        "throughput_per_minute": round(
            counts[Job.Status.SUCCEEDED] / (window.total_seconds() / 60), 3
        ),
        **_timings(edges, rolled),
        "failure_rate": round(counts[Job.Status.FAILED] / ended, 4) if ended else 0.0,
        "by_kind": [
            {**entry, "failure_rate": _rate(entry)}
            for entry in sorted(by_kind.values(), key=lambda e: -e["total"])[:50]
        ],
    }


def _rate(entry: dict[str, Any]) -> float:
    ended = entry["succeeded"] + entry["failed"]
    return round(entry["failed"] / ended, 4) if ended else 0.0


def _edge_counts(jobs: QuerySet[Job]) -> list[dict[str, Any]]:
    return [dict(row) for row in jobs.order_by().values("kind", "status").annotate(n=Count("pk"))]


def _rolled_counts(rows: QuerySet[JobHourlyStat]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows.order_by().values("kind", "status").annotate(n=Sum("count"))]


def _timings(edges: QuerySet[Job], rolled: QuerySet[JobHourlyStat]) -> dict[str, Any]:
    from jobs.selectors import Percentile, _epoch  # noqa: PLC0415 (selectors import this module)

    wait, run = (
        _epoch(F("started_at") - F("enqueued_at")),
        _epoch(F("finished_at") - F("started_at")),
    )
    raw = edges.aggregate(
        wait_n=Count("pk", filter=Q(started_at__isnull=False, enqueued_at__isnull=False)),
        wait_p50=Percentile(wait, 0.5),
        wait_p95=Percentile(wait, 0.95),
        run_n=Count("pk", filter=Q(finished_at__isnull=False, started_at__isnull=False)),
        run_p50=Percentile(run, 0.5),
        run_p95=Percentile(run, 0.95),
    )
    hourly = list(
        rolled.values_list(
            "wait_count", "wait_p50", "wait_p95", "run_count", "run_p50", "run_p95"
        ).order_by()
    )
    parts = [
        tuple(raw[k] for k in ("wait_n", "wait_p50", "wait_p95", "run_n", "run_p50", "run_p95"))
    ]
    parts += hourly
    return {
        "wait_seconds": {"p50": _weighted(parts, 0, 1), "p95": _weighted(parts, 0, 2)},
        "run_seconds": {"p50": _weighted(parts, 3, 4), "p95": _weighted(parts, 3, 5)},
    }


def _weighted(parts: list[tuple[Any, ...]], count_at: int, value_at: int) -> float | None:
    pairs = [(p[count_at], p[value_at]) for p in parts if p[count_at] and p[value_at] is not None]
    total = sum(n for n, _ in pairs)
    return round(sum(n * v for n, v in pairs) / total, 3) if total else None
