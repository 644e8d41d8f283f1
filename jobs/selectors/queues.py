"""Reads of the live system: queue and worker state from Redis, health, readiness."""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone
from redis.exceptions import RedisError

from jobs.models import Job
from jobs.transport import queueing
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def _throughput(queue: str, *, minutes: int = 5) -> float:
    since = timezone.now() - timedelta(minutes=minutes)
    done = Job.objects.filter(
        finished_at__gte=since, queue=queue, status=Job.Status.SUCCEEDED
    ).count()
    return round(done / minutes, 2)


def queue_stats() -> list[dict[str, Any]]:
    """Per queue: live counts from Redis, workers listening and their slots, paused flag,
    oldest wait, rate. A worker serving several queues counts its slots for each of them."""
    paused = queueing.paused_queues()
    listening: dict[str, int] = {}
    slots: dict[str, int] = {}
    for worker in queueing.workers():
        for name in worker["queues"]:
            listening[name] = listening.get(name, 0) + 1
            slots[name] = slots.get(name, 0) + worker["concurrency"]
    running = queueing.running_by_queue()
    now = timezone.now()
    stats = []
    for name in settings.CONVEYOR_QUEUES:
        oldest = queueing.oldest_waiting_since(name)
        stats.append(
            {
                "name": name,
                **queueing.queue_counts(name),
                "waiting_by_priority": queueing.waiting_by_priority(name),
                "workers": listening.get(name, 0),
                "slots": slots.get(name, 0),
                "busy_slots": len(running.get(name, ())),
                "paused": name in paused,
                "oldest_waiting_seconds": round((now - oldest).total_seconds(), 1)
                if oldest
                else None,
                "throughput_per_minute": _throughput(name),
            }
        )
    return stats


def list_workers() -> list[dict[str, Any]]:
    """Workers with their state; `stale` when the last heartbeat is older than the worker TTL."""
    cutoff = timezone.now() - timedelta(seconds=settings.CONVEYOR_WORKER_TTL)
    workers = queueing.workers()
    for worker in workers:
        heartbeat: datetime | None = worker["last_heartbeat"]
        worker["stale"] = heartbeat is None or heartbeat < cutoff
    return sorted(workers, key=lambda worker: worker["name"])


# --- Health -----------------------------------------------------------------------------------

HEALTHY, DEGRADED, ERROR = "healthy", "degraded", "error"
_RANK = {HEALTHY: 0, DEGRADED: 1, ERROR: 2}


def _component(name: str, status: str, reason: str) -> dict[str, str]:
    return {"name": name, "status": status, "reason": reason}


