"""Reads of the stored health checks: the history the API serves and the dashboard's timeline."""

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from jobs.models import HealthCheck

_RANK = {"healthy": 0, "degraded": 1, "error": 2}


def list_health_checks(
    *, since: datetime | None = None, until: datetime | None = None, status: str = ""
) -> QuerySet[HealthCheck]:
    """Stored checks, newest first, optionally within [since, until) and of one status."""
    checks = HealthCheck.objects.order_by("-checked_at")
    if since is not None:
        checks = checks.filter(checked_at__gte=since)
    if until is not None:
        checks = checks.filter(checked_at__lt=until)
    if status:
        checks = checks.filter(status=status)
    return checks


def health_timeline(*, hours: int = 24, slots: int = 96) -> list[dict[str, Any]]:
    """The last `hours` in `slots` equal slots, oldest first: each slot's worst status (or
    None when no check ran), how many checks ran, and the reasons of the unhealthy ones."""
    now = timezone.now()
    width = timedelta(hours=hours) / slots
    start = now - width * slots
    timeline: list[dict[str, Any]] = [
        {"start": start + width * i, "status": None, "checks": 0, "reasons": []}
        for i in range(slots)
    ]
    rows = HealthCheck.objects.filter(checked_at__gte=start).values_list(
        "checked_at", "status", "components"
    )
    for checked_at, status, components in rows.iterator():
        slot = timeline[min(int((checked_at - start) / width), slots - 1)]
        slot["checks"] += 1
        if slot["status"] is None or _RANK[status] > _RANK[slot["status"]]:
            slot["status"] = status
        for name, (component_status, reason, _) in components.items():
            said = f"{name}: {reason}"
            if component_status != "healthy" and said not in slot["reasons"]:
                slot["reasons"].append(said)
    for slot in timeline:
        slot["reasons"] = slot["reasons"][:5]
    return timeline
