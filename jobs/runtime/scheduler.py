"""The scheduler loop: `manage.py run_scheduler` runs it; a worker process may run it in a thread.

Each tick enqueues every due schedule (`jobs.services.schedules.run_due_schedules`), hands
`pending` rows to Redis (`jobs.runtime.reconciler.hand_over_pending`), re-pushes every waiting
row when Redis lost its data (`repush_if_redis_emptied`), checks health when the
last check is `CONVEYOR_ALERTS["check_seconds"]` old (`jobs.services.health.check_health_if_due`,
which the alert rules hear), then sleeps until the earliest next run or `max_sleep` seconds,
whichever is sooner, so edits made in the admin or the API are followed within `max_sleep`.
Several loops may run at once, on several machines.

To run it inside another process:

    stop = threading.Event()
    threading.Thread(target=run_forever, args=(stop,), daemon=True).start()
    ...
    stop.set()
"""

import logging
import threading

from django.db import close_old_connections, connections
from django.db.models import Min
from django.utils import timezone

from jobs.models import Schedule
from jobs.runtime.reconciler import hand_over_pending, repush_if_redis_emptied
from jobs.services.health import check_health_if_due
from jobs.services.schedules import ensure_system_schedules, run_due_schedules

logger = logging.getLogger(__name__)

MAX_SLEEP = 5.0
# Rows due now but held by another scheduler are its to handle: do not spin while it does.
MIN_SLEEP = 0.1
BATCH = 100


def run_forever(stop_event: threading.Event, *, max_sleep: float = MAX_SLEEP) -> None:
    """Tick until `stop_event` is set; the built-in schedules are created first if missing."""
    logger.info("scheduler started (ticks at least every %s s)", max_sleep)
    try:
        _start()
        while not stop_event.is_set():
            stop_event.wait(tick(max_sleep=max_sleep))
    finally:
        connections.close_all()  # this thread's connections only
    logger.info("scheduler stopped")


def _start() -> None:
    try:
        ensure_system_schedules()
    except Exception:
        logger.exception("could not create the built-in schedules; going on without them")


def tick(*, max_sleep: float = MAX_SLEEP) -> float:
    """Enqueue everything due now; returns how many seconds to sleep before the next tick."""
    close_old_connections()  # a connection the database dropped is replaced, not reused
    try:
        while run_due_schedules(limit=BATCH) == BATCH:
            pass  # a full batch: more may be due
        # Pending rows (Redis refused them) are handed over here too, not only by the reconcile
        # job: that job may itself be one of them, and its schedule skips a run while it waits.
        hand_over_pending()
        # A Redis that lost its data has its waiting jobs back within a tick, not a minute.
        repush_if_redis_emptied()
        check_health_if_due()
        return seconds_to_next_run(max_sleep=max_sleep)
    except Exception:
        # A dead scheduler stops every tenant's schedules: log, wait, try again.
        logger.exception("scheduler tick failed; trying again in %s s", max_sleep)
        return max_sleep


def seconds_to_next_run(*, max_sleep: float = MAX_SLEEP) -> float:
    """Seconds until the earliest enabled schedule is due, between MIN_SLEEP and `max_sleep`."""
    due = Schedule.objects.filter(enabled=True).aggregate(first=Min("next_run_at"))["first"]
    if due is None:
        return max_sleep
    return min(max_sleep, max(MIN_SLEEP, (due - timezone.now()).total_seconds()))
