"""Reports: a 1,000-row job activity PDF, and a 90-day report over 1,000,000 jobs via roll-ups.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/conveyor_reports_bench \\
    REDIS_URL=redis://127.0.0.1:6379/13 python -m bench.reports [--rounds R] [--rows N] [--pdf-only]

Creates the database if it is missing and migrates it. The tenant `bench-reports` gets
1,000,000 jobs spread over the last 90 days, made once by one server-side INSERT … SELECT over
generate_series (reused by later runs); `bench-reports-pdf` gets 1,000 failed jobs in one day.
Each round runs the report job's body (`generate_report`) in this process, as a worker would:
roll-ups refreshed, data built, file rendered and stored. The roll-up backfill of the 90 days
is timed too, beside the same per-queue-and-kind aggregate read straight from the job rows.
Use a spare database: the two bench tenants' jobs and reports are replaced when they differ.
`--pdf-only` measures the 1,000-row PDF alone, without the 1,000,000 jobs.
"""

import argparse
import statistics
import time
from datetime import timedelta

from bench import standalone

standalone.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count, F, Q  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.table import Figure  # noqa: E402
from jobs.models import Job, JobHourlyStat  # noqa: E402
from jobs.selectors.stats import Percentile, epoch, floor_hour  # noqa: E402
from jobs.transport.workers import preload_modules  # noqa: E402
from reports.models import Report  # noqa: E402
from reports.rollups import roll_up_hours  # noqa: E402
from reports.services import delete_report, generate_report  # noqa: E402
from tenants.models import Tenant  # noqa: E402

ROWS = 1_000_000
DAYS = 90
PDF_ROWS = 1000
KINDS = [
    ("communications.send_email", "email"),
    ("communications.send_sms", "messaging"),
    ("communications.send_whatsapp", "messaging"),
    ("communications.deliver_webhook", "webhooks"),
    ("communications.notify_user", "notifications"),
    ("communications.import_contacts", "imports"),
    ("reports.generate_report", "reports"),
    ("jobs.reconcile_jobs", "maintenance"),
]


def _tenant(slug: str) -> Tenant:
    tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    return tenant


def fill(tenant: Tenant, rows: int) -> None:
    """Replace the tenant's jobs with `rows` jobs over the last 90 days, unless already there."""
    if Job.objects.for_tenant(tenant).count() == rows:
        return
    kinds = "ARRAY[" + ", ".join(f"'{kind}'" for kind, _ in KINDS) + "]"
    queues = "ARRAY[" + ", ".join(f"'{queue}'" for _, queue in KINDS) + "]"
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM jobs_job WHERE tenant_id = %s", [tenant.pk])
        cursor.execute(
            f"""
            INSERT INTO jobs_job (
                id, tenant_id, kind, queue, priority, status, payload, progress, progress_message,
                error_type, error_message, error_traceback, attempt, max_attempts, timeout,
                idempotency_key, created_at, enqueued_at, started_at, finished_at, worker_name,
                has_dependents
            )
            SELECT gen_random_uuid(), %(tenant)s, ({kinds})[k], ({queues})[k], 'normal', status,
                   '{{}}', 100, '',
                   CASE WHEN status = 'failed' THEN 'ProviderError' ELSE '' END,
                   CASE WHEN status = 'failed' THEN 'provider answered 503' ELSE '' END,
                   '', 1, 3, 60, '', created, created,
                   created + wait * interval '1 second',
                   CASE WHEN status <> 'canceled'
                        THEN created + (wait + run) * interval '1 second' END,
                   '', false
            FROM (
                SELECT n, now() - random() * interval '{DAYS} days' AS created,
                       1 + (n %% {len(KINDS)}) AS k,
                       CASE WHEN n %% 25 = 0 THEN 'failed' WHEN n %% 50 = 1 THEN 'canceled'
                            ELSE 'succeeded' END AS status,
                       random() * 5 AS wait, random() * 30 AS run
                FROM generate_series(1, %(rows)s) AS n
            ) AS generated
            """,
            {"tenant": tenant.pk, "rows": rows},
        )
        cursor.execute("ANALYZE jobs_job")


def fill_failures(tenant: Tenant) -> None:
    """1,000 failed jobs yesterday, each with its own error message."""
    if Job.objects.for_tenant(tenant).count() == PDF_ROWS:
        return
    Job.objects.for_tenant(tenant).delete()
    day = floor_hour(timezone.now()) - timedelta(days=1)
    jobs = [
        Job(
            tenant=tenant,
            kind=KINDS[n % len(KINDS)][0],
            queue=KINDS[n % len(KINDS)][1],
            status=Job.Status.FAILED,
            timeout=60,
            attempt=3,
            max_attempts=3,
            enqueued_at=day + timedelta(seconds=n * 60),
            started_at=day + timedelta(seconds=n * 60 + 1),
            finished_at=day + timedelta(seconds=n * 60 + 3),
            error_type="ProviderError",
            error_message=f"provider answered 503 for recipient {n}",
        )
        for n in range(PDF_ROWS)
    ]
    Job.objects.bulk_create(jobs)
    Job.objects.for_tenant(tenant).update(created_at=F("enqueued_at"))
    roll_up_hours(day - timedelta(hours=1), day + timedelta(days=1), tenant=tenant)


