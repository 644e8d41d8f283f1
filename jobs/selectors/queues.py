"""Reads of the live system: queue and worker state from Redis, health, readiness."""

import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q
from django.utils import timezone
from redis.exceptions import RedisError

from jobs.models import Job
from jobs.transport import queueing
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def _throughputs(*, minutes: int = 5, tenant: Tenant | None = None) -> dict[str, float]:
    """Jobs succeeded per minute over the last `minutes`, per queue, in one query (of `tenant`'s
    jobs only, when given)."""
    since = timezone.now() - timedelta(minutes=minutes)
    jobs = Job.objects.all() if tenant is None else Job.objects.for_tenant(tenant)
    done = (
        jobs.filter(finished_at__gte=since, status=Job.Status.SUCCEEDED)
        .order_by()
        .values_list("queue")
        .annotate(n=Count("pk"))
    )
    return {queue: round(n / minutes, 2) for queue, n in done}


def _listening() -> tuple[dict[str, int], dict[str, int]]:
    """Per queue: the workers listening to it, and their slots (a worker serving several
    queues counts its slots for each)."""
    listening: dict[str, int] = {}
    slots: dict[str, int] = {}
    for worker in queueing.workers():
        for name in worker["queues"]:
            listening[name] = listening.get(name, 0) + 1
            slots[name] = slots.get(name, 0) + worker["concurrency"]
    return listening, slots


def queue_stats() -> list[dict[str, Any]]:
    """Per queue: live counts from Redis, workers listening and their slots, paused flag,
    oldest wait, rate. A worker serving several queues counts its slots for each of them."""
    paused = queueing.paused_queues()
    listening, slots = _listening()
    running = queueing.running_by_queue()
    now = timezone.now()
    throughputs = _throughputs()
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
                "throughput_per_minute": throughputs.get(name, 0.0),
            }
        )
    return stats


def tenant_queue_stats(tenant: Tenant) -> list[dict[str, Any]]:
    """`queue_stats` as a tenant sees it: every count is of its own jobs, read from PostgreSQL.

    Waiting, started, scheduled (retrying included), deferred and failed are its rows in those
    statuses now; finished and canceled those that ended within the result TTL, as RQ keeps
    them. Workers listening and the paused flag are the queue's own, not anyone's jobs.
    """
    paused = queueing.paused_queues()
    listening, slots = _listening()
    now = timezone.now()
    recent = now - timedelta(seconds=settings.CONVEYOR_RESULT_TTL)
    jobs = Job.objects.for_tenant(tenant).order_by()
    live = jobs.filter(Q(status__in=(*Job.ACTIVE, Job.Status.FAILED)) | Q(finished_at__gte=recent))
    counts: dict[tuple[str, str, str], int] = {
        (queue, status, priority): n
        for queue, status, priority, n in live.values_list("queue", "status", "priority").annotate(
            n=Count("pk")
        )
    }
    oldest = dict(
        jobs.filter(status=Job.Status.QUEUED)
        .values_list("queue")
        .annotate(first=Min("enqueued_at"))
        .values_list("queue", "first")
    )

    throughputs = _throughputs(tenant=tenant)

    def count(queue: str, *statuses: str) -> int:
        return sum(n for (q, status, _), n in counts.items() if q == queue and status in statuses)

    stats = []
    for name in settings.CONVEYOR_QUEUES:
        waiting = {
            priority: sum(
                n
                for (q, status, p), n in counts.items()
                if q == name and p == priority and status in (Job.Status.PENDING, Job.Status.QUEUED)
            )
            for priority in settings.CONVEYOR_PRIORITIES
        }
        first = oldest.get(name)
        stats.append(
            {
                "name": name,
                "waiting": sum(waiting.values()),
                "waiting_by_priority": waiting,
                "started": count(name, Job.Status.STARTED),
                "scheduled": count(name, Job.Status.SCHEDULED, Job.Status.RETRYING),
                "deferred": count(name, Job.Status.DEFERRED),
                "failed": count(name, Job.Status.FAILED),
                "finished": count(name, Job.Status.SUCCEEDED),
                "canceled": count(name, Job.Status.CANCELED),
                "workers": listening.get(name, 0),
                "slots": slots.get(name, 0),
                "busy_slots": count(name, Job.Status.STARTED),
                "paused": name in paused,
                "oldest_waiting_seconds": round((now - first).total_seconds(), 1)
                if first
                else None,
                "throughput_per_minute": throughputs.get(name, 0.0),
            }
        )
    return stats


