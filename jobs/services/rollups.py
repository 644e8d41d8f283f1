"""Hourly roll-ups of jobs: counts and durations per tenant, queue, kind, status and hour.

`roll_up_jobs` replaces the rows of whole hours in one transaction, so running it again for an
hour changes nothing unless jobs changed. Jobs count in the hour they were created; a job that
finishes later moves between statuses when its hour is rolled up again, which the hourly kind
does for the last `LOOKBACK` hours. `jobs.selectors.stats` reads them for long windows.
"""

from datetime import datetime

from django.db import connection, transaction

from jobs.models import JobHourlyStat
from jobs.selectors.stats import HOUR, floor_hour
from tenants.models import Tenant

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