def _check_database() -> dict[str, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        return _component("database", ERROR, f"PostgreSQL unreachable: {error}")
    return _component("database", HEALTHY, "PostgreSQL answers.")


def _check_redis() -> dict[str, str]:
    try:
        queueing.ping()
    except RedisError as error:
        return _component("redis", ERROR, f"Redis unreachable: {error}")
    return _component("redis", HEALTHY, "Redis answers.")


def _check_queues(stats: list[dict[str, Any]]) -> list[dict[str, str]]:
    limits = settings.CONVEYOR_HEALTH
    checks = []
    for queue in stats:
        name, waiting = queue["name"], queue["waiting"]
        max_wait = settings.CONVEYOR_QUEUES[name].get("max_wait", limits["max_wait_seconds"])
        oldest = queue["oldest_waiting_seconds"]
        if waiting and not queue["workers"] and not queue["paused"]:
            checks.append(_component(f"queue:{name}", ERROR, f"{waiting} waiting, no live worker."))
        elif oldest is not None and oldest > max_wait and not queue["paused"]:
            reason = f"Oldest waiting job is {oldest:.0f} s old (threshold {max_wait} s)."
            checks.append(_component(f"queue:{name}", DEGRADED, reason))
        else:
            checks.append(_component(f"queue:{name}", HEALTHY, f"{waiting} waiting."))
    return checks


def _check_failure_rate() -> dict[str, str]:
    limits = settings.CONVEYOR_HEALTH
    since = timezone.now() - timedelta(minutes=15)
    counts = Job.objects.filter(finished_at__gte=since).aggregate(
        succeeded=Count("pk", filter=Q(status=Job.Status.SUCCEEDED)),
        failed=Count("pk", filter=Q(status=Job.Status.FAILED)),
    )
    ended = counts["succeeded"] + counts["failed"]
    rate = counts["failed"] / ended if ended else 0.0
    reason = f"{rate:.0%} of {ended} jobs failed in the last 15 minutes."
    if ended < limits["min_jobs_for_failure_rate"]:
        return _component("failure_rate", HEALTHY, reason + " Too few to judge.")
    if rate >= limits["failure_rate_error"]:
        return _component("failure_rate", ERROR, reason)
    if rate >= limits["failure_rate_degraded"]:
        return _component("failure_rate", DEGRADED, reason)
    return _component("failure_rate", HEALTHY, reason)


def health_report() -> dict[str, Any]:
    """healthy, degraded or error, with the reason per component (PRODUCT.md §7)."""
    components = [_check_database(), _check_redis()]
    if components[1]["status"] == HEALTHY:
        try:
            components += _check_queues(queue_stats())
        except RedisError as error:
            components.append(_component("queues", ERROR, f"Redis failed mid-check: {error}"))
    if components[0]["status"] == HEALTHY:
        components.append(_check_failure_rate())
    status = max((c["status"] for c in components), key=_RANK.__getitem__)
    return {"status": status, "components": components, "checked_at": timezone.now()}


# --- Read helpers for the API (jobs/api) ------------------------------------------------------


def readiness() -> dict[str, Any]:
    """Whether this process can serve: PostgreSQL and Redis answer (for load balancers)."""
    components = [_check_database(), _check_redis()]
    ready = all(component["status"] == HEALTHY for component in components)
    return {"status": "ready" if ready else "unavailable", "components": components}


# --- Read helpers for the admin's queues dashboard (jobs/admin/dashboard.py) -----------------

DASHBOARD_STATUSES = (*Job.ACTIVE, Job.Status.FAILED)


def job_counts_by_queue(*, tenant_ids: list[int] | None) -> dict[str, dict[str, int]]:
    """Queue → status → how many jobs wait, run or sit dead-lettered (failed), from PostgreSQL.

    `tenant_ids` None counts every tenant (operators only). Finished statuses other than failed
    are left out: counting them would scan every row ever kept.
    """
    jobs = Job.objects.filter(status__in=DASHBOARD_STATUSES)
    if tenant_ids is not None:
        jobs = jobs.filter(tenant__in=tenant_ids)
    counts: dict[str, dict[str, int]] = {
        queue: dict.fromkeys(DASHBOARD_STATUSES, 0) for queue in settings.CONVEYOR_QUEUES
    }
    rows = jobs.order_by().values_list("queue", "status").annotate(n=Count("pk"))
    for queue, status, n in rows:
        counts.setdefault(queue, dict.fromkeys(DASHBOARD_STATUSES, 0))[status] = n
    return counts


# --- Per tenant: who waits, who runs, how long they wait --------------------------------------

TENANT_WAIT_WINDOW = timedelta(minutes=15)
OTHER_TENANTS = "other"

_TENANT_BACKLOG_SQL = f"""
WITH live AS (
    SELECT tenant_id, queue,
        count(*) FILTER (WHERE status IN ('pending', 'queued')) AS waiting,
        count(*) FILTER (WHERE status = 'started') AS running
    FROM {Job._meta.db_table}
    WHERE status IN ('pending', 'queued', 'started') {{tenant_filter}}
    GROUP BY tenant_id, queue
), waits AS (
    SELECT tenant_id, queue,
        percentile_cont(0.95) WITHIN GROUP (
            ORDER BY extract(epoch FROM started_at - enqueued_at)
        ) AS wait_p95
    FROM {Job._meta.db_table}
    WHERE created_at >= %(since)s AND started_at IS NOT NULL AND enqueued_at IS NOT NULL
        {{tenant_filter}}
    GROUP BY tenant_id, queue
)
SELECT coalesce(live.tenant_id, waits.tenant_id), coalesce(live.queue, waits.queue),
    coalesce(waiting, 0), coalesce(running, 0), wait_p95
FROM live FULL JOIN waits ON live.tenant_id = waits.tenant_id AND live.queue = waits.queue
"""


def tenant_backlog(*, tenant_ids: list[int] | None = None, top: int = 10) -> list[dict[str, Any]]:
    """Per tenant and queue: jobs waiting (pending or queued), running, and the p95 wait of
    jobs enqueued in the last 15 minutes that have started; from PostgreSQL.

    `tenant_ids` None covers every tenant (operators): the `top` tenants by backlog are listed,
    the rest summed as one row whose tenant is "other" (its p95 is the highest among them).
    Rows are ordered by backlog, largest first.
    """
    tenant_filter = "AND tenant_id = ANY(%(tenants)s)" if tenant_ids is not None else ""
    sql = _TENANT_BACKLOG_SQL.format(tenant_filter=tenant_filter)
    params: dict[str, Any] = {
        "since": timezone.now() - TENANT_WAIT_WINDOW,
        "tenants": tenant_ids or [],
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    totals: dict[int, int] = {}
    for tenant_id, _, waiting, running, _ in rows:
        totals[tenant_id] = totals.get(tenant_id, 0) + waiting + running
    ranked = sorted(totals, key=lambda tenant_id: (-totals[tenant_id], tenant_id))
    shown = set(ranked if tenant_ids is not None else ranked[:top])
    slugs = dict(Tenant.objects.filter(pk__in=shown).values_list("pk", "slug"))
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for tenant_id, queue, waiting, running, wait_p95 in rows:
        name = slugs.get(tenant_id, str(tenant_id)) if tenant_id in shown else OTHER_TENANTS
        row = found.setdefault(
            (name, queue),
            {"tenant": name, "queue": queue, "waiting": 0, "running": 0, "wait_p95_seconds": None},
        )
        row["waiting"] += waiting
        row["running"] += running
        if wait_p95 is not None:
            row["wait_p95_seconds"] = max(row["wait_p95_seconds"] or 0.0, float(wait_p95))
    order = {slugs.get(tenant_id, str(tenant_id)): i for i, tenant_id in enumerate(ranked)}
    return sorted(
        found.values(),
        key=lambda row: (order.get(row["tenant"], len(order)), -row["waiting"], row["queue"]),
    )
