"""Stats API, admin job list and the scheduled health check on 1,000,000 job rows; run by
`python -m bench` in its own process.

    DATABASE_URL=…/conveyor_admin_bench python -m bench.million [--rounds R] [--quick]

The rows come from `bench.admin_million` (created once, about 4 to 7 minutes; reused after).
With `--quick` an unfilled database is skipped rather than filled. Rows older than an hour are
moved forward in time first, so "the last 24 hours" holds as many jobs as on the day of the
fill. Prints one JSON line per figure: the name and the milliseconds of each request (or
another unit, named).
"""

import argparse
import json
import time

from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.test import Client

from bench import admin_million  # sets up Django on DATABASE_URL's database
from jobs.models import Job

ROWS = 1_000_000


def estimated_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'jobs_job'")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def bring_forward() -> None:
    """Shift every job and log so that the newest is from now, as on the day of the fill."""
    newest = Job.objects.aggregate(newest=Max("created_at"))["newest"]
    if newest is None or time.time() - newest.timestamp() < 3600:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT now() - %s", [newest])
        (gap,) = cursor.fetchone()
        cursor.execute(
            "UPDATE jobs_job SET created_at = created_at + %s, enqueued_at = enqueued_at + %s,"
            " started_at = started_at + %s, finished_at = finished_at + %s",
            [gap] * 4,
        )
        cursor.execute("UPDATE jobs_joblog SET created_at = created_at + %s", [gap])
        cursor.execute("VACUUM ANALYZE jobs_job")
        cursor.execute("VACUUM ANALYZE jobs_joblog")


def timed(client: Client, url: str, rounds: int, headers: dict[str, str]) -> list[float]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, (url, response.status_code)
    values = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        values.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return values


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick and estimated_rows() < ROWS * 0.9:
        skipped = "the 1,000,000 jobs are not there yet; run once without --quick to create them"
        print(json.dumps({"skipped": skipped}))
        return
    operator, staff = admin_million.prepare(ROWS)
    if not args.quick:
        bring_forward()
    tenant = "bench-0"
    clients = {}
    for who, user in (("superuser", operator), ("tenant admin", staff)):
        clients[who] = Client(HTTP_HOST="localhost")
        clients[who].force_login(user)
    cases = [
        (
            "GET /api/v1/jobs/stats/ (24 h; tenant of 50,000), 1,000,000 jobs",
            clients["tenant admin"],
            "/api/v1/jobs/stats/",
        ),
        (
            "admin job list, status = failed, superuser, 1,000,000 jobs",
            clients["superuser"],
            "/admin/jobs/job/?status__exact=failed",
        ),
        (
            "admin job list, status = failed, tenant admin, 1,000,000 jobs",
            clients["tenant admin"],
            "/admin/jobs/job/?status__exact=failed",
        ),
    ]
    for name, client, url in cases:
        values = timed(client, url, args.rounds, {"X-Tenant": tenant})
        print(json.dumps({"name": name, "values": values}), flush=True)
    health_figures(args.rounds)


def health_figures(rounds: int) -> None:
    """One scheduled health check (stored), then the built-in rules evaluated on it."""
    # Imported here, like jobs.models above: only once admin_million has set Django up.
    from alerts.models import AlertRule
    from alerts.services.incidents import evaluate_rules
    from alerts.services.rules import ensure_builtin_rules
    from jobs.services.health import record_health_check

    ensure_builtin_rules()
    AlertRule.objects.exclude(builtin="").update(enabled=True)
    evaluate_rules(record_health_check())  # warm-up; opens what is wrong once
    checks, evaluations = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        check = record_health_check()
        checks.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        evaluate_rules(check)
        evaluations.append((time.perf_counter() - started) * 1000)
    name = "health check, stored (scheduler, every 30 s), 1,000,000 jobs"
    print(json.dumps({"name": name, "values": checks, "target": "< 100 ms"}), flush=True)
    name = "evaluate the 8 built-in alert rules on it, 1,000,000 jobs"
    print(json.dumps({"name": name, "values": evaluations, "target": "< 100 ms"}), flush=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT avg(pg_column_size(c.*)) FROM jobs_healthcheck c")
        (row_bytes,) = cursor.fetchone()
    per_day = 86400 / settings.CONVEYOR_ALERTS["check_seconds"]
    print(
        json.dumps(
            {
                "name": "health checks kept per day",
                "unit": "rows",
                "values": [per_day] * rounds,
                "target": "",
            }
        ),
        flush=True,
    )
    print(
        json.dumps(
            {
                "name": "size of one stored health check",
                "unit": "bytes",
                "values": [float(row_bytes)] * rounds,
                "target": "",
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
