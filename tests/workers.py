"""Real RQ workers for tests: in-process (`run_worker`, `work_until`) and `manage.py rqworker`
processes (`worker_process`), with helpers to wait on and kill them."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rq.scheduler import RQScheduler

from jobs.models import Job
from jobs.runtime.worker import FastWorker
from jobs.transport import queueing
from jobs.transport.workers import listening_order

BASE_DIR = Path(settings.BASE_DIR)


def _rq_queues(names: list[str] | None) -> list:
    return listening_order(
        [queueing.get_rq_queue(name) for name in names or list(settings.CONVEYOR_QUEUES)]
    )


def release_due_jobs(names: list[str] | None = None) -> None:
    """What RQ's scheduler does every second: move due scheduled jobs to their queues."""
    queues = _rq_queues(names)
    scheduler = RQScheduler(queues, connection=queueing.connection())
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()


@pytest.fixture
def run_worker() -> Callable[..., bool]:
    """Drain the queues in this process with a real RQ worker; returns whether it ran a job."""

    def run(queues: list[str] | None = None, *, max_jobs: int | None = None) -> bool:
        release_due_jobs(queues)
        worker = FastWorker(
            queues or list(settings.CONVEYOR_QUEUES), connection=queueing.connection()
        )
        return worker.work(burst=True, max_jobs=max_jobs)

    return run


@pytest.fixture
def work_until(run_worker: Callable[..., bool]) -> Callable[..., None]:
    """Keep draining (scheduled retries included) until `done()` holds or `timeout` passes."""

    def work(
        done: Callable[[], bool], *, timeout: float = 20, queues: list[str] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "timed out waiting for the jobs"
            run_worker(queues)
            time.sleep(0.05)

    return work


def _worker_env() -> dict[str, str]:
    db = connection.settings_dict
    host = db["HOST"] or db.get("OPTIONS", {}).get("host") or "127.0.0.1"
    port = db["PORT"] or db.get("OPTIONS", {}).get("port") or 5432
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.test_settings",
        DATABASE_URL=f"postgres://{db['USER']}@/{db['NAME']}?host={host}&port={port}",
        CONVEYOR_PRELOAD="tests.jobs.kinds",
    )
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    return env


@pytest.fixture
def worker_process() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `manage.py rqworker` in its own process, as production does; stopped afterwards."""
    started: list[subprocess.Popen] = []

    def start(
        *queues: str,
        worker_class: str = "jobs.runtime.worker.FastWorker",
        grace: int = 10,
        heartbeat: int = 10,
        heartbeat_grace: int = 30,
        concurrency: int | None = None,
        scheduler: bool = True,
        env: dict[str, str] | None = None,
        schedules: bool = False,
    ) -> subprocess.Popen:
        command = [sys.executable, "manage.py", "rqworker", *queues, "--worker-class", worker_class]
        command += ["--with-scheduler"] if scheduler else []
        command += ["--with-schedules"] if schedules else []
        command += ["--concurrency", str(concurrency)] if concurrency else []
        env = {
            **_worker_env(),
            "CONVEYOR_SHUTDOWN_GRACE": str(grace),
            "CONVEYOR_HEARTBEAT_SECONDS": str(heartbeat),
            "CONVEYOR_HEARTBEAT_GRACE": str(heartbeat_grace),
            **(env or {}),
        }
        # Its own session: RQ's scheduler runs in a child process that must go with it.
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def stop_process_groups(processes: list[subprocess.Popen]) -> None:
    """SIGTERM each process's group (started with `start_new_session=True`), SIGKILL it after
    15 s."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def kill_machine(process: subprocess.Popen) -> None:
    """What losing the machine does to a worker: its whole process group dies at once."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for(condition: Callable[[], bool], *, timeout: float = 20, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def status_of(job: Job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)
