"""Chaos: workers killed with SIGKILL mid-job and a Redis that restarts empty lose no job.

Real processes on loopback: `manage.py rqworker` in its own session (so a whole process group
can be killed without touching pytest), and a `redis-server` started by the test on a spare
port (the shared Redis is never stopped).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis
from django.conf import settings
from django.db.models import Count
from django.test import override_settings

from jobs import services
from jobs.models import Job, JobLog
from jobs.reconciler import reconcile
from tenants.models import Tenant
from tests.jobs.conftest import BASE_DIR, _worker_env, status_of, wait_for


@pytest.fixture
def session_worker() -> Iterator[Callable[..., subprocess.Popen]]:
    """`manage.py rqworker` as the leader of its own process group, with fast heartbeats."""
    started: list[subprocess.Popen] = []

    def start(
        *queues: str, worker_class: str = "jobs.worker.FastWorker", scheduler: bool = True
    ) -> subprocess.Popen:
        command = [sys.executable, "manage.py", "rqworker", *queues, "--worker-class", worker_class]
        command += ["--with-scheduler"] if scheduler else []
        env = {**_worker_env(), "CONVEYOR_HEARTBEAT_SECONDS": "1", "CONVEYOR_HEARTBEAT_GRACE": "2"}
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _effects(job: Job) -> list[Tenant]:
    return list(Tenant.objects.filter(slug=f"effect-{job.pk}"))


def _kill_mid_job_and_finish_elsewhere(
    tenant: Tenant, start: Callable[..., subprocess.Popen], worker_class: str
) -> Job:
    job = services.enqueue_job(
        tenant=tenant, kind="tests.record_then_sleep", payload={"seconds": 60}
    )
    # The victim runs no RQ scheduler: a killed scheduler keeps its Redis lock for 61 s, and the
    # rescued job waits in RQ's scheduled registry for whichever scheduler holds the lock.
    process = start("default", worker_class=worker_class, scheduler=False)
    wait_for(lambda: status_of(job) == Job.Status.STARTED and bool(_effects(job)), timeout=30)
    running_pid = int(_effects(job)[0].name)

    os.killpg(process.pid, signal.SIGKILL)
    if running_pid != process.pid:  # a forked work horse leads its own process group
        os.killpg(os.getpgid(running_pid), signal.SIGKILL)
    process.wait()
    wait_for(lambda: _is_gone(running_pid), timeout=10)
    wait_for(lambda: bool(reconcile(settle_seconds=0).rescued), timeout=30, every=0.5)
    start("default", worker_class=worker_class)
    wait_for(lambda: status_of(job) in Job.FINISHED, timeout=30)

    job.refresh_from_db()
    return job


def _is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_job_whose_fast_worker_is_killed_is_rescued_and_its_effect_made_once(
    tenant, session_worker
):
    job = _kill_mid_job_and_finish_elsewhere(tenant, session_worker, "jobs.worker.FastWorker")

    assert (job.status, job.attempt) == (Job.Status.SUCCEEDED, 2)
    assert len(_effects(job)) == 1
    assert JobLog.objects.filter(job=job, event=JobLog.Event.RESCUED).count() == 1


def test_a_job_whose_forking_worker_and_horse_are_killed_is_rescued_and_its_effect_made_once(
    tenant, session_worker
):
    job = _kill_mid_job_and_finish_elsewhere(tenant, session_worker, "jobs.worker.Worker")

    assert (job.status, job.attempt) == (Job.Status.SUCCEEDED, 2)
    assert len(_effects(job)) == 1
    assert JobLog.objects.filter(job=job, event=JobLog.Event.RESCUED).count() == 1


def _spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _redis_server(port: int) -> Iterator[None]:
    """A throwaway, empty redis-server on `port`, stopped on leaving the block."""
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    server = subprocess.Popen(
        [*command, "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        client = redis.Redis(port=port)
        wait_for(lambda: _answers(client), timeout=10)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_redis_restarted_empty_loses_no_job_and_runs_each_once(tenant, run_worker):
    port = _spare_port()
    own = {
        name: {**config, "URL": f"redis://127.0.0.1:{port}/0"}
        for name, config in settings.RQ_QUEUES.items()
    }
    with override_settings(RQ_QUEUES=own):
        with _redis_server(port):
            queued = services.enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 1000)
            assert {status_of(job) for job in queued[::100]} == {Job.Status.QUEUED}
        outage: list[dict] = [{}] * 5
        during = [services.enqueue_job(tenant=tenant, kind="jobs.noop", payload=p) for p in outage]
        assert {status_of(job) for job in during} == {Job.Status.PENDING}
        with _redis_server(port):
            handed_over = [reconcile(settle_seconds=0) for _ in range(3)]
            run_worker()

    jobs = Job.objects.filter(pk__in=[job.pk for job in [*queued, *during]])
    starts = JobLog.objects.filter(event=JobLog.Event.STARTED, job__in=jobs)
    assert (handed_over[0].pushed, handed_over[0].repushed) == (5, 1000)
    assert handed_over[-1].total == 0
    assert {status_of(job) for job in during} == {Job.Status.SUCCEEDED}
    assert jobs.filter(status=Job.Status.SUCCEEDED, attempt=1).count() == 1005
    assert starts.count() == 1005
    assert not starts.values("job").annotate(n=Count("pk")).filter(n__gt=1).exists()
