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


RECONCILE_KIND = "jobs.reconcile_jobs"


def _check_reconciler() -> dict[str, str]:
    """Degraded when the reconcile job has not completed a pass for `reconcile_max_age_seconds`:
    nothing would hand pending jobs over again or rescue a dead worker's job."""
    max_age = settings.CONVEYOR_HEALTH["reconcile_max_age_seconds"]
    runs = Job.objects.filter(kind=RECONCILE_KIND).order_by("-created_at")
    last = runs.filter(status=Job.Status.SUCCEEDED).values_list("finished_at", flat=True).first()
    since = last or runs.values_list("created_at", flat=True).last()
    if since is None:
        return _component("reconciler", HEALTHY, "No reconcile job has been scheduled yet.")
    age = (timezone.now() - since).total_seconds()
    if age <= max_age:
        return _component("reconciler", HEALTHY, f"Last pass completed {age:.0f} s ago.")
    done = f"completed {age:.0f} s ago" if last else "never completed"
    return _component(
        "reconciler", DEGRADED, f"The last reconcile pass {done} (threshold {max_age} s)."
    )


def health_report() -> dict[str, Any]:
    """healthy, degraded or error, with the reason per component (PRODUCT.md §7)."""
    components = [_check_database(), _check_redis()]
    if components[1]["status"] == HEALTHY:
        try:
            components += _check_queues(queue_stats())
        except RedisError as error:
            components.append(_component("queues", ERROR, f"Redis failed mid-check: {error}"))
    if components[0]["status"] == HEALTHY:
        components += [_check_failure_rate(), _check_reconciler()]
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
