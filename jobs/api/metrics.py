"""A Prometheus endpoint: queue, worker and health gauges, job counters and timing histograms.

Gauges (jobs by state, waiting by priority, worker slots, workers, each worker's memory, CPU and
its host's load and free disk) are read live from Redis; the job counters and histograms are
totals kept in Redis (`jobs.selectors.metrics`). Per tenant, only slugs and counts: waiting,
running and wait p95 per queue for the top tenants by backlog (CONVEYOR_METRICS_TOP_TENANTS),
the rest summed under tenant="other", so the label's cardinality stays bounded;
CONVEYOR_METRICS_ALL_TENANTS lists every tenant instead. Names follow Prometheus' rules
(README, "Metrics"): `conveyor_<area>_<what>_<unit>`, base units (`_seconds`, `_bytes`),
`_total` on counters only, what varies in labels (`state`, `queue`, `kind`, `priority`,
`tenant`), never in the name, and every family with its HELP and TYPE.
"""

import contextlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from jobs.selectors.metrics import BUCKETS, job_totals
from jobs.selectors.queues import health_report, list_workers, queue_stats, tenant_backlog


def _allowed(request: HttpRequest) -> bool:
    token = settings.CONVEYOR_METRICS_TOKEN
    if not token:
        return True
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(sent, token)


@dataclass
class Family:
    """One metric family: its HELP and TYPE lines, then its samples (never split up)."""

    name: str
    type: str
    help: str
    samples: list[str] = field(default_factory=list)

    def add(self, value: Any, suffix: str = "", **labels: str) -> None:
        shown = f"{{{_labels(**labels)}}}" if labels else ""
        self.samples.append(f"{self.name}{suffix}{shown} {value}")

    def lines(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.type}", *self.samples]


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")

    return ",".join(f'{name}="{escape(str(value))}"' for name, value in labels.items())


# Health as numbers: 0 healthy, 1 degraded, 2 error.
_HEALTH = {"healthy": 0, "degraded": 1, "error": 2}
_QUEUE_STATES = ("waiting", "started", "scheduled", "deferred", "failed", "finished", "canceled")


def _health_families(report: dict[str, Any]) -> list[Family]:
    status = Family(
        "conveyor_health_status", "gauge", "Overall health: 0 healthy, 1 degraded, 2 error."
    )
    status.add(_HEALTH[report["status"]])
    checks = Family(
        "conveyor_health_check_status",
        "gauge",
        "Each health check: 0 healthy, 1 degraded, 2 error (check: database, redis, queue, "
        "failure_rate).",
    )
    for component in report["components"]:
        check, _, queue = component["name"].partition(":")
        labels = {"check": check, **({"queue": queue} if queue else {})}
        checks.add(_HEALTH[component["status"]], **labels)
    return [status, checks]


def _queue_families() -> list[Family]:
    jobs = Family("conveyor_queue_jobs", "gauge", "Jobs in the queue's RQ registries by state.")
    by_priority = Family(
        "conveyor_queue_waiting_jobs", "gauge", "Jobs waiting in the queue, by priority."
    )
    workers = Family("conveyor_queue_workers", "gauge", "Live workers listening to the queue.")
    slots = Family("conveyor_queue_slots", "gauge", "Job slots of the queue's live workers.")
    busy = Family("conveyor_queue_busy_slots", "gauge", "Slots running a job now.")
    paused = Family("conveyor_queue_paused", "gauge", "1 while the queue is paused, else 0.")
    oldest = Family(
        "conveyor_queue_oldest_waiting_seconds",
        "gauge",
        "Age of the queue's oldest waiting job (0 when none waits).",
    )
    max_wait = Family(
        "conveyor_queue_max_wait_seconds",
        "gauge",
        "The oldest wait the health check accepts before it says degraded.",
    )
    limits = settings.CONVEYOR_HEALTH
    for queue in queue_stats():
        name = queue["name"]
        for state in _QUEUE_STATES:
            jobs.add(queue[state], queue=name, state=state)
        for priority, waiting in queue["waiting_by_priority"].items():
            by_priority.add(waiting, queue=name, priority=priority)
        workers.add(queue["workers"], queue=name)
        slots.add(queue["slots"], queue=name)
        busy.add(queue["busy_slots"], queue=name)
        paused.add(int(queue["paused"]), queue=name)
        oldest.add(queue["oldest_waiting_seconds"] or 0, queue=name)
        threshold = settings.CONVEYOR_QUEUES[name].get("max_wait", limits["max_wait_seconds"])
        max_wait.add(threshold, queue=name)
    registered = list_workers()
    everyone = Family("conveyor_workers", "gauge", "Workers registered in Redis.")
    everyone.add(len(registered))
    stale = Family(
        "conveyor_workers_stale", "gauge", "Registered workers whose heartbeat is overdue."
    )
    stale.add(sum(1 for worker in registered if worker["stale"]))
    families = [jobs, by_priority, workers, slots, busy, paused, oldest, max_wait, everyone, stale]
    return families + _worker_figure_families(registered)


