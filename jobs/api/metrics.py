"""A Prometheus endpoint: queue, worker and health gauges, job counters and timing histograms.

Gauges (waiting by priority, started, scheduled, …, workers, each worker's memory, CPU and its
host's load and free disk) are read live from Redis; the job counters and histograms are totals
kept in Redis (`jobs.selectors.metrics`). Per tenant, only slugs and counts: waiting, running and
wait p95 per queue for the top tenants by backlog (CONVEYOR_METRICS_TOP_TENANTS), the rest
summed under tenant="other", so the label's cardinality stays bounded;
CONVEYOR_METRICS_ALL_TENANTS lists every tenant instead.
"""

import contextlib
import hmac
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from jobs.selectors.metrics import BUCKETS, job_totals
from jobs.selectors.queues import health_report, list_workers, queue_stats, tenant_backlog

_QUEUE_GAUGES = ("waiting", "started", "scheduled", "deferred", "failed", "finished", "canceled")
_HEALTH = {"healthy": 0, "degraded": 1, "error": 2}


def _allowed(request: HttpRequest) -> bool:
    token = settings.CONVEYOR_METRICS_TOKEN
    if not token:
        return True
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(sent, token)


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")

    return ",".join(f'{name}="{escape(str(value))}"' for name, value in labels.items())


def _queue_lines() -> list[str]:
    # Each metric's lines together, as the text format wants (a family is not split).
    stats = queue_stats()
    samples: dict[str, list[str]] = {}

    def add(name: str, labels: str, value: Any) -> None:
        samples.setdefault(f"conveyor_queue_{name}", []).append(f"{{{labels}}} {value}")

    for queue in stats:
        label = _labels(queue=queue["name"])
        for gauge in _QUEUE_GAUGES:
            add(gauge, label, queue[gauge])
        for priority, waiting in queue["waiting_by_priority"].items():
            add("waiting_by_priority", _labels(queue=queue["name"], priority=priority), waiting)
        add("workers", label, queue["workers"])
        add("slots", label, queue["slots"])
        add("busy_slots", label, queue["busy_slots"])
        add("paused", label, int(queue["paused"]))
        add("oldest_waiting_seconds", label, queue["oldest_waiting_seconds"] or 0)
        add("throughput_per_minute", label, queue["throughput_per_minute"])
    lines = [f"{name}{sample}" for name, group in samples.items() for sample in group]
    workers = list_workers()
    lines.append(f"conveyor_workers {len(workers)}")
    lines.append(f"conveyor_workers_stale {sum(1 for w in workers if w['stale'])}")
    return lines + _worker_figure_lines(workers)


# What each worker reports of itself and its host with its heartbeat (jobs.host_figures).
_WORKER_FIGURES = {
    "rss_mb": "conveyor_worker_memory_bytes",
    "cpu_percent": "conveyor_worker_cpu_percent",
    "load_1m": "conveyor_worker_host_load1",
    "disk_free_gb": "conveyor_worker_host_disk_free_bytes",
}
_TO_BYTES = {"rss_mb": 2**20, "disk_free_gb": 2**30}


def _worker_figure_lines(workers: list[dict[str, Any]]) -> list[str]:
    lines = []
    for figure, name in _WORKER_FIGURES.items():
        for worker in workers:
            value = worker.get("figures", {}).get(figure)
            if value is None:
                continue
            labels = _labels(worker=worker["name"], host=worker["hostname"])
            lines.append(f"{name}{{{labels}}} {round(value * _TO_BYTES.get(figure, 1), 2)}")
    return lines


_TENANT_GAUGES = {
    "waiting": "Jobs of the tenant pending or queued.",
    "running": "Jobs of the tenant started.",
    "wait_p95_seconds": "p95 wait of the tenant's jobs enqueued in the last 15 minutes.",
}


def _tenant_lines() -> list[str]:
    top = 10**9 if settings.CONVEYOR_METRICS_ALL_TENANTS else settings.CONVEYOR_METRICS_TOP_TENANTS
    rows = tenant_backlog(top=top)
    lines = []
    for gauge, help_text in _TENANT_GAUGES.items():
        name = f"conveyor_tenant_{gauge}"
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for row in rows:
            value = row[gauge] if row[gauge] is not None else 0
            lines.append(f"{name}{{{_labels(queue=row['queue'], tenant=row['tenant'])}}} {value}")
    return lines


def _histogram(name: str, row: dict[str, Any], prefix: str, labels: dict[str, str]) -> list[str]:
    lines = [
        f"{name}_bucket{{{_labels(**labels, le=str(float(bound)))}}} {row[f'{prefix}_{index}']}"
        for index, bound in enumerate(BUCKETS)
    ]
    lines.append(f"{name}_bucket{{{_labels(**labels, le='+Inf')}}} {row[f'{prefix}_count']}")
    lines.append(f"{name}_count{{{_labels(**labels)}}} {row[f'{prefix}_count']}")
    lines.append(f"{name}_sum{{{_labels(**labels)}}} {float(row[f'{prefix}_sum'])}")
    return lines


_COUNTERS = {
    "enqueued": "Jobs enqueued.",
    "succeeded": "Jobs that succeeded.",
    "failed": "Jobs that failed for good (dead-lettered).",
    "retried": "Attempts that ended in a retry (errors, stops, rescues).",
    "canceled": "Jobs canceled.",
}
_HISTOGRAMS = {
    "wait": ("conveyor_job_wait_seconds", "Seconds from enqueued to started."),
    "run": ("conveyor_job_run_seconds", "Seconds from started to finished."),
}


def _job_lines(totals: Iterable[dict[str, Any]]) -> list[str]:
    totals = list(totals)
    lines = []
    for counter, help_text in _COUNTERS.items():
        name = f"conveyor_jobs_{counter}"
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        for row in totals:
            labels = _labels(queue=row["queue"], kind=row["kind"])
            lines.append(f"{name}_total{{{labels}}} {row[counter]}")
    for prefix, (name, help_text) in _HISTOGRAMS.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for row in totals:
            lines += _histogram(name, row, prefix, {"queue": row["queue"], "kind": row["kind"]})
    return lines


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; guarded by CONVEYOR_METRICS_TOKEN when it is set."""
    if not _allowed(request):
        return HttpResponse("A valid metrics token is required.\n", status=401)
    report = health_report()
    lines = [f"conveyor_health_status {_HEALTH[report['status']]}"]
    with contextlib.suppress(RedisError):  # health_status already says error
        lines += _queue_lines()
    if any(c["name"] == "database" and c["status"] == "healthy" for c in report["components"]):
        with contextlib.suppress(RedisError):  # the totals live in Redis
            lines += _job_lines(job_totals())
        lines += _tenant_lines()
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")
