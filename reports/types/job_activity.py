"""Job activity: volumes, failure rate, wait and run time by queue and kind, failing kinds.

Counts and durations come from the hourly roll-ups (`jobs.selectors.stats`), so a 90-day range costs
the same however many job rows exist; only failed jobs are read from job rows.
"""

from typing import Any

from django.db.models import F, Max, Q, QuerySet, Sum
from django.db.models.functions import NullIf, TruncDate

from jobs.models import Job, JobHourlyStat
from jobs.selectors.stats import list_hourly_stats
from reports.types.base import (
    DATE,
    DATETIME,
    INT,
    PERCENT,
    SECONDS,
    TEXT,
    BuildContext,
    Chart,
    Column,
    Figure,
    ReportData,
    Table,
    rate,
    rate_or_none,
    seconds,
)

TITLE = "Job activity"
FILTERS = ("queue", "kind")
TOP_FAILING = 10
FAILED_ROWS = 1000
SAMPLE_ERRORS = 3
SUCCEEDED, FAILED, CANCELED = Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELED


def _weighted(value: str, count: str) -> Any:
    return Sum(F(value) * F(count)) / NullIf(Sum(count), 0)


TOTALS = {
    "total": Sum("count"),
    "succeeded": Sum("count", filter=Q(status=SUCCEEDED)),
    "failed": Sum("count", filter=Q(status=FAILED)),
    "canceled": Sum("count", filter=Q(status=CANCELED)),
    "waits": Sum("wait_count"),
    "wait_time": Sum("wait_sum"),
    "wait_p95_est": _weighted("wait_p95", "wait_count"),
    "runs": Sum("run_count"),
    "run_time": Sum("run_sum"),
    "run_p95_est": _weighted("run_p95", "run_count"),
    "run_longest": Max("run_max"),
}


def build(ctx: BuildContext) -> ReportData:
    period = ctx.period
    stats = list_hourly_stats(
        tenant=ctx.tenant,
        start=period.since,
        end=period.until,
        queue=ctx.filters.get("queue", ""),
        kind=ctx.filters.get("kind", ""),
    )
    totals = _clean(stats.aggregate(**TOTALS))
    ctx.progress(20, "Totals counted")
    daily = _daily(stats, ctx)
    ctx.progress(40, "Days counted")
    by_queue = _grouped(stats, ("queue",))
    by_kind = _grouped(stats, ("kind", "queue"))
    ctx.progress(60, "Queues and kinds counted")
    failing = _top_failing(ctx, stats)
    failed = _failed_jobs(ctx)
    ctx.progress(80, "Failures listed")
    return ReportData(
        title=TITLE,
        tenant_name=ctx.tenant.name,
        start=period.start,
        end=period.end,
        time_zone=period.time_zone,
        filters={key: ctx.filters[key] for key in FILTERS if ctx.filters.get(key)},
        generated_at=ctx.generated_at,
        figures=_figures(totals, daily),
        charts=_charts(daily),
        tables=[
            _daily_table(daily),
            _group_table("queues", "By queue", [Column("Queue")], by_queue),
            _group_table("kinds", "By kind", [Column("Kind"), Column("Queue")], by_kind),
            failing,
            failed,
        ],
        notes=[
            "Jobs count on the day they were created. Wait is from enqueued to started, run "
            "from started to finished; p95 figures over several hours are estimated from the "
            "hourly roll-ups."
        ],
    )


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {key: (value if value is not None else 0) for key, value in row.items()} | {
        key: row[key] for key in ("wait_p95_est", "run_p95_est", "run_longest")
    }


def _average(total: float, count: int) -> float | None:
    return seconds(total / count) if count else None


def _daily(stats: QuerySet[JobHourlyStat], ctx: BuildContext) -> list[dict[str, Any]]:
    rows = (
        stats.annotate(day=TruncDate("hour", tzinfo=ctx.period.zone))
        .values("day")
        .annotate(**TOTALS)
        .order_by("day")
    )
    found = {row["day"]: _clean(dict(row)) for row in rows}
    empty = _clean(dict.fromkeys(TOTALS))
    return [{**empty, **found.get(day, {}), "day": day} for day in ctx.period.days]


