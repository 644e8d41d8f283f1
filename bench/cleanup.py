"""Clean-up of 1,000,000 old jobs and their logs: speed, and how long a batch holds its locks.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/conveyor_cleanup_bench \\
    REDIS_URL=redis://127.0.0.1:6379/13 python -m bench.cleanup [--rows N] [--rounds R] \\
        [--batch-size B]

Each round fills a spare database (created and migrated if missing; its jobs are replaced)
with `rows` jobs finished 100–130 days ago, two log lines each, beside 20,000 recent jobs that
must stay, all with one server-side INSERT … SELECT. Then it runs what `manage.py cleanup_jobs`
runs, with the default batch size, while another thread keeps updating recent jobs and
enqueueing new ones as workers and the API would, timing each of its statements.
"""

import argparse
import threading
import time
from datetime import datetime, timedelta

from bench import standalone

standalone.environment()

from django.utils import timezone  # noqa: E402

from bench.table import Figure  # noqa: E402

ROWS = 1_000_000
RECENT = 20_000
TENANTS = 20


def fill(rows: int) -> None:
    """Replace every job with `rows` old finished jobs (two logs each) and RECENT recent ones."""
    from django.db import connection

    from tenants.models import Tenant

    for i in range(TENANTS):
        Tenant.objects.get_or_create(slug=f"bench-{i}", defaults={"name": f"Bench {i}"})
    tenants = list(Tenant.objects.filter(slug__startswith="bench-").values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_joblog, jobs_job_depends_on, jobs_job CASCADE")
        for count, age in ((rows, "100 days"), (RECENT, "1 day")):
            cursor.execute(
                f"""
                INSERT INTO jobs_job (
                    id, tenant_id, kind, queue, priority, status, payload, progress,
                    progress_message, error_type, error_message, error_traceback, attempt,
                    max_attempts, timeout, idempotency_key, created_at, enqueued_at, started_at,
                    finished_at, worker_name, has_dependents
                )
                SELECT gen_random_uuid(), (%s::int[])[1 + (n %% {len(tenants)})], 'jobs.noop',
                       'default', 'normal', 'succeeded', jsonb_build_object('n', n), 100, '',
                       '', '', '', 1, 3, 60, '', finished - interval '3 seconds',
                       finished - interval '2 seconds', finished - interval '1 second',
                       finished, 'bench-worker', false
                FROM generate_series(1, %s) AS n,
                     LATERAL (SELECT now() - interval '{age}' - random() * interval '30 days'
                                     + n * interval '0') AS f(finished)
                """,
                [tenants, count],
            )
        cursor.execute(
            """
            INSERT INTO jobs_joblog (job_id, tenant_id, created_at, level, event, message, data)
            SELECT id, tenant_id, created_at + step * interval '1 second', 'info',
                   CASE step WHEN 0 THEN 'enqueued' ELSE 'succeeded' END, 'Bench.', '{}'::jsonb
            FROM jobs_job, generate_series(0, 1) AS step
            """
        )
        cursor.execute("VACUUM ANALYZE jobs_job")
        cursor.execute("VACUUM ANALYZE jobs_joblog")


class Writer(threading.Thread):
    """What goes on beside a clean-up: recent jobs updated and new ones enqueued, timed."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.latencies: list[float] = []

    def run(self) -> None:
        from django.db import connection

        from jobs.models import Job
        from tenants.models import Tenant

        tenant = Tenant.objects.get(slug="bench-0")
        recent = list(
            Job.objects.filter(finished_at__gt=_days_ago(10)).values_list("pk", flat=True)[:500]
        )
        n = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            Job.objects.filter(pk=recent[n % len(recent)]).update(progress=n % 100)
            Job.objects.create(tenant=tenant, kind="jobs.noop", queue="default", timeout=60)
            self.latencies.append(time.perf_counter() - started)
            n += 1
            time.sleep(0.01)
        connection.close()


def _days_ago(days: int) -> datetime:
    return timezone.now() - timedelta(days=days)


def measure(*, rounds: int = 1, rows: int = ROWS, batch_size: int | None = None) -> list[Figure]:
    """Figures for deleting `rows` old jobs with their logs, one fresh table per round."""
    standalone.setup()
    from django.conf import settings
    from django.core.management import call_command

    from jobs.services.cleanup import clean_up_jobs

    call_command("migrate", verbosity=0)
    rates, longest, average, writes, batches = [], [], [], [], []
    for _ in range(rounds):
        fill(rows)
        writer = Writer()
        writer.start()
        started = time.perf_counter()
        outcome = clean_up_jobs(batch_size=batch_size)
        elapsed = time.perf_counter() - started
        writer.stop.set()
        writer.join()
        assert outcome.jobs == rows, outcome
        rates.append(outcome.jobs / elapsed)
        longest.append(outcome.longest_batch_seconds * 1000)
        average.append(elapsed / max(outcome.batches, 1) * 1000)
        writes.append(max(writer.latencies) * 1000)
        batches.append(outcome.batches)
    size = batch_size or settings.CONVEYOR_CLEANUP_BATCH_SIZE
    what = f"{rows:,} old jobs and {2 * rows:,} logs, batches of {size:,}"
    return [
        Figure(f"clean-up: jobs deleted per second ({what})", "jobs/s", rates),
        Figure("clean-up: batches", "batches", [float(b) for b in batches]),
        Figure(
            "clean-up: time per batch, finding the next batch included (average)",
            "ms",
            average,
            higher_is_better=False,
        ),
        Figure(
            "clean-up: longest batch, i.e. longest time its row locks were held",
            "ms",
            longest,
            higher_is_better=False,
            target="< 1000 ms",
        ),
        Figure(
            "clean-up: slowest concurrent update + enqueue while it ran",
            "ms",
            writes,
            higher_is_better=False,
            target="< 500 ms",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()
    for figure in measure(rounds=args.rounds, rows=args.rows, batch_size=args.batch_size):
        values = ", ".join(f"{value:,.0f}" for value in figure.values)
        print(f"{figure.name:<90} {figure.median:>10,.0f} {figure.unit}  ({values})")


if __name__ == "__main__":
    main()
