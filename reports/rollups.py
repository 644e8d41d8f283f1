"""Hourly analytics roll-ups: jobs (in `jobs.selectors.stats`) and messages (here), per tenant.

Each roll-up replaces whole hours in one transaction, so re-running an hour changes nothing
unless the underlying rows changed. Messages count in the hour they were created.
"""

import logging
from datetime import datetime, timedelta

from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone

from jobs.selectors.stats import HOUR, LOOKBACK, floor_hour
from jobs.services.rollups import roll_up_jobs
from reports.models import MessageHourlyStat
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# A backfill rolls up this many hours per transaction.
CHUNK = timedelta(days=1)

_INSERT = """
INSERT INTO reports_messagehourlystat (
    tenant_id, hour, channel, status, count, latency_count, latency_sum, latency_max
)
SELECT tenant_id, date_trunc('hour', created_at), channel, status, count(*),
       count(latency), coalesce(sum(latency), 0), max(latency)
FROM (
    SELECT tenant_id, created_at, channel, status,
           extract(epoch FROM sent_at - created_at)::float8 AS latency
    FROM {table}
    WHERE created_at >= %(start)s AND created_at < %(end)s {tenant_filter}
) AS messages
GROUP BY 1, 2, 3, 4
"""


def message_table() -> str | None:
    """The messages table, or None while this release has no Message model."""
    try:
        return apps.get_model("communications", "Message")._meta.db_table
    except LookupError:
        return None


@transaction.atomic
def roll_up_messages(
    start: datetime, end: datetime | None = None, *, tenant: Tenant | None = None
) -> int:
    """Replace the message roll-up rows of the hours from `start` up to `end` (default one hour)."""
    table = message_table()
    if table is None:
        return 0
    start = floor_hour(start)
    end = floor_hour(end) if end is not None else start + HOUR
    stale = MessageHourlyStat.objects.filter(hour__gte=start, hour__lt=end)
    if tenant is not None:
        stale = stale.filter(tenant=tenant)
    stale.delete()
    sql = _INSERT.format(
        table=connection.ops.quote_name(table),
        tenant_filter="AND tenant_id = %(tenant)s" if tenant else "",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"start": start, "end": end, "tenant": tenant.pk if tenant else None})
        return cursor.rowcount


def roll_up_hours(
    start: datetime, end: datetime, *, tenant: Tenant | None = None
) -> dict[str, int]:
    """Roll up jobs and messages for the hours in [start, end), a day per transaction."""
    written = {"hours": 0, "job_rows": 0, "message_rows": 0}
    cursor = floor_hour(start)
    end = floor_hour(end)
    while cursor < end:
        chunk_end = min(cursor + CHUNK, end)
        with transaction.atomic():
            written["job_rows"] += roll_up_jobs(cursor, chunk_end, tenant=tenant)
            written["message_rows"] += roll_up_messages(cursor, chunk_end, tenant=tenant)
        written["hours"] += int((chunk_end - cursor) / HOUR)
        cursor = chunk_end
    return written


def roll_up_analytics(*, since: datetime | None = None) -> dict[str, int]:
    """The hourly run: every tenant's hours from `since` (default `LOOKBACK` ago) to this hour."""
    now = timezone.now()
    start = min(since or now, now - LOOKBACK)
    return roll_up_hours(start, floor_hour(now) + HOUR)


def refresh_recent(*, tenant: Tenant, start: datetime, end: datetime) -> None:
    """Roll up the tenant's unsettled hours inside [start, end), so a report sees them."""
    now = timezone.now()
    recent_start = max(start, now - LOOKBACK)
    recent_end = min(end, floor_hour(now) + HOUR)
    if recent_start < recent_end:
        roll_up_hours(recent_start, recent_end + HOUR - timedelta(microseconds=1), tenant=tenant)