def _grouped(stats: QuerySet[JobHourlyStat], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = stats.values(*keys).annotate(**TOTALS).order_by("-total", *keys)
    return [_clean(row) | {key: row[key] for key in keys} for row in rows]


def _figures(totals: dict[str, Any], daily: list[dict[str, Any]]) -> list[Figure]:
    ended = totals["succeeded"] + totals["failed"]
    busiest = max(daily, key=lambda row: row["total"], default=None)
    return [
        Figure("Jobs", totals["total"]),
        Figure("Succeeded", totals["succeeded"]),
        Figure("Failed", totals["failed"]),
        Figure("Canceled", totals["canceled"]),
        Figure("Failure rate", rate(totals["failed"], ended), PERCENT),
        Figure("Average wait", _average(totals["wait_time"], totals["waits"]), SECONDS),
        Figure("Wait p95", seconds(totals["wait_p95_est"]), SECONDS),
        Figure("Average run", _average(totals["run_time"], totals["runs"]), SECONDS),
        Figure("Run p95", seconds(totals["run_p95_est"]), SECONDS),
        Figure(
            "Busiest day",
            f"{busiest['day']:%Y-%m-%d} ({busiest['total']:,})"
            if busiest and busiest["total"]
            else "—",
            TEXT,
        ),
    ]


def _charts(daily: list[dict[str, Any]]) -> list[Chart]:
    labels = [f"{row['day']:%m-%d}" for row in daily]
    return [
        Chart(
            "Jobs per day",
            "bar",
            labels,
            [
                ("Succeeded", [row["succeeded"] for row in daily]),
                ("Failed", [row["failed"] for row in daily]),
                ("Other", [row["total"] - row["succeeded"] - row["failed"] for row in daily]),
            ],
        ),
        Chart(
            "Failure rate per day",
            "line",
            labels,
            [
                (
                    "Failure rate",
                    [
                        rate_or_none(row["failed"], row["succeeded"] + row["failed"])
                        for row in daily
                    ],
                )
            ],
            unit="%",
        ),
    ]


COUNT_COLUMNS = [
    Column("Jobs", INT),
    Column("Succeeded", INT),
    Column("Failed", INT),
    Column("Canceled", INT),
    Column("Failure rate", PERCENT),
]
TIME_COLUMNS = [
    Column("Average wait (s)", SECONDS),
    Column("Wait p95 (s)", SECONDS),
    Column("Average run (s)", SECONDS),
    Column("Run p95 (s)", SECONDS),
    Column("Longest run (s)", SECONDS),
]


def _counts(row: dict[str, Any]) -> list[Any]:
    ended = row["succeeded"] + row["failed"]
    return [
        row["total"],
        row["succeeded"],
        row["failed"],
        row["canceled"],
        rate(row["failed"], ended),
    ]


def _times(row: dict[str, Any]) -> list[Any]:
    return [
        _average(row["wait_time"], row["waits"]),
        seconds(row["wait_p95_est"]),
        _average(row["run_time"], row["runs"]),
        seconds(row["run_p95_est"]),
        seconds(row["run_longest"]),
    ]


def _daily_table(daily: list[dict[str, Any]]) -> Table:
    return Table(
        "days",
        "Jobs per day",
        [Column("Day", DATE), *COUNT_COLUMNS, *TIME_COLUMNS[:1], *TIME_COLUMNS[2:3]],
        [[row["day"], *_counts(row), *_times(row)[0:1], *_times(row)[2:3]] for row in daily],
    )


def _group_table(
    name: str, title: str, key_columns: list[Column], rows: list[dict[str, Any]]
) -> Table:
    keys = ["queue"] if len(key_columns) == 1 else ["kind", "queue"]
    return Table(
        name,
        title,
        [*key_columns, *COUNT_COLUMNS, *TIME_COLUMNS],
        [[*(row[key] for key in keys), *_counts(row), *_times(row)] for row in rows],
    )


def _failed_rows(ctx: BuildContext) -> QuerySet[Job]:
    jobs = Job.objects.for_tenant(ctx.tenant).filter(
        status=FAILED, created_at__gte=ctx.period.since, created_at__lt=ctx.period.until
    )
    for key in FILTERS:
        if ctx.filters.get(key):
            jobs = jobs.filter(**{key: ctx.filters[key]})
    return jobs.order_by("-created_at")


def _top_failing(ctx: BuildContext, stats: QuerySet[JobHourlyStat]) -> Table:
    total_failed = stats.filter(status=FAILED).aggregate(n=Sum("count"))["n"] or 0
    kinds = (
        stats.filter(status=FAILED)
        .values("kind")
        .annotate(failed=Sum("count"))
        .order_by("-failed", "kind")[:TOP_FAILING]
    )
    rows = []
    for row in kinds:
        errors = (
            _failed_rows(ctx)
            .filter(kind=row["kind"])
            .values_list("error_type", "error_message")[:SAMPLE_ERRORS]
        )
        samples = "; ".join(
            dict.fromkeys(f"{kind}: {message[:120]}".strip(": ") for kind, message in errors)
        )
        rows.append([row["kind"], row["failed"], rate(row["failed"], total_failed), samples])
    return Table(
        "failing_kinds",
        "Top failing kinds",
        [
            Column("Kind"),
            Column("Failed", INT),
            Column("Share of failures", PERCENT),
            Column("Sample errors"),
        ],
        rows,
    )


def _failed_jobs(ctx: BuildContext) -> Table:
    jobs = _failed_rows(ctx).values_list(
        "created_at", "kind", "queue", "attempt", "error_type", "error_message", "id"
    )[:FAILED_ROWS]
    zone = ctx.period.zone
    return Table(
        "failed_jobs",
        f"Failed jobs (latest {FAILED_ROWS:,})",
        [
            Column("Created", DATETIME),
            Column("Kind"),
            Column("Queue"),
            Column("Attempts", INT),
            Column("Error"),
            Column("Job id", printed=False),
        ],
        [
            [
                created.astimezone(zone).replace(tzinfo=None),
                kind,
                queue,
                attempt,
                f"{error_type}: {message[:160]}".strip(": "),
                str(job_id),
            ]
            for created, kind, queue, attempt, error_type, message, job_id in jobs
        ],
    )