def tenant_workers(tenant: Tenant) -> list[dict[str, Any]]:
    """`list_workers` as a tenant sees it: running jobs only if they are the tenant's, and the
    tenant's own jobs each worker finished (of the rows kept) in place of its totals."""
    workers = list_workers()
    names = [worker["name"] for worker in workers]
    jobs = Job.objects.for_tenant(tenant).order_by()
    running = {
        str(job_id)
        for worker in workers
        for job_id in [*worker.get("running_job_ids", []), worker.get("current_job_id")]
        if job_id
    }
    own = {str(pk) for pk in jobs.filter(pk__in=_uuids(running)).values_list("pk", flat=True)}
    done = dict.fromkeys(((name, status) for name in names for status in ("s", "f")), 0)
    ended = jobs.filter(worker_name__in=names, status__in=(Job.Status.SUCCEEDED, Job.Status.FAILED))
    for name, status, n in ended.values_list("worker_name", "status").annotate(n=Count("pk")):
        done[(name, "s" if status == Job.Status.SUCCEEDED else "f")] = n
    for worker in workers:
        if "running_job_ids" in worker:
            worker["running_job_ids"] = [
                job_id for job_id in worker["running_job_ids"] if str(job_id) in own
            ]
        if str(worker.get("current_job_id")) not in own:
            worker["current_job_id"] = None
        worker["successful_jobs"] = done[(worker["name"], "s")]
        worker["failed_jobs"] = done[(worker["name"], "f")]
    return workers


def _uuids(values: set[str]) -> list[UUID]:
    found = []
    for value in values:
        try:
            found.append(UUID(str(value)))
        except ValueError:
            continue
    return found


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


def _component(name: str, status: str, reason: str, **figures: Any) -> dict[str, Any]:
    """One component's verdict; `figures` are the numbers behind it, kept with each check."""
    return {"name": name, "status": status, "reason": reason, "figures": figures}


def _check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        return _component("database", ERROR, f"PostgreSQL unreachable: {error}")
    return _component("database", HEALTHY, "PostgreSQL answers.")


def _check_redis() -> dict[str, Any]:
    try:
        queueing.ping()
    except RedisError as error:
        return _component("redis", ERROR, f"Redis unreachable: {error}")
    return _component("redis", HEALTHY, "Redis answers.")


def _check_queues(stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    limits = settings.CONVEYOR_HEALTH
    checks = []
    for queue in stats:
        name, waiting = queue["name"], queue["waiting"]
        max_wait = settings.CONVEYOR_QUEUES[name].get("max_wait", limits["max_wait_seconds"])
        oldest = queue["oldest_waiting_seconds"]
        figures = {
            "waiting": waiting,
            "workers": queue["workers"],
            "paused": queue["paused"],
            "oldest_waiting_seconds": oldest,
        }
        if waiting and not queue["workers"] and not queue["paused"]:
            reason = f"{waiting} waiting, no live worker."
            checks.append(_component(f"queue:{name}", ERROR, reason, **figures))
        elif oldest is not None and oldest > max_wait and not queue["paused"]:
            reason = f"Oldest waiting job is {oldest:.0f} s old (threshold {max_wait} s)."
            checks.append(_component(f"queue:{name}", DEGRADED, reason, **figures))
        else:
            checks.append(_component(f"queue:{name}", HEALTHY, f"{waiting} waiting.", **figures))
    return checks


def _check_failure_rate(tenant: Tenant | None = None) -> dict[str, Any]:
    limits = settings.CONVEYOR_HEALTH
    since = timezone.now() - timedelta(minutes=15)
    jobs = Job.objects.all() if tenant is None else Job.objects.for_tenant(tenant)
    counts = jobs.filter(finished_at__gte=since).aggregate(
        succeeded=Count("pk", filter=Q(status=Job.Status.SUCCEEDED)),
        failed=Count("pk", filter=Q(status=Job.Status.FAILED)),
    )
    ended = counts["succeeded"] + counts["failed"]
    rate = counts["failed"] / ended if ended else 0.0
    reason = f"{rate:.0%} of {ended} jobs failed in the last 15 minutes."
    figures = {"ended": ended, "failed": counts["failed"], "rate": round(rate, 4)}
    if ended < limits["min_jobs_for_failure_rate"]:
        return _component("failure_rate", HEALTHY, reason + " Too few to judge.", **figures)
    if rate >= limits["failure_rate_error"]:
        return _component("failure_rate", ERROR, reason, **figures)
    if rate >= limits["failure_rate_degraded"]:
        return _component("failure_rate", DEGRADED, reason, **figures)
    return _component("failure_rate", HEALTHY, reason, **figures)


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


def health_report(tenant: Tenant | None = None) -> dict[str, Any]:
    """healthy, degraded or error, with the reason per component (PRODUCT.md §7).

    With `tenant`, the queues' waits and the failure rate are of that tenant's jobs only.
    """
    components = [_check_database(), _check_redis()]
    if components[1]["status"] == HEALTHY:
        try:
            stats = queue_stats() if tenant is None else tenant_queue_stats(tenant)
            components += _check_queues(stats)
        except RedisError as error:
            components.append(_component("queues", ERROR, f"Redis failed mid-check: {error}"))
    if components[0]["status"] == HEALTHY:
        components.append(_check_failure_rate(tenant))
        if tenant is None:  # the reconciler serves every tenant: an operator's concern
            components.append(_check_reconciler())
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
