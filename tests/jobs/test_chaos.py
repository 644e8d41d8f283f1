"""Chaos: workers killed with SIGKILL mid-job, a Redis that restarts empty and a PostgreSQL
that restarts under running workers lose no job.

Real processes on loopback: `manage.py rqworker` in its own session (so a whole process group
can be killed without touching pytest), and a `redis-server` or PostgreSQL server started by the
test on a spare port (tests/servers.py).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.conf import settings
from django.db.models import Count
from django.test import override_settings

from jobs.models import Job, JobLog
from jobs.runtime.reconciler import reconcile
from jobs.services.jobs import enqueue_job, enqueue_jobs
from tenants.models import Tenant
from tests.servers import Batch, PrivatePostgres, on_server, redis_server, spare_port
from tests.workers import BASE_DIR, _worker_env, status_of, stop_process_groups, wait_for


@pytest.fixture
def session_worker() -> Iterator[Callable[..., subprocess.Popen]]:
    """`manage.py rqworker` as the leader of its own process group, with fast heartbeats."""
    started: list[subprocess.Popen] = []

    def start(
        *queues: str,
        worker_class: str = "jobs.runtime.worker.FastWorker",
        scheduler: bool = True,
        database_url: str = "",
    ) -> subprocess.Popen:
        command = [sys.executable, "manage.py", "rqworker", *queues, "--worker-class", worker_class]
        command += ["--with-scheduler"] if scheduler else []
        env = {**_worker_env(), "CONVEYOR_HEARTBEAT_SECONDS": "1", "CONVEYOR_HEARTBEAT_GRACE": "2"}
        if database_url:
            env["DATABASE_URL"] = database_url
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        started.append(process)
        return process

    yield start
    stop_process_groups(started)


def _effects(job: Job) -> list[Tenant]:
    return list(Tenant.objects.filter(slug=f"effect-{job.pk}"))


def _kill_mid_job_and_finish_elsewhere(
    tenant: Tenant, start: Callable[..., subprocess.Popen], worker_class: str
) -> Job:
    job = enqueue_job(tenant=tenant, kind="tests.record_then_sleep", payload={"seconds": 60})
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
    job = _kill_mid_job_and_finish_elsewhere(
        tenant, session_worker, "jobs.runtime.worker.FastWorker"
    )

    assert (job.status, job.attempt) == (Job.Status.SUCCEEDED, 2)
    assert len(_effects(job)) == 1
    assert JobLog.objects.filter(job=job, event=JobLog.Event.RESCUED).count() == 1


def test_a_job_whose_forking_worker_and_horse_are_killed_is_rescued_and_its_effect_made_once(
    tenant, session_worker
):
    job = _kill_mid_job_and_finish_elsewhere(tenant, session_worker, "jobs.runtime.worker.Worker")

    assert (job.status, job.attempt) == (Job.Status.SUCCEEDED, 2)
    assert len(_effects(job)) == 1
    assert JobLog.objects.filter(job=job, event=JobLog.Event.RESCUED).count() == 1


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_redis_restarted_empty_loses_no_job_and_runs_each_once(tenant, run_worker):
    port = spare_port()
    own = {
        name: {**config, "URL": f"redis://127.0.0.1:{port}/0"}
        for name, config in settings.RQ_QUEUES.items()
    }
    with override_settings(RQ_QUEUES=own):
        with redis_server(port):
            queued = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 1000)
            assert {status_of(job) for job in queued[::100]} == {Job.Status.QUEUED}
        outage: list[dict] = [{}] * 5
        during = [enqueue_job(tenant=tenant, kind="jobs.noop", payload=p) for p in outage]
        assert {status_of(job) for job in during} == {Job.Status.PENDING}
        with redis_server(port):
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


# --- PostgreSQL restarted under running workers ------------------------------------------------


def _count(server: PrivatePostgres, sql: str) -> int:
    return int(server.rows(sql)[0][0])


def _succeeded(server: PrivatePostgres) -> int:
    try:
        return _count(server, "SELECT count(*) FROM jobs_job WHERE status = 'succeeded'")
    except psycopg.OperationalError:
        return -1


def _running(server: PrivatePostgres) -> bool:
    return (
        server.count(
            f"SELECT count(*) FROM jobs_job WHERE status = 'started' AND kind = '{SLOW[0]}'"
        )
        > 0
    )


def _all_settled(server: PrivatePostgres, total: int, *, reconcile: bool) -> bool:
    """Whether every job succeeded; if not, maybe run a reconciliation pass as the schedule would.

    A crashed server may forget the last status changes it acknowledged (bookkeeping commits
    without waiting for the disk): the reconciler settles those rows again.
    """
    if _succeeded(server) == total:
        return True
    if reconcile:
        on_server(server, "reconcile")
    else:
        time.sleep(0.5)
    return False


SLOW: Batch = ("tests.sleep_then_record", 60, {"seconds": 0.2})
QUICK: Batch = ("tests.email_noop", 3, {})


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_postgres_restarted_under_running_workers_loses_no_job_and_records_each_once(
    private_postgres, session_worker, mode
):
    server = private_postgres
    workers = [
        session_worker("default", database_url=server.url),
        session_worker(
            "default", worker_class="jobs.runtime.worker.Worker", database_url=server.url
        ),
        session_worker("email", database_url=server.url),  # idle through the outage
    ]
    on_server(server, "create", SLOW, QUICK)
    # Stop it while a slow job runs (a loaded machine can leave both workers between jobs).
    wait_for(
        lambda: _succeeded(server) >= 10 + QUICK[1] and _running(server), timeout=30, every=0.05
    )

    finished = "SELECT id FROM jobs_job WHERE status = 'succeeded'"
    finished_before = ", ".join(f"'{job_id}'" for (job_id,) in server.rows(finished))
    stopped_at = time.time()
    server.stop(mode)
    time.sleep(2)
    # The server was down until at least this moment: anything recorded later was recorded
    # after the restart (a worker may reconnect before `start` returns).
    restarted_at = time.time()
    server.start()
    on_server(server, "enqueue", (SLOW[0], 10, SLOW[2]), (QUICK[0], 5, {}))

    total, effects = SLOW[1] + QUICK[1] + 10 + 5, SLOW[1] + 10
    crashed = mode == "immediate"  # reconciliation passes take a few seconds each
    wait_for(lambda: _all_settled(server, total, reconcile=crashed), timeout=60 if crashed else 40)
    assert all(worker.poll() is None for worker in workers), "a worker died with the database"
    made = "SELECT count(DISTINCT slug), count(*) FROM tenants_tenant WHERE slug LIKE 'effect-%'"
    assert server.rows(made) == [(effects, effects)]
    outcomes = "SELECT count(DISTINCT job_id), count(*) FROM jobs_joblog WHERE event = 'succeeded'"
    assert server.rows(outcomes) == [(total, total)]
    # Outcomes commit durably (the default): a job seen finished before a crash never runs again.
    reruns = (
        "SELECT count(*) FROM jobs_joblog WHERE event = 'started'"
        f" AND job_id IN ({finished_before}) GROUP BY job_id HAVING count(*) > 1"
    )
    assert server.rows(reruns) == []
    # The restart came mid-run: jobs enqueued before it finished after it.
    before, after = f"to_timestamp({stopped_at})", f"to_timestamp({restarted_at})"
    waited = f"SELECT count(*) FROM jobs_job WHERE created_at < {before} AND finished_at > {after}"
    assert _count(server, waited) >= 1
    if mode == "fast":  # a crash may forget the last starts; a clean stop keeps them all
        across = _count(
            server,
            "SELECT count(*) FROM jobs_joblog started JOIN jobs_joblog done USING (job_id)"
            " WHERE started.event = 'started' AND done.event = 'succeeded'"
            f" AND started.created_at < {before} AND done.created_at > {after}",
        )
        assert across >= 1, "no job running at the stop had its outcome recorded after it"
