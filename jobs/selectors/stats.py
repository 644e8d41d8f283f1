"""Statistics of jobs: counts, throughput, wait and run percentiles, failure rates.

Windows up to `ROLLUPS_AFTER` read job rows; longer ones read the hourly roll-ups
(`jobs.services.rollups` writes them) for settled hours and job rows for the edges.
"""

from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import TruncHour
from django.utils import timezone

from jobs.models import Job, JobHourlyStat
from jobs.selectors.jobs import list_jobs
from tenants.models import Tenant

HOUR = timedelta(hours=1)
# Hours younger than this are rolled up again every hour and read from job rows by stats.
LOOKBACK = timedelta(hours=6)
# Stats over windows longer than this read roll-ups.
ROLLUPS_AFTER = timedelta(hours=36)


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont over an expression, e.g. Percentile(F("x"), 0.95)."""

    function = "percentile_cont"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, percentile: float, **extra: Any) -> None:
        super().__init__(expression, percentile=float(percentile), **extra)


def _seconds(delta: Any) -> float | None:
    return None if delta is None else round(float(delta), 3)


def _timings(jobs: QuerySet[Job]) -> dict[str, Any]:
    wait = F("started_at") - F("enqueued_at")
    run = F("finished_at") - F("started_at")
    started = jobs.filter(started_at__isnull=False, enqueued_at__isnull=False)
    finished = jobs.filter(finished_at__isnull=False, started_at__isnull=False)
    waits = started.aggregate(p50=Percentile(epoch(wait), 0.5), p95=Percentile(epoch(wait), 0.95))
    runs = finished.aggregate(p50=Percentile(epoch(run), 0.5), p95=Percentile(epoch(run), 0.95))
    return {
        "wait_seconds": {key: _seconds(value) for key, value in waits.items()},
        "run_seconds": {key: _seconds(value) for key, value in runs.items()},
    }


class Epoch(Func):
    """Seconds in an interval: EXTRACT(EPOCH FROM …)."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = FloatField()


def epoch(interval: Any) -> Epoch:
    return Epoch(ExpressionWrapper(interval, output_field=DurationField()))


def job_stats(
    *,
    tenant: Tenant | None,
    window: timedelta,
    queue: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """Counts by status, throughput, wait and run percentiles and failure rate over `window`."""
    if window > ROLLUPS_AFTER:
        return window_stats(tenant=tenant, window=window, queue=queue, kind=kind)
    since = timezone.now() - window
    jobs = list_jobs(tenant=tenant).filter(created_at__gte=since)
    if queue:
        jobs = jobs.filter(queue=queue)
    if kind:
        jobs = jobs.filter(kind=kind)
    counts = dict.fromkeys(Job.Status.values, 0)
    counts.update(dict(jobs.order_by().values_list("status").annotate(n=Count("pk"))))
    ended = counts[Job.Status.SUCCEEDED] + counts[Job.Status.FAILED]
    return {
        "window_seconds": int(window.total_seconds()),
        "counts": counts,
        "throughput_per_minute": round(
            counts[Job.Status.SUCCEEDED] / max(window.total_seconds() / 60, 1 / 60), 3
        ),
        **_timings(jobs),
        "failure_rate": round(counts[Job.Status.FAILED] / ended, 4) if ended else 0.0,
        "by_kind": _by_kind(jobs),
    }


def _by_kind(jobs: QuerySet[Job]) -> list[dict[str, Any]]:
    rows = (
        jobs.order_by()
        .values("kind")
        .annotate(
            total=Count("pk"),
            succeeded=Count("pk", filter=Q(status=Job.Status.SUCCEEDED)),
            failed=Count("pk", filter=Q(status=Job.Status.FAILED)),
        )
        .order_by("-total")[:50]
    )
    return [
        {
            **row,
            "failure_rate": round(row["failed"] / ended, 4)
            if (ended := row["succeeded"] + row["failed"])
            else 0.0,
        }
        for row in rows
    ]


def hourly_activity(*, tenant: Tenant | None, hours: int = 24) -> list[dict[str, Any]]:
    """Succeeded and failed jobs per queue and hour over the last `hours`, oldest first."""
    since = timezone.now() - timedelta(hours=hours)
    rows = (
        list_jobs(tenant=tenant)
        .filter(finished_at__gte=since, status__in=[Job.Status.SUCCEEDED, Job.Status.FAILED])
        .order_by()
        .annotate(hour=TruncHour("finished_at"))
        .values("queue", "hour")
        .annotate(
            succeeded=Count("pk", filter=Q(status=Job.Status.SUCCEEDED)),
            failed=Count("pk", filter=Q(status=Job.Status.FAILED)),
        )
        .order_by("hour", "queue")
    )
    return [dict(row) for row in rows]


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


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
        **_window_timings(edges, rolled),
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


def _window_timings(edges: QuerySet[Job], rolled: QuerySet[JobHourlyStat]) -> dict[str, Any]:
    wait, run = (
        epoch(F("started_at") - F("enqueued_at")),
        epoch(F("finished_at") - F("started_at")),
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
