"""A Prometheus endpoint: queue, worker and health gauges (no tenant data)."""

import contextlib
import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from jobs import selectors

_QUEUE_GAUGES = ("waiting", "started", "scheduled", "deferred", "failed", "finished", "canceled")
_HEALTH = {"healthy": 0, "degraded": 1, "error": 2}


def _allowed(request: HttpRequest) -> bool:
    token = settings.CONVEYOR_METRICS_TOKEN
    if not token:
        return True
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(sent, token)


def _lines() -> list[str]:
    lines = []
    for queue in selectors.queue_stats():
        label = f'queue="{queue["name"]}"'
        for gauge in _QUEUE_GAUGES:
            lines.append(f"conveyor_queue_{gauge}{{{label}}} {queue[gauge]}")
        lines.append(f"conveyor_queue_workers{{{label}}} {queue['workers']}")
        lines.append(f"conveyor_queue_paused{{{label}}} {int(queue['paused'])}")
        oldest = queue["oldest_waiting_seconds"] or 0
        lines.append(f"conveyor_queue_oldest_waiting_seconds{{{label}}} {oldest}")
        lines.append(
            f"conveyor_queue_throughput_per_minute{{{label}}} {queue['throughput_per_minute']}"
        )
    workers = selectors.list_workers()
    lines.append(f"conveyor_workers {len(workers)}")
    lines.append(f"conveyor_workers_stale {sum(1 for w in workers if w['stale'])}")
    return lines


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; guarded by CONVEYOR_METRICS_TOKEN when it is set."""
    if not _allowed(request):
        return HttpResponse("A valid metrics token is required.\n", status=401)
    report = selectors.health_report()
    lines = [f"conveyor_health_status {_HEALTH[report['status']]}"]
    with contextlib.suppress(RedisError):  # health_status already says error
        lines += _lines()
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")
