"""A Prometheus endpoint: queue, worker and health gauges, job counters and timing histograms.

Gauges (waiting by priority, started, scheduled, …, workers) are read live from Redis. The
counters (jobs enqueued, succeeded, failed, retried, canceled by queue and kind) and the
histograms (wait enqueued → started, run started → finished, by queue and kind) are computed
from PostgreSQL at each scrape, not kept in one process's memory, so they hold across every
worker process and survive restarts: one grouped pass over the `Job` rows kept and one indexed
query on `JobLog` events (`joblog_event_idx`) for retries. The cost is one scan of the job table
per scrape (scrape every 30 s or more on large tables). The counters count the rows kept: when
`cleanup_jobs` deletes old rows they go down, which Prometheus's `rate()` and `increase()` treat
as a counter reset. No tenant data is exposed.
"""

import contextlib
import hmac
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from jobs import selectors
from jobs.models import Job, JobLog

_QUEUE_GAUGES = ("waiting", "started", "scheduled", "deferred", "failed", "finished", "canceled")
_HEALTH = {"healthy": 0, "degraded": 1, "error": 2}
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_OUTCOMES = ("succeeded", "failed", "canceled")
_RETRY_EVENTS = (JobLog.Event.RETRY_SCHEDULED, JobLog.Event.STOPPED, JobLog.Event.RESCUED)
_JOB, _LOG = Job._meta.db_table, JobLog._meta.db_table


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
    stats = selectors.queue_stats()
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
        add("paused", label, int(queue["paused"]))
        add("oldest_waiting_seconds", label, queue["oldest_waiting_seconds"] or 0)
        add("throughput_per_minute", label, queue["throughput_per_minute"])
    lines = [f"{name}{sample}" for name, group in samples.items() for sample in group]
    workers = selectors.list_workers()
    lines.append(f"conveyor_workers {len(workers)}")
    lines.append(f"conveyor_workers_stale {sum(1 for w in workers if w['stale'])}")
    return lines


def _bucket_sql(seconds: str, prefix: str) -> str:
    buckets = ", ".join(
        f"count(*) FILTER (WHERE {seconds} <= {bound}) AS {prefix}_{index}"
        for index, bound in enumerate(BUCKETS)
    )
    total = f"count({seconds}) AS {prefix}_count, coalesce(sum({seconds}), 0) AS {prefix}_sum"
    return f"{buckets}, {total}"


_WAIT = "EXTRACT(EPOCH FROM started_at - enqueued_at)"
_RUN = "EXTRACT(EPOCH FROM finished_at - started_at)"
_RUN_ENDED = f"CASE WHEN status IN ('succeeded', 'failed', 'canceled') THEN {_RUN} END"

# One pass over the rows kept: totals by outcome and the histogram buckets, per queue and kind.
_TOTALS_SQL = f"""
SELECT queue, kind, count(*) AS enqueued,
    {", ".join(f"count(*) FILTER (WHERE status = '{status}') AS {status}" for status in _OUTCOMES)},
    {_bucket_sql(_WAIT, "wait")},
    {_bucket_sql(_RUN_ENDED, "run")}
FROM {_JOB} GROUP BY queue, kind ORDER BY queue, kind
"""

_RETRIED_SQL = f"""
SELECT job.queue, job.kind, count(*) FROM {_LOG} log JOIN {_JOB} job ON job.id = log.job_id
WHERE log.event = ANY(%s) GROUP BY job.queue, job.kind
"""


def job_totals() -> list[dict[str, Any]]:
    """Per queue and kind: jobs enqueued, succeeded, failed, canceled, retried; wait and run."""
    with connection.cursor() as cursor:
        cursor.execute(_TOTALS_SQL)
        names = [column.name for column in cursor.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        cursor.execute(_RETRIED_SQL, [list(_RETRY_EVENTS)])
        retried = {(queue, kind): n for queue, kind, n in cursor.fetchall()}
    for row in rows:
        row["retried"] = retried.pop((row["queue"], row["kind"]), 0)
    return rows


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
    "enqueued": "Jobs enqueued (rows kept).",
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
    report = selectors.health_report()
    lines = [f"conveyor_health_status {_HEALTH[report['status']]}"]
    with contextlib.suppress(RedisError):  # health_status already says error
        lines += _queue_lines()
    if any(c["name"] == "database" and c["status"] == "healthy" for c in report["components"]):
        lines += _job_lines(job_totals())
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")
