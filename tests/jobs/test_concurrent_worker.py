"""The concurrent worker: several jobs at once in one `manage.py rqworker` process, every
guarantee of the engine kept per job (claim-once, priorities, pause, limits, timeouts, cancel,
graceful shutdown, rescue after SIGKILL) and a bounded number of database connections."""

import os
import signal
import time
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs.models import Job, JobLog
from jobs.runtime import runner
from jobs.runtime.reconciler import reconcile
from jobs.services.jobs import cancel_job, enqueue_job, enqueue_jobs
from jobs.services.queues import pause_queue, resume_queue
from jobs.transport import queueing
from jobs.transport.concurrent import queue_concurrency
from tenants.models import Tenant
from tests.factories import UserFactory
from tests.jobs.conftest import status_of, wait_for

CONCURRENT = "jobs.runtime.worker.ConcurrentWorker"


def _spans(jobs: list[Job]) -> list[tuple[float, float]]:
    found = Job.objects.filter(pk__in=[job.pk for job in jobs]).values_list("pk", "result")
    results: dict[Any, Any] = dict(found)
    return [(results[job.pk]["start"], results[job.pk]["end"]) for job in jobs]


def _all(jobs: list[Job], *statuses: str) -> bool:
    pks = [job.pk for job in jobs]
    return Job.objects.filter(pk__in=pks, status__in=statuses).count() == len(pks)


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_queue_settings_give_each_queue_its_concurrency(settings):
    assert queue_concurrency(["email"]) == 10
    assert queue_concurrency(["notifications", "email.high"]) == 20
    assert queue_concurrency(["unknown"]) == 1


def test_one_process_runs_many_io_jobs_at_once_and_each_exactly_once(tenant, worker_process):
    jobs = enqueue_jobs(tenant=tenant, kind="tests.wait", payloads=[{"seconds": 0.5}] * 20)
    for job in jobs[:5]:
        queueing.push(job)  # delivered twice, as Redis may after a worker dies

    started = time.monotonic()
    worker_process("default", worker_class=CONCURRENT, concurrency=10)
    wait_for(lambda: _all(jobs, Job.Status.SUCCEEDED), timeout=30)

    spans = _spans(jobs)
    assert _most_at_once(spans) == 10
    assert max(end for _, end in spans) - min(start for start, _ in spans) < 2.5
    assert time.monotonic() - started < 20
    assert set(
        Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("attempt", flat=True)
    ) == {1}


def test_a_freed_slot_takes_the_highest_priority_and_a_paused_queue_gives_none(
    tenant, worker_process
):
    pause_queue("default")
    low = [enqueue_job(tenant=tenant, kind="tests.wait", payload={"seconds": 0.3}, priority="low")]
    low += [enqueue_job(tenant=tenant, kind="tests.wait", payload={"seconds": 0.3}, priority="low")]
    high = [
        enqueue_job(tenant=tenant, kind="tests.wait", payload={"seconds": 0.3}, priority="high")
        for _ in range(3)
    ]
    worker_process("default", worker_class=CONCURRENT, concurrency=2)
    time.sleep(2)
    assert _all(low + high, Job.Status.QUEUED)

    resume_queue("default")
    wait_for(lambda: _all(low + high, Job.Status.SUCCEEDED), timeout=30)

    # The last high and the first low may be taken by two slots freed at once, their starts
    # recorded by two threads in either order: a low taken ahead of a waiting high would start
    # a whole job (0.3 s) earlier.
    assert max(start for start, _ in _spans(high)) < min(start for start, _ in _spans(low)) + 0.1
    assert _most_at_once(_spans(low + high)) == 2


def test_a_job_held_by_a_tenant_limit_does_not_occupy_a_slot(tenant, other_tenant, worker_process):
    limited = enqueue_jobs(tenant=tenant, kind="tests.two_at_once", payloads=[{"seconds": 1}] * 4)
    other = enqueue_job(tenant=other_tenant, kind="tests.wait", payload={"seconds": 0})

    worker_process("default", worker_class=CONCURRENT, concurrency=3)
    wait_for(lambda: _all([*limited, other], Job.Status.SUCCEEDED), timeout=30)

    assert _most_at_once(_spans(limited)) == 2
    other_start = _spans([other])[0][0]
    assert other_start < min(end for _, end in _spans(limited))
    # Set aside without a log line or an attempt (the tenant waits for a free slot).
    assert not JobLog.objects.filter(job__in=limited, event=JobLog.Event.REQUEUED).exists()
    assert set(
        Job.objects.filter(pk__in=[j.pk for j in limited]).values_list("attempt", flat=True)
    ) == {1}


