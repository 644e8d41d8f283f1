"""The job engine end to end: real PostgreSQL, real Redis, real RQ workers."""

import subprocess
import sys
import time
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from rq import Queue
from rq.job import Job as RQJob

from jobs.errors import InvalidTransition
from jobs.models import Job, JobLog, Priority
from jobs.runtime.reconciler import reconcile
from jobs.services.jobs import cancel_job, create_batch, enqueue_job, enqueue_jobs, retry_job
from jobs.services.queues import pause_queue, resume_queue
from jobs.transport import queueing
from tests.jobs.conftest import status_of, wait_for


def results_of(jobs: list[Job]) -> list[dict[str, Any]]:
    return [job.result or {} for job in Job.objects.filter(pk__in=[j.pk for j in jobs])]


def events(job: Job) -> list[str]:
    return list(JobLog.objects.filter(job=job).values_list("event", flat=True))


def test_a_job_enqueued_in_a_rolled_back_transaction_never_runs(tenant, run_worker):
    def enqueue_then_fail() -> None:
        with transaction.atomic():
            enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        enqueue_then_fail()

    ran = run_worker()

    assert not ran
    assert Job.objects.count() == 0
    assert queueing.get_rq_queue("default").count == 0


def test_a_job_enqueued_while_redis_is_down_stays_pending_and_runs_once_reconciled(
    tenant, run_worker
):
    unreachable = {
        name: {**config, "URL": "redis://127.0.0.1:1/0"}
        for name, config in settings.RQ_QUEUES.items()
    }
    with override_settings(RQ_QUEUES=unreachable):
        job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={"n": 1})
    assert status_of(job) == Job.Status.PENDING

    outcome = reconcile(settle_seconds=0)
    run_worker()

    assert outcome.pushed == 1
    job.refresh_from_db()
    assert (job.status, job.attempt, job.result) == (Job.Status.SUCCEEDED, 1, {"n": 1})


def test_the_same_idempotency_key_while_active_yields_one_job_and_a_new_one_after(
    tenant, run_worker
):
    first = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, idempotency_key="k1")
    again = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, idempotency_key="k1")
    run_worker()
    later = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, idempotency_key="k1")

    assert again.pk == first.pk
    assert later.pk != first.pk
    assert Job.objects.count() == 2


def test_a_critical_job_starts_before_a_thousand_normal_ones_and_equals_run_in_order(
    tenant, run_worker
):
    normal = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{"i": i} for i in range(1000)])
    critical = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, priority=Priority.CRITICAL)

    run_worker(["default"], max_jobs=1)
    run_worker(["default"], max_jobs=5)

    assert status_of(critical) == Job.Status.SUCCEEDED
    done = Job.objects.filter(status=Job.Status.SUCCEEDED).exclude(pk=critical.pk)
    assert sorted(job.payload["i"] for job in done) == [0, 1, 2, 3, 4]
    started = list(done.order_by("started_at").values_list("payload__i", flat=True))
    assert started == [0, 1, 2, 3, 4]
    assert (
        Job.objects.filter(pk__in=[j.pk for j in normal], status=Job.Status.QUEUED).count() == 995
    )


def test_a_job_failing_twice_then_succeeding_ends_succeeded_on_its_third_attempt(
    tenant, work_until
):
    job = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"times": 2}, max_attempts=3)

    work_until(lambda: status_of(job) in Job.FINISHED)

    job.refresh_from_db()
    assert (job.status, job.attempt) == (Job.Status.SUCCEEDED, 3)
    retries = JobLog.objects.filter(job=job, event=JobLog.Event.RETRY_SCHEDULED)
    assert [log.data["attempt"] for log in retries] == [1, 2]
    assert all("failing on purpose" in log.message for log in retries)


def test_a_permanent_error_fails_at_once_and_is_dead_lettered(tenant, run_worker):
    job = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"permanent": True}, max_attempts=5)

    run_worker()

    job.refresh_from_db()
    assert (job.status, job.attempt, job.error_type) == (Job.Status.FAILED, 1, "PermanentError")
    assert events(job)[-2:] == [JobLog.Event.FAILED, JobLog.Event.DEAD_LETTERED]


