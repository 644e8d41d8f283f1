"""The scheduled health check: run it, keep it compactly, and forget it after `history_days`."""

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from jobs.models import HealthCheck
from jobs.selectors.queues import health_report, list_workers
from jobs.signals import health_checked

logger = logging.getLogger(__name__)

CLEANUP_BATCH = 5000
# pg_try_advisory_xact_lock key: one scheduler at a time checks, however many run.
CHECK_LOCK = 0x43_48_45_43  # "CHEC"
# A check due within this much is taken now: the scheduler ticks every few seconds.
EARLY = timedelta(seconds=1)


def check_health_if_due(now: datetime | None = None) -> HealthCheck | None:
    """Record a health check if the last is `check_seconds` old, and tell `health_checked`.

    The scheduler loop calls this every tick, not a queued job: a check that had to pass
    through Redis could never see Redis down. Several schedulers take turns under an advisory
    lock, so each interval has one check and each rule is evaluated once per check.
    """
    seconds = settings.CONVEYOR_ALERTS["check_seconds"]
    if seconds <= 0:
        return None
    now = now or timezone.now()
    interval = timedelta(seconds=seconds)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [CHECK_LOCK])
            if not cursor.fetchone()[0]:
                return None
        last = HealthCheck.objects.order_by("-checked_at").values_list("checked_at", flat=True)
        latest = last.first()
        if latest is not None and latest > now - interval + EARLY:
            return None
        check = record_health_check()
        health_checked.send(sender=HealthCheck, check=check)
    return check


def record_health_check() -> HealthCheck:
    """Check health now and store the result: each component's status, reason and figures,
    and each live worker's own figures. Checks older than `history_days` are deleted."""
    clock = time.monotonic()
    report = health_report()
    check = HealthCheck.objects.create(
        checked_at=report["checked_at"],
        status=report["status"],
        components={
            c["name"]: [c["status"], c["reason"], c.get("figures", {})]
            for c in report["components"]
        },
        workers=_worker_figures(),
        duration_ms=int((time.monotonic() - clock) * 1000),
    )
    delete_old_health_checks()
    return check


def _worker_figures() -> dict[str, dict]:
    try:
        workers = list_workers()
    except RedisError:
        return {}
    return {
        worker["name"]: {
            "hostname": worker["hostname"],
            "queues": worker["queues"],
            **worker.get("figures", {}),
        }
        for worker in workers
        if not worker["stale"]
    }


def delete_old_health_checks() -> int:
    """Delete checks past `history_days`, at most CLEANUP_BATCH per call; returns how many."""
    cutoff = timezone.now() - timedelta(days=settings.CONVEYOR_ALERTS["history_days"])
    old = HealthCheck.objects.filter(checked_at__lt=cutoff).order_by("checked_at")
    ids = list(old.values_list("pk", flat=True)[:CLEANUP_BATCH])
    deleted, _ = HealthCheck.objects.filter(pk__in=ids).delete()
    if deleted:
        logger.info("deleted %s health checks older than %s", deleted, cutoff.isoformat())
    return deleted