def test_a_job_past_its_timeout_is_stopped_in_its_thread_and_retried_while_others_run(
    tenant, worker_process
):
    stuck = enqueue_job(tenant=tenant, kind="tests.swallow_everything", payload={})
    others = enqueue_jobs(tenant=tenant, kind="tests.wait", payloads=[{"seconds": 2}] * 3)

    worker_process("default", worker_class=CONCURRENT, concurrency=4)
    wait_for(lambda: _all([stuck, *others], Job.Status.SUCCEEDED), timeout=40)

    stuck.refresh_from_db()
    ((start, end),) = _spans([stuck])
    assert stuck.attempt == 2
    assert end - start < 1  # attempt 2 ran to the end at once
    stopped = JobLog.objects.get(job=stuck, event=JobLog.Event.STOPPED)
    assert "timeout" in stopped.message
    assert {job.attempt for job in Job.objects.filter(pk__in=[j.pk for j in others])} == {1}


def test_canceling_one_of_several_running_jobs_stops_only_that_one(tenant, worker_process):
    jobs = enqueue_jobs(tenant=tenant, kind="tests.wait", payloads=[{"seconds": 3}] * 3)
    worker_process("default", worker_class=CONCURRENT, concurrency=3)
    wait_for(lambda: _all(jobs, Job.Status.STARTED), timeout=20)

    canceled_at = time.monotonic()
    cancel_job(Job.objects.get(pk=jobs[0].pk))
    wait_for(lambda: status_of(jobs[0]) == Job.Status.CANCELED, timeout=10)

    assert time.monotonic() - canceled_at < 2.5  # stopped, not waited for
    wait_for(lambda: _all(jobs[1:], Job.Status.SUCCEEDED), timeout=20)


def test_sigterm_lets_running_jobs_finish_within_the_grace_period_and_retries_the_rest(
    tenant, worker_process
):
    short = enqueue_jobs(
        tenant=tenant, kind="tests.sleep_then_record", payloads=[{"seconds": 1}] * 3
    )
    long = enqueue_jobs(
        tenant=tenant, kind="tests.sleep_then_record", payloads=[{"seconds": 60}] * 2
    )
    process = worker_process("default", worker_class=CONCURRENT, concurrency=5, grace=3)
    wait_for(lambda: _all(short + long, Job.Status.STARTED), timeout=20)
    waiting = enqueue_job(tenant=tenant, kind="tests.wait", payload={"seconds": 0})

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)

    assert _all(short, Job.Status.SUCCEEDED)
    assert _all(long, Job.Status.RETRYING)
    assert status_of(waiting) == Job.Status.QUEUED  # nothing new was taken
    logs = JobLog.objects.filter(job__in=long, event=JobLog.Event.STOPPED)
    assert [("grace period" in log.message) for log in logs] == [True, True]
    assert Tenant.objects.filter(slug__startswith="effect-").count() == 3


def test_kill_9_of_a_process_running_several_jobs_ends_each_exactly_once(tenant, worker_process):
    jobs = enqueue_jobs(
        tenant=tenant, kind="tests.record_then_sleep", payloads=[{"seconds": 60}] * 4
    )
    # No RQ scheduler in the victim: a killed one keeps its Redis lock for a minute.
    process = worker_process(
        "default",
        worker_class=CONCURRENT,
        concurrency=4,
        heartbeat=1,
        heartbeat_grace=2,
        scheduler=False,
    )
    wait_for(lambda: Tenant.objects.filter(slug__startswith="effect-").count() == 4)

    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    wait_for(lambda: _rescued(jobs), timeout=30, every=0.5)
    worker_process("default", worker_class=CONCURRENT, concurrency=4)
    wait_for(lambda: _all(jobs, Job.Status.SUCCEEDED), timeout=30)

    assert {job.attempt for job in Job.objects.filter(pk__in=[j.pk for j in jobs])} == {2}
    assert Tenant.objects.filter(slug__startswith="effect-").count() == 4
    rescued_logs = JobLog.objects.filter(job__in=jobs, event=JobLog.Event.RESCUED)
    assert sorted(rescued_logs.values_list("job_id", flat=True)) == sorted(j.pk for j in jobs)


