"""Several schedulers at once: threads over a simulated clock, loops and processes in real time."""

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from jobs.models import Job, Schedule
from jobs.runtime.scheduler import run_forever
from jobs.services.schedules import SYSTEM_SCHEDULES, create_schedule, run_due_schedules
from jobs.triggers import next_run_after, upcoming_runs
from tenants.models import Tenant
from tests.jobs.conftest import wait_for

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STEP = timedelta(seconds=15)
SCHEDULERS = 3


def make_schedules(tenant: Tenant, *, start: datetime) -> list[Schedule]:
    """Cron, interval and one-off schedules whose runs all fall on the 15-second tick grid."""
    triggers: list[dict[str, object]] = [
        {"cron": "* * * * *"},
        {"cron": "*/2 * * * *", "time_zone": "Europe/London"},
        {"interval_seconds": 45, "starts_at": start},
        {"interval_seconds": 90, "starts_at": start + timedelta(seconds=30)},
        {"run_at": start + timedelta(minutes=4, seconds=15)},
    ]
    schedules = []
    for number, trigger in enumerate(triggers):
        schedule = Schedule(tenant=tenant, name=f"schedule {number}", kind="jobs.noop", **trigger)
        schedule.overlap_policy = Schedule.OverlapPolicy.ALLOW
        schedule.next_run_at = next_run_after(schedule, start)
        schedule.save()  # on the simulated clock: the services would count from the real now
        schedules.append(schedule)
    return schedules


def expected_keys(schedules: list[Schedule], *, start: datetime, end: datetime) -> set[str]:
    return {
        f"schedule:{schedule.pk}:{run.isoformat()}"
        for schedule in schedules
        for run in upcoming_runs(schedule, after=start, count=1000)
        if run <= end
    }


def in_threads(count: int, target: Callable[[int], None]) -> None:
    """Run `target(number)` in `count` threads, each with its own database connection."""
    failures: list[BaseException] = []

    def run(number: int) -> None:
        try:
            target(number)
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures


def test_three_schedulers_ticking_together_enqueue_every_due_run_exactly_once(tenant):
    schedules = make_schedules(tenant, start=T0)
    end = T0 + timedelta(minutes=10)
    ticks = [T0 + STEP * n for n in range(int((end - T0) / STEP) + 1)]
    together = threading.Barrier(SCHEDULERS, timeout=60)
    enqueued = [0] * SCHEDULERS

    def scheduler(number: int) -> None:
        for now in ticks:
            together.wait()  # every scheduler ticks at the same simulated moment
            enqueued[number] += run_due_schedules(now=now)

    in_threads(SCHEDULERS, scheduler)

    keys = list(Job.objects.values_list("idempotency_key", flat=True))
    expected = expected_keys(schedules, start=T0, end=end)
    assert len(expected) == 10 + 5 + 13 + 7 + 1  # minutes, 2 minutes, 45 s, 90 s from :30, once
    assert sorted(keys) == sorted(expected)
    assert sum(enqueued) == len(expected)
    assert Schedule.objects.aggregate(runs=Sum("run_count"))["runs"] == len(expected)


def test_several_schedulers_split_the_work_rather_than_waiting_for_each_other(tenant):
    for number in range(60):
        schedule = Schedule(tenant=tenant, name=f"s{number}", kind="jobs.noop", cron="* * * * *")
        schedule.next_run_at = T0
        schedule.save()
    counts = [0] * SCHEDULERS

    def scheduler(number: int) -> None:
        while (done := run_due_schedules(now=T0, limit=5)) > 0:
            counts[number] += done

    in_threads(SCHEDULERS, scheduler)

    assert sum(counts) == Job.objects.count() == 60
    assert Counter(Job.objects.values_list("schedule_id", flat=True)).most_common(1)[0][1] == 1


def test_two_scheduler_loops_in_real_time_never_run_a_planned_time_twice(tenant):
    schedule = create_schedule(
        tenant=tenant,
        name="every second",
        kind="jobs.noop",
        interval_seconds=1,
        overlap_policy=Schedule.OverlapPolicy.ALLOW,
    )
    stop = threading.Event()
    loops = threading.Thread(
        target=in_threads, args=(2, lambda number: run_forever(stop, max_sleep=0.1))
    )

    loops.start()
    wait_for(lambda: Job.objects.filter(schedule=schedule).count() >= 3, timeout=30)
    stop.set()
    loops.join(timeout=30)

    schedule.refresh_from_db()
    keys = list(Job.objects.filter(schedule=schedule).values_list("idempotency_key", flat=True))
    assert not loops.is_alive()
    assert len(keys) == len(set(keys)) == schedule.run_count


# --- Separate processes: `manage.py run_scheduler` ------------------------------------------------


def _process_env() -> dict[str, str]:
    """The environment of a `manage.py` process that uses this test's database."""
    db = connection.settings_dict
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@/{db['NAME']}?host={host}&port={port}",
    }
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    return env


@pytest.fixture
def scheduler_processes() -> Iterator[list[subprocess.Popen]]:
    """Two `manage.py run_scheduler` processes; killed afterwards if a test left them running."""
    command = [sys.executable, "manage.py", "run_scheduler", "--interval", "0.2"]
    processes = [
        subprocess.Popen(
            command,
            cwd=Path(settings.BASE_DIR),
            env=_process_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_two_scheduler_processes_enqueue_each_run_once_and_stop_cleanly_on_sigterm(
    tenant, scheduler_processes
):
    schedule = create_schedule(
        tenant=tenant,
        name="every second",
        kind="jobs.noop",
        interval_seconds=1,
        overlap_policy=Schedule.OverlapPolicy.ALLOW,
    )

    wait_for(lambda: Job.objects.filter(schedule=schedule).count() >= 4, timeout=60)
    for process in scheduler_processes:
        process.send_signal(signal.SIGTERM)
    outputs = [process.communicate(timeout=30)[0] for process in scheduler_processes]

    schedule.refresh_from_db()
    keys = list(Job.objects.filter(schedule=schedule).values_list("idempotency_key", flat=True))
    assert [process.returncode for process in scheduler_processes] == [0, 0], outputs
    assert all("SIGTERM: stopping" in output for output in outputs), outputs
    assert len(keys) == len(set(keys)) == schedule.run_count
    assert Tenant.objects.filter(slug="system").count() == 1
    assert Schedule.objects.filter(is_system=True).count() == len(SYSTEM_SCHEDULES)


def test_a_worker_with_schedules_runs_the_schedule_loop_beside_its_jobs(tenant, worker_process):
    schedule = create_schedule(
        tenant=tenant, name="every second", kind="jobs.noop", interval_seconds=1
    )

    worker_process("default", schedules=True)
    wait_for(
        lambda: Job.objects.filter(schedule=schedule, status=Job.Status.SUCCEEDED).count() >= 2,
        timeout=40,
    )

    keys = list(Job.objects.filter(schedule=schedule).values_list("idempotency_key", flat=True))
    assert len(keys) == len(set(keys))
