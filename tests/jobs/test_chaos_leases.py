"""Chaos for leases and supervision: real `manage.py rqworker` processes against a redis-server
the test starts (and stops, and starts empty) on a spare port, and the test's PostgreSQL.

Workers beat every second with a 2 s grace, so a lease lapses 3 s after its worker went quiet.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.test import override_settings

from jobs.models import Job, JobLog
from jobs.runtime.reconciler import reconcile
from jobs.services.jobs import enqueue_job
from tenants.models import Tenant
from tests.servers import RedisServer, spare_port
from tests.workers import BASE_DIR, _worker_env, status_of, stop_process_groups, wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(spare_port())
    server.start()
    queues = {name: {**config, "URL": server.url} for name, config in settings.RQ_QUEUES.items()}
    try:
        with override_settings(RQ_QUEUES=queues):
            yield server
    finally:
        server.stop()


@pytest.fixture
def worker(own_redis: RedisServer) -> Iterator[Callable[..., subprocess.Popen]]:
    """`manage.py rqworker default` on the test's Redis; supervised unless told otherwise."""
    started: list[subprocess.Popen] = []

    def start(
        worker_class: str = "jobs.runtime.worker.FastWorker", *, supervise: bool = True
    ) -> subprocess.Popen:
        command = [sys.executable, "manage.py", "rqworker", "default", "--with-scheduler"]
        command += ["--worker-class", worker_class] + ([] if supervise else ["--no-supervise"])
        env = {
            **_worker_env(),
            "REDIS_URL": own_redis.url,
            "CONVEYOR_HEARTBEAT_SECONDS": "1",
            "CONVEYOR_HEARTBEAT_GRACE": "2",
        }
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        started.append(process)
        return process

    yield start
    stop_process_groups(started)


def _steps(tenant: Tenant, *, steps: int, seconds: float) -> Job:
    payload = {"steps": steps, "seconds": seconds}
    return enqueue_job(tenant=tenant, kind="tests.step_then_record", payload=payload)


def _effects(job: Job) -> list[str]:
    effects = Tenant.objects.filter(slug__startswith=f"effect-{job.pk}")
    return list(effects.values_list("slug", flat=True))


def _starts(job: Job) -> int:
    return JobLog.objects.filter(job=job, event=JobLog.Event.STARTED).count()


def _attempt_began(job: Job, attempt: int) -> bool:
    reconcile(settle_seconds=0, overdue_seconds=0)
    return Job.objects.filter(pk=job.pk, attempt=attempt).exists()


@contextmanager
def _paused(process: subprocess.Popen) -> Iterator[None]:
    os.killpg(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGCONT)


def test_redis_restarted_empty_under_a_running_job_starts_no_second_attempt(
    tenant, own_redis, worker
):
    job = _steps(tenant, steps=16, seconds=0.5)
    worker()
    wait_for(lambda: status_of(job) == Job.Status.STARTED, timeout=30)

    own_redis.stop()
    own_redis.start()  # empty: the running job's heartbeat is gone
    rescued = []
    for _ in range(8):  # passes while the job runs on: its lease in PostgreSQL is fresh
        rescued.append(reconcile(settle_seconds=0).rescued)
        time.sleep(0.5)
    wait_for(lambda: status_of(job) in Job.FINISHED, timeout=30)

    job.refresh_from_db()
    assert rescued == [{}] * 8
    assert (job.status, job.attempt) == (Job.Status.SUCCEEDED, 1)
    assert (_starts(job), _effects(job)) == (1, [f"effect-{job.pk}-1"])


def test_workers_ride_out_a_5_second_redis_outage_and_retries_keep_their_schedule(
    tenant, own_redis, worker
):
    fast = worker(supervise=False)
    forking = worker("jobs.runtime.worker.Worker", supervise=False)
    busy = [_steps(tenant, steps=10, seconds=0.5) for _ in range(2)]
    wait_for(lambda: all(status_of(job) == Job.Status.STARTED for job in busy), timeout=30)

    own_redis.stop()
    time.sleep(5)
    own_redis.start()
    retried = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"times": 1})
    wait_for(lambda: status_of(retried) in Job.FINISHED, timeout=30)
    wait_for(lambda: all(status_of(job) in Job.FINISHED for job in busy), timeout=30)

    assert (fast.poll(), forking.poll()) == (None, None), "a worker exited"
    assert {status_of(job) for job in busy} == {Job.Status.SUCCEEDED}
    retried.refresh_from_db()
    assert (retried.status, retried.attempt) == (Job.Status.SUCCEEDED, 2)


def test_a_paused_workers_late_writes_are_refused_after_its_job_was_rescued(tenant, worker):
    job = _steps(tenant, steps=30, seconds=0.2)
    stalled = worker(supervise=False)
    wait_for(lambda: status_of(job) == Job.Status.STARTED, timeout=30)

    with _paused(stalled):
        wait_for(lambda: bool(reconcile(settle_seconds=0).rescued), timeout=20, every=0.5)
        worker()  # the retry runs here while the paused attempt is still in its body
        # The paused worker's RQ scheduler holds its locks: the reconciler moves the retry.
        wait_for(lambda: _attempt_began(job, 2), timeout=30, every=0.5)
    wait_for(lambda: status_of(job) in Job.FINISHED, timeout=30)
    time.sleep(1)  # the resumed attempt has had its chance to write

    job.refresh_from_db()
    assert (job.status, job.attempt, job.progress) == (Job.Status.SUCCEEDED, 2, 100)
    assert _effects(job) == [f"effect-{job.pk}-2"]
    rescue = JobLog.objects.get(job=job, event=JobLog.Event.RESCUED)
    late = JobLog.objects.filter(job=job, message__startswith="attempt 1", pk__gt=rescue.pk)
    assert not late.exists()
    assert stalled.poll() is None


def _supervised_run(tenant: Tenant, worker: Callable[..., subprocess.Popen], kind: str) -> Job:
    supervisor = worker()
    job = enqueue_job(tenant=tenant, kind=kind, payload={})
    wait_for(lambda: status_of(job) in Job.FINISHED, timeout=60, every=0.2)
    assert supervisor.poll() is None
    job.refresh_from_db()
    return job


def test_a_poison_job_is_recorded_with_the_signal_that_killed_its_worker(tenant, worker):
    job = _supervised_run(tenant, worker, "tests.crash_process")

    reason = "its worker process died (signal 9 (SIGKILL)) while running it"
    assert (job.status, job.attempt, job.error_message) == (Job.Status.FAILED, 2, reason)
    assert _starts(job) == 2


def test_a_job_holding_the_interpreter_past_its_timeout_is_stopped_with_its_process(tenant, worker):
    job = _supervised_run(tenant, worker, "tests.hold_interpreter")

    assert (job.status, job.attempt, job.max_attempts) == (Job.Status.FAILED, 2, 2)
    assert "stopped answering" in job.error_message
    assert _starts(job) == 2
    assert not JobLog.objects.filter(job=job, message__contains="Attempt 3").exists()