def timed_report(
    tenant: Tenant, *, days: int, format: str, cpu: list[float] | None = None
) -> float:
    """Seconds to generate one report of the last `days` days, as the job body does.

    `cpu` collects this process's CPU seconds, which other load on the machine inflates less.
    """
    today = timezone.localdate()
    report = Report.objects.create(
        tenant=tenant,
        type="job_activity",
        format=format,
        parameters={
            "start": (today - timedelta(days=days - 1)).isoformat(),
            "end": today.isoformat(),
            "time_zone": "UTC",
        },
    )
    started, used = time.perf_counter(), time.process_time()
    generate_report(report, progress=lambda percent, message: None)
    seconds = time.perf_counter() - started
    if cpu is not None:
        cpu.append(time.process_time() - used)
    delete_report(report)
    return seconds


def timed_backfill(tenant: Tenant) -> float:
    now = timezone.now()
    started = time.perf_counter()
    roll_up_hours(
        now - timedelta(days=DAYS + 1), floor_hour(now) + timedelta(hours=1), tenant=tenant
    )
    return time.perf_counter() - started


def timed_raw_aggregate(tenant: Tenant) -> float:
    """The report's per-queue-and-kind figures computed from the job rows instead."""
    wait = epoch(F("started_at") - F("enqueued_at"))
    run = epoch(F("finished_at") - F("started_at"))
    started = time.perf_counter()
    list(
        Job.objects.for_tenant(tenant)
        .filter(created_at__gte=timezone.now() - timedelta(days=DAYS))
        .values("queue", "kind")
        .annotate(
            total=Count("pk"),
            failed=Count("pk", filter=Q(status=Job.Status.FAILED)),
            wait_p95=Percentile(wait, 0.95),
            run_p95=Percentile(run, 0.95),
        )
    )
    return time.perf_counter() - started


def measure_pdf(*, rounds: int = 3) -> list[Figure]:
    """The job activity PDF with its 1,000-row failed-jobs table: wall and CPU seconds."""
    call_command("migrate", verbosity=0)
    # As a worker of the reports queue starts: WeasyPrint imported, the process's objects frozen.
    preload_modules(["reports"])

    small = _tenant("bench-reports-pdf")
    fill_failures(small)
    timed_report(small, days=2, format="pdf")  # warm-up: fonts, templates
    cpu: list[float] = []
    wall = [timed_report(small, days=2, format="pdf", cpu=cpu) for _ in range(rounds)]
    return [
        Figure(
            f"job activity PDF, {PDF_ROWS:,} failed-job rows",
            "s",
            wall,
            higher_is_better=False,
            target="< 3 s",
        ),
        Figure(
            f"job activity PDF, {PDF_ROWS:,} failed-job rows (CPU time)",
            "s",
            cpu,
            higher_is_better=False,
            target="< 3 s",
        ),
    ]


def measure(*, rounds: int = 3, rows: int = ROWS) -> list[Figure]:
    pdf_figures = measure_pdf(rounds=rounds)
    large = _tenant("bench-reports")
    fill(large, rows)
    backfill = [timed_backfill(large) for _ in range(rounds)]
    raw = [timed_raw_aggregate(large) for _ in range(rounds)]
    hourly_rows = JobHourlyStat.objects.for_tenant(large).count()
    long_pdf = [timed_report(large, days=DAYS, format="pdf") for _ in range(rounds)]
    long_xlsx = [timed_report(large, days=DAYS, format="xlsx") for _ in range(rounds)]
    millions = f"{rows / 1_000_000:g}M"
    return [
        *pdf_figures,
        Figure(
            f"roll-up backfill, {DAYS} days, {millions} jobs → {hourly_rows:,} hourly rows",
            "s",
            backfill,
            higher_is_better=False,
        ),
        Figure(
            f"job activity PDF, {DAYS} days over {millions} jobs, via roll-ups",
            "s",
            long_pdf,
            baseline_name="per-queue/kind aggregate of the job rows alone",
            baseline_values=raw,
            higher_is_better=False,
        ),
        Figure(
            f"job activity XLSX, {DAYS} days over {millions} jobs, via roll-ups",
            "s",
            long_xlsx,
            higher_is_better=False,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--pdf-only", action="store_true", help="only the 1,000-row PDF")
    args = parser.parse_args()
    figures = (
        measure_pdf(rounds=args.rounds)
        if args.pdf_only
        else measure(rounds=args.rounds, rows=args.rows)
    )
    for figure in figures:
        spread = f"{min(figure.values):.2f}–{max(figure.values):.2f}"
        line = f"{figure.name}: {figure.median:.2f} {figure.unit} ({spread})"
        if figure.baseline_values:
            line += f"; {figure.baseline_name}: {statistics.median(figure.baseline_values):.2f} s"
        print(line + (f"  target {figure.target}" if figure.target else ""))


if __name__ == "__main__":
    main()
