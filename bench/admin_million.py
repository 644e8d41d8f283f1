"""The admin's job list on 1,000,000 rows: unfiltered, with each single filter, and more.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/conveyor_admin_bench \\
    REDIS_URL=redis://127.0.0.1:6379/13 python -m bench.admin_million [--rows N] [--repeat R]

Creates the database if it is missing, migrates it, and fills it once (INSERT … SELECT over
generate_series, server-side: about a minute for a million jobs and their logs; run again and
the rows are reused). Then times each page with Django's test client as a logged-in superuser
(and one tenant admin): the median of R requests after one warm-up, rendering included.
Use a spare database: its jobs are replaced when their number differs from --rows.
"""

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench import standalone

standalone.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from jobs.models import Job  # noqa: E402
from tenants.models import Membership, Role, Tenant  # noqa: E402

TENANTS = 20
KINDS = {  # kind: (queue, share of rows in ‰)
    "communications.send_email": ("email", 400),
    "communications.send_sms": ("messaging", 150),
    "communications.send_whatsapp": ("messaging", 100),
    "webhooks.deliver": ("webhooks", 150),
    "notifications.notify": ("notifications", 120),
    "jobs.noop": ("default", 40),
    "contacts.import_contacts": ("imports", 15),
    "reports.build_report": ("reports", 15),
    "jobs.reconcile_jobs": ("maintenance", 9),
    "jobs.clean_up_jobs": ("maintenance", 1),
}
STATUSES = {  # status: share in ‰
    "succeeded": 880,
    "failed": 40,
    "canceled": 20,
    "queued": 25,
    "scheduled": 10,
    "retrying": 10,
    "deferred": 5,
    "started": 5,
    "pending": 5,
}
PRIORITIES = {"normal": 850, "high": 100, "low": 40, "critical": 10}


def _case(column_expr: str, shares: dict[str, Any], value: Callable[[str, Any], str]) -> str:
    """A CASE picking a value by cumulative share (‰) of a random number in [0, 1000)."""
    cases, upto = [], 0
    for key, share in shares.items():
        weight = share[1] if isinstance(share, tuple) else share
        upto += weight
        cases.append(f"WHEN {column_expr} < {upto} THEN {value(key, share)}")
    return "CASE " + " ".join(cases) + " END"