def test_a_job_that_times_out_is_retried_and_fails_after_its_last_attempt(tenant, work_until):
    job = enqueue_job(
        tenant=tenant,
        kind="jobs.sleep",
        payload={"seconds": 5, "steps": 1},
        timeout=1,
        max_attempts=2,
    )

    work_until(lambda: status_of(job) in Job.FINISHED, timeout=30)

    job.refresh_from_db()
    assert (job.status, job.attempt, job.error_type) == (
        Job.Status.FAILED,
        2,
        "JobTimedOut",
    )
    assert events(job).count(JobLog.Event.RETRY_SCHEDULED) == 1


def test_a_canceled_queued_job_never_runs(tenant, run_worker):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    cancel_job(job)
    run_worker()

    job.refresh_from_db()
    assert (job.status, job.attempt) == (Job.Status.CANCELED, 0)
    assert JobLog.Event.STARTED not in events(job)


def test_cancelling_twice_is_harmless_and_cancelling_a_finished_job_is_an_error(tenant, run_worker):
    waiting = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    done = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    cancel_job(waiting)
    run_worker()

    again = cancel_job(waiting)

    assert again.status == Job.Status.CANCELED
    with pytest.raises(InvalidTransition, match="already succeeded"):
        cancel_job(done)


@pytest.mark.parametrize(
    "worker_class", ["jobs.runtime.worker.FastWorker", "jobs.runtime.worker.Worker"]
)
def test_a_running_sleep_job_stops_within_one_step_when_canceled(
    tenant, worker_process, worker_class
):
    job = enqueue_job(tenant=tenant, kind="jobs.sleep", payload={"seconds": 20, "steps": 40})
    worker_process("default", worker_class=worker_class)
    wait_for(lambda: status_of(job) == Job.Status.STARTED)

    cancel_job(job)

    asked = time.monotonic()
    wait_for(lambda: status_of(job) == Job.Status.CANCELED, timeout=10)
    assert time.monotonic() - asked < 2
    assert JobLog.Event.CANCEL_REQUESTED in events(job)
    assert Job.objects.get(pk=job.pk).progress < 100


def test_a_paused_queue_waits_while_others_run_and_runs_once_resumed(tenant, run_worker):
    paused = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    other = enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})

    pause_queue("default")
    run_worker(["default", "email"])
    statuses_while_paused = (status_of(paused), status_of(other))
    resume_queue("default")
    run_worker(["default", "email"])

    assert statuses_while_paused == (Job.Status.QUEUED, Job.Status.SUCCEEDED)
    assert status_of(paused) == Job.Status.SUCCEEDED


def test_fifty_jobs_limited_to_ten_a_second_take_over_four_and_a_half_seconds(
    tenant, worker_process
):
    jobs = enqueue_jobs(tenant=tenant, kind="tests.rate_limited", payloads=[{}] * 50)
    worker_process("default")
    worker_process("default")

    wait_for(
        lambda: (
            not Job.objects.filter(pk__in=[j.pk for j in jobs]).exclude(status="succeeded").exists()
        ),
        timeout=30,
    )

    starts = sorted(result["start"] for result in results_of(jobs))
    assert starts[-1] - starts[0] >= 4.5
    # No one-second window holds more than ten starts (give or take one for clock jitter).
    assert max(sum(1 for s in starts if first <= s < first + 1) for first in starts) <= 11
    assert set(Job.objects.values_list("attempt", flat=True)) == {1}


def test_a_tenant_concurrency_limit_of_two_is_never_exceeded(tenant, worker_process):
    jobs = enqueue_jobs(tenant=tenant, kind="tests.two_at_once", payloads=[{"seconds": 0.3}] * 8)
    for _ in range(3):
        worker_process("default")

    wait_for(
        lambda: (
            not Job.objects.filter(pk__in=[j.pk for j in jobs]).exclude(status="succeeded").exists()
        ),
        timeout=40,
    )

    spans = results_of(jobs)
    moments = sorted({span["start"] for span in spans} | {span["end"] for span in spans})
    busiest = max(
        sum(1 for span in spans if span["start"] <= moment < span["end"]) for moment in moments
    )
    assert busiest == 2
    assert set(Job.objects.values_list("attempt", flat=True)) == {1}


def test_a_dependent_of_a_failed_parent_is_canceled_with_the_reason(tenant, run_worker):
    parent = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"permanent": True})
    child = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, depends_on=[parent])
    grandchild = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, depends_on=[child])
    assert status_of(child) == Job.Status.DEFERRED

    run_worker()

    assert (status_of(child), status_of(grandchild)) == (Job.Status.CANCELED, Job.Status.CANCELED)
    reason = JobLog.objects.get(job=child, event=JobLog.Event.CANCELED).message
    assert str(parent.pk) in reason
    assert "failed" in reason