# What each worker reports of itself and its host with its heartbeat (jobs.host_figures):
# figure → (family, help, factor to the base unit).
_WORKER_FIGURES = {
    "rss_mb": ("conveyor_worker_memory_bytes", "Resident memory of the worker.", 2**20),
    "cpu_percent": ("conveyor_worker_cpu_ratio", "CPU the worker used, 1 = one core.", 0.01),
    "load_1m": ("conveyor_worker_host_load1", "The worker's host's 1-minute load average.", 1),
    "disk_free_gb": (
        "conveyor_worker_host_disk_free_bytes",
        "Free disk on the worker's host.",
        2**30,
    ),
}


def _worker_figure_families(workers: list[dict[str, Any]]) -> list[Family]:
    families = []
    for figure, (name, help_text, factor) in _WORKER_FIGURES.items():
        family = Family(name, "gauge", help_text)
        for worker in workers:
            value = worker.get("figures", {}).get(figure)
            if value is not None:
                family.add(round(value * factor, 4), worker=worker["name"], host=worker["hostname"])
        families.append(family)
    return families


_TENANT_GAUGES = {
    "waiting": ("conveyor_tenant_waiting_jobs", "Jobs of the tenant pending or queued."),
    "running": ("conveyor_tenant_running_jobs", "Jobs of the tenant started."),
    "wait_p95_seconds": (
        "conveyor_tenant_wait_p95_seconds",
        "p95 wait of the tenant's jobs enqueued in the last 15 minutes.",
    ),
}


def _tenant_families() -> list[Family]:
    top = 10**9 if settings.CONVEYOR_METRICS_ALL_TENANTS else settings.CONVEYOR_METRICS_TOP_TENANTS
    rows = tenant_backlog(top=top)
    families = []
    for gauge, (name, help_text) in _TENANT_GAUGES.items():
        family = Family(name, "gauge", help_text)
        for row in rows:
            value = row[gauge] if row[gauge] is not None else 0
            family.add(value, queue=row["queue"], tenant=row["tenant"])
        families.append(family)
    return families


_COUNTERS = {
    "enqueued": "Jobs enqueued.",
    "succeeded": "Jobs that succeeded.",
    "failed": "Jobs that failed for good (dead-lettered).",
    "retried": "Attempts that ended in a retry (errors, stops, rescues).",
    "canceled": "Jobs canceled.",
}
_HISTOGRAMS = {
    "wait": ("conveyor_job_wait_seconds", "Time from enqueued to started."),
    "run": ("conveyor_job_run_seconds", "Time from started to finished."),
}


def _job_families(totals: Iterable[dict[str, Any]]) -> list[Family]:
    totals = list(totals)
    families = []
    for counter, help_text in _COUNTERS.items():
        family = Family(f"conveyor_jobs_{counter}_total", "counter", help_text)
        for row in totals:
            family.add(row[counter], queue=row["queue"], kind=row["kind"])
        families.append(family)
    for prefix, (name, help_text) in _HISTOGRAMS.items():
        family = Family(name, "histogram", help_text)
        for row in totals:
            labels = {"queue": row["queue"], "kind": row["kind"]}
            for index, bound in enumerate(BUCKETS):
                family.add(row[f"{prefix}_{index}"], "_bucket", **labels, le=str(float(bound)))
            family.add(row[f"{prefix}_count"], "_bucket", **labels, le="+Inf")
            family.add(row[f"{prefix}_count"], "_count", **labels)
            family.add(float(row[f"{prefix}_sum"]), "_sum", **labels)
        families.append(family)
    return families


def exposition() -> str:
    """Every family, in the Prometheus text format."""
    report = health_report()
    families = _health_families(report)
    with contextlib.suppress(RedisError):  # the health checks already say error
        families += _queue_families()
    if any(c["name"] == "database" and c["status"] == "healthy" for c in report["components"]):
        with contextlib.suppress(RedisError):  # the totals live in Redis
            families += _job_families(job_totals())
        families += _tenant_families()
    return "\n".join(line for family in families for line in family.lines()) + "\n"


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; guarded by CONVEYOR_METRICS_TOKEN when it is set."""
    if not _allowed(request):
        return HttpResponse("A valid metrics token is required.\n", status=401)
    return HttpResponse(exposition(), content_type="text/plain; version=0.0.4")