@pytest.mark.parametrize(
    ("pool", "count", "most"),
    [(0, 3000, 10 + 1), (4, 1000, 4)],
    ids=["a connection per slot", "a pool of four"],
)
def test_thousands_of_jobs_leak_no_database_connection(tenant, worker_process, pool, count, most):
    jobs = enqueue_jobs(tenant=tenant, kind="tests.wait", payloads=[{"seconds": 0}] * count)
    environ = {"DATABASE_POOL_SIZE": str(pool)}
    worker_process("default", worker_class=CONCURRENT, concurrency=10, env=environ)
    seen: list[int] = []

    def done() -> bool:
        seen.append(_worker_connections())
        return not Job.objects.filter(status__in=Job.ACTIVE).exists()

    wait_for(done, timeout=120, every=0.2)

    assert _all(jobs, Job.Status.SUCCEEDED)
    assert 1 < max(seen) <= most  # one per slot (and the main thread's), or the pool's


def _rescued(jobs: list[Job]) -> bool:
    reconcile(settle_seconds=0)
    return not Job.objects.filter(
        pk__in=[job.pk for job in jobs], status=Job.Status.STARTED
    ).exists()


def _worker_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_workers_queues_metrics_and_dashboard_show_slots_and_the_jobs_in_them(
    tenant, worker_process, api_client, admin_client, client
):
    jobs = enqueue_jobs(tenant=tenant, kind="tests.wait", payloads=[{"seconds": 5}] * 3)
    worker_process("default", worker_class=CONCURRENT, concurrency=4)
    wait_for(lambda: _all(jobs, Job.Status.STARTED), timeout=20)
    api_client.force_authenticate(UserFactory.create(is_superuser=True, is_staff=True))

    (worker,) = api_client.get("/api/v1/workers/").json()
    queues = {queue["name"]: queue for queue in api_client.get("/api/v1/queues/").json()}
    metrics = client.get("/metrics").content.decode().splitlines()
    dashboard = admin_client.get(reverse("queues-dashboard-fragment")).content.decode()

    assert (worker["concurrency"], worker["busy_slots"]) == (4, 3)
    assert sorted(worker["running_job_ids"]) == sorted(str(job.pk) for job in jobs)
    assert (queues["default"]["slots"], queues["default"]["busy_slots"]) == (4, 3)
    assert (queues["email"]["slots"], queues["email"]["busy_slots"]) == (0, 0)
    assert 'conveyor_queue_slots{queue="default"} 4' in metrics
    assert 'conveyor_queue_busy_slots{queue="default"} 3' in metrics
    assert "3 / 4" in dashboard
    assert all(str(job.pk)[:8] in dashboard for job in jobs)


def test_successes_that_end_together_are_recorded_in_one_statement_once(tenant):
    jobs = enqueue_jobs(tenant=tenant, kind="tests.wait", payloads=[{"seconds": 0}] * 3)
    claimed = [found for job in jobs if (found := runner.claim(str(job.pk), tenant))]
    Job.objects.filter(pk=jobs[2].pk).update(status=Job.Status.CANCELED)  # settled meanwhile
    ended = timezone.now()
    successes = [(job, {"n": n}, ended) for n, job in enumerate(claimed)]

    with CaptureQueriesContext(connection) as queries:
        runner.record_successes(successes)
    runner.record_successes(successes)  # again, as after a retried connection

    assert sum("UPDATE jobs_job" in query["sql"] for query in queries.captured_queries) == 1
    rows = {job.pk: job for job in Job.objects.filter(pk__in=[job.pk for job in jobs])}
    assert [rows[job.pk].status for job in jobs] == ["succeeded", "succeeded", "canceled"]
    assert [rows[job.pk].result for job in jobs[:2]] == [{"n": 0}, {"n": 1}]
    assert rows[jobs[0].pk].finished_at == ended
    logged = JobLog.objects.filter(job__in=jobs, event=JobLog.Event.SUCCEEDED)
    assert sorted(logged.values_list("job_id", flat=True)) == sorted(j.pk for j in jobs[:2])