def test_a_dependent_runs_after_all_its_parents_succeed(tenant, run_worker):
    parents = [enqueue_job(tenant=tenant, kind="jobs.noop", payload={}) for _ in range(2)]
    child = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, depends_on=parents)

    run_worker()

    child.refresh_from_db()
    assert child.status == Job.Status.SUCCEEDED
    parents_finished = Job.objects.filter(pk__in=[p.pk for p in parents]).values_list(
        "finished_at", flat=True
    )
    assert child.started_at
    assert all(finished and finished < child.started_at for finished in parents_finished)


def test_a_batch_runs_its_callback_once_with_the_counts(tenant, run_worker):
    with transaction.atomic():
        batch = create_batch(
            tenant=tenant, callback_kind="tests.collect", callback_payload={"note": "done"}
        )
        enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 15, batch=batch)
        enqueue_jobs(
            tenant=tenant, kind="jobs.fail", payloads=[{"permanent": True}] * 5, batch=batch
        )

    run_worker()

    batch.refresh_from_db()
    callbacks = Job.objects.filter(kind="tests.collect")
    assert callbacks.count() == 1
    assert callbacks.get().status == Job.Status.SUCCEEDED
    assert callbacks.get().result == {
        "note": "done",
        "batch_id": str(batch.pk),
        "succeeded": 15,
        "failed": 5,
        "canceled": 0,
    }
    assert batch.total == 20
    assert batch.finished_at is not None


def test_redelivering_a_job_that_already_ran_does_nothing(tenant, run_worker):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    run_worker()

    queueing.push_many([job])
    run_worker()

    job.refresh_from_db()
    assert (job.status, job.attempt) == (Job.Status.SUCCEEDED, 1)
    assert events(job).count(JobLog.Event.STARTED) == 1


def test_rq_sees_our_queues_and_jobs(tenant):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    redis = queueing.connection()

    names = {queue.name for queue in Queue.all(connection=redis)}
    rq_job = RQJob.fetch(str(job.pk), connection=redis)
    url = settings.RQ_QUEUES["default"]["URL"]
    info = subprocess.run(
        [sys.executable, "-m", "rq.cli", "info", "--url", url, "--only-queues", "default"],
        capture_output=True,
        text=True,
        check=True,
    )

    assert "default" in names
    assert (rq_job.description or "").startswith("jobs.noop")
    assert rq_job.get_status() == "queued"
    assert (rq_job.func_name, rq_job.args) == (
        queueing.EXECUTE,
        (job.rq_id, "jobs.noop", tenant.pk),
    )
    assert "default" in info.stdout


def test_rq_reads_every_job_of_a_bulk_enqueue(tenant):
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * queueing.MANY)
    redis = queueing.connection()

    fetched = [
        rq_job
        for rq_job in RQJob.fetch_many([job.rq_id for job in jobs], connection=redis)
        if rq_job is not None
    ]

    assert [(rq_job.func_name, rq_job.args) for rq_job in fetched] == [
        (queueing.EXECUTE, (job.rq_id, "jobs.noop", tenant.pk)) for job in jobs
    ]
    assert {rq_job.get_status() for rq_job in fetched} == {"queued"}
    assert Queue("default", connection=redis).job_ids == [job.rq_id for job in jobs]


def test_a_job_canceled_while_running_and_then_retried_is_not_stopped_by_the_old_flag(
    tenant, worker_process, work_until
):
    job = enqueue_job(tenant=tenant, kind="jobs.sleep", payload={"seconds": 20, "steps": 40})
    process = worker_process("default")
    wait_for(lambda: status_of(job) == Job.Status.STARTED)
    cancel_job(job)
    wait_for(lambda: status_of(job) == Job.Status.CANCELED, timeout=10)
    process.terminate()
    process.wait(timeout=15)
    queueing.request_stop(Job.objects.get(pk=job.pk))  # a flag left over, as if Redis kept it
    Job.objects.filter(pk=job.pk).update(payload={"seconds": 0.4, "steps": 4})

    retry_job(job)
    work_until(lambda: status_of(job) in Job.FINISHED)

    job.refresh_from_db()
    assert (job.status, job.attempt, job.progress) == (Job.Status.SUCCEEDED, 1, 100)