def fill(rows: int) -> None:
    """Replace every job and log with `rows` jobs spread over 30 days, and one log each."""
    tenants = list(Tenant.objects.filter(slug__startswith="bench-").values_list("pk", flat=True))
    kind = _case("r.k", KINDS, lambda name, spec: f"'{name}'")
    queue = _case("r.k", KINDS, lambda name, spec: f"'{spec[0]}'")
    status = _case("r.s", STATUSES, lambda name, share: f"'{name}'")
    priority = _case("r.p", PRIORITIES, lambda name, share: f"'{name}'")
    finished = "status IN ('succeeded', 'failed', 'canceled')"
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_joblog, jobs_job_depends_on, jobs_job CASCADE")
        cursor.execute(
            f"""
            INSERT INTO jobs_job (
                id, tenant_id, kind, queue, priority, status, payload, progress, progress_message,
                error_type, error_message, error_traceback, attempt, max_attempts, timeout,
                idempotency_key, created_at, enqueued_at, started_at, finished_at, worker_name,
                has_dependents
            )
            SELECT id, tenant_id, kind, queue, priority, status,
                   jsonb_build_object('to', 'user' || n || '@example.com', 'n', n,
                                      'api_key', 'secret'),
                   CASE WHEN {finished} THEN 100 ELSE 0 END, '',
                   CASE WHEN status = 'failed' THEN 'PermanentError' ELSE '' END,
                   CASE WHEN status = 'failed' THEN 'provider said 400' ELSE '' END,
                   CASE WHEN status = 'failed' THEN repeat('Traceback line\n', 40) ELSE '' END,
                   CASE WHEN status IN ('queued', 'pending', 'scheduled', 'deferred') THEN 0
                        ELSE 1 END,
                   3, 60, '', created_at, created_at + interval '1 second',
                   CASE WHEN status NOT IN ('queued', 'pending', 'scheduled', 'deferred')
                        THEN created_at + interval '2 seconds' END,
                   CASE WHEN {finished} THEN created_at + interval '3 seconds' END,
                   CASE WHEN status <> 'pending' THEN 'bench-worker' ELSE '' END,
                   false
            FROM (
                SELECT gen_random_uuid() AS id, n,
                       (%s::int[])[1 + (n %% {len(tenants)})] AS tenant_id,
                       {kind} AS kind, {queue} AS queue, {status} AS status,
                       {priority} AS priority,
                       now() - (random() * interval '30 days') AS created_at
                FROM generate_series(1, %s) AS n,
                     LATERAL (SELECT floor(random() * 1000 + n * 0) AS k,
                                     floor(random() * 1000 + n * 0) AS s,
                                     floor(random() * 1000 + n * 0) AS p) AS r
            ) AS generated
            """,
            [tenants, rows],
        )
        cursor.execute(
            """
            INSERT INTO jobs_joblog (job_id, tenant_id, created_at, level, event, message, data)
            SELECT id, tenant_id, created_at, 'info', 'enqueued', 'Enqueued.', '{}'::jsonb
            FROM jobs_job
            """
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs_job")
        cursor.execute("VACUUM ANALYZE jobs_joblog")


def prepare(rows: int) -> tuple[User, User]:
    call_command("migrate", verbosity=0)
    for i in range(TENANTS):
        Tenant.objects.get_or_create(slug=f"bench-{i}", defaults={"name": f"Bench {i}"})
    operator, _ = User.objects.get_or_create(
        username="bench-operator", defaults={"is_staff": True, "is_superuser": True}
    )
    staff, _ = User.objects.get_or_create(
        username="bench-tenant-admin", defaults={"is_staff": True}
    )
    Membership.objects.get_or_create(
        user=staff, tenant=Tenant.objects.get(slug="bench-0"), defaults={"role": Role.ADMIN}
    )
    if Job.objects.count() != rows:
        started = time.perf_counter()
        fill(rows)
        print(f"filled {rows:,} jobs and logs in {time.perf_counter() - started:.1f} s")
    return operator, staff


def pages() -> list[tuple[str, str]]:
    job = Job.objects.filter(status="failed", tenant__slug="bench-0").first()
    one_tenant = Tenant.objects.get(slug="bench-0").pk
    assert job is not None
    today = time.strftime("%Y-%m-%d")
    year, month, day = (int(part) for part in today.split("-"))
    changelist = "/admin/jobs/job/"
    return [
        ("unfiltered", changelist),
        ("page 40", changelist + "?p=40"),
        ("oldest first (sorted by created)", changelist + "?o=8"),
        ("status = failed", changelist + "?status__exact=failed"),
        ("status = started (0.5 %)", changelist + "?status__exact=started"),
        ("queue = email", changelist + "?queue=email"),
        ("queue = maintenance (1 %)", changelist + "?queue=maintenance"),
        ("kind = communications.send_sms", changelist + "?kind=communications.send_sms"),
        ("kind = jobs.clean_up_jobs (0.1 %)", changelist + "?kind=jobs.clean_up_jobs"),
        ("tenant = one of 20", changelist + f"?tenant={one_tenant}"),
        ("priority = critical (1 %)", changelist + "?priority__exact=critical"),
        ("priority = normal", changelist + "?priority__exact=normal"),
        ("created: past 7 days", changelist + "?created_at__gte=" + _days_ago(7)),
        ("finished: today", changelist + "?finished_at__gte=" + _days_ago(0)),
        (
            "date hierarchy: this month",
            changelist + f"?created_at__year={year}&created_at__month={month}",
        ),
        (
            "date hierarchy: today",
            changelist + f"?created_at__year={year}"
            f"&created_at__month={month}&created_at__day={day}",
        ),
        ("search: a job id", changelist + f"?q={job.pk}"),
        ("search: payload key=value", changelist + "?q=to%3Duser42%40example.com"),
        ("search: free text (payload scan)", changelist + "?q=user4242%40"),
        ("job detail", f"/admin/jobs/job/{job.pk}/change/"),
        ("job logs: unfiltered", "/admin/jobs/joblog/"),
        ("job logs: event = enqueued", "/admin/jobs/joblog/?event__exact=enqueued"),
        ("job logs: search a job id", f"/admin/jobs/joblog/?q={job.pk}"),
    ]


def _days_ago(days: int) -> str:
    from datetime import timedelta

    from django.utils import timezone

    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return (start - timedelta(days=days)).isoformat().replace("+", "%2B")


def timed(client: Client, url: str, repeat: int) -> tuple[float, int]:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, response.status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    operator, staff = prepare(args.rows)
    clients = {}
    for who, user in (("superuser", operator), ("tenant admin", staff)):
        clients[who] = Client(HTTP_HOST="localhost")
        clients[who].force_login(user)
    print(f"| page ({Job.objects.count():,} jobs) | superuser, ms | tenant admin, ms |")
    print("| --- | ---: | ---: |")
    for name, url in pages():
        ms = [timed(clients[who], url, args.repeat)[0] for who in ("superuser", "tenant admin")]
        print(f"| {name} | {ms[0]:.0f} | {ms[1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
