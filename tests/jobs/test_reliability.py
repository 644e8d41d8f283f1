"""Nothing lost: the reconciler, dead workers, health command, metrics, job logs."""

import logging
import time

import pytest
from django.core.management import call_command
from django.db import OperationalError

from jobs.models import Job, JobLog
from jobs.runtime import runner
from jobs.runtime.reconciler import reconcile
from jobs.runtime.worker import FastWorker
from jobs.services.jobs import enqueue_job, enqueue_jobs
from jobs.transport import queueing
from tests.jobs.conftest import kill_machine, status_of, wait_for


def test_jobs_redis_lost_are_handed_over_again_and_run(tenant, run_worker):
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 3)
    queueing.connection().flushdb()  # Redis restarted without persistence

    outcome = reconcile(settle_seconds=0)
    run_worker()

    assert outcome.repushed == 3
    assert {status_of(job) for job in jobs} == {Job.Status.SUCCEEDED}
    assert JobLog.objects.filter(event=JobLog.Event.REQUEUED).count() == 3


def test_a_job_redis_holds_as_failed_while_the_row_waits_is_handed_over_again(tenant, run_worker):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    queueing.connection().hset(f"rq:job:{job.rq_id}", "status", "failed")

    outcome = reconcile(settle_seconds=0)
    run_worker()

    assert outcome.repushed == 1
    assert status_of(job) == Job.Status.SUCCEEDED


def test_the_reconciler_leaves_running_and_waiting_jobs_alone(tenant, worker_process):
    running = enqueue_job(tenant=tenant, kind="jobs.sleep", payload={"seconds": 3})
    worker_process("default")
    wait_for(lambda: status_of(running) == Job.Status.STARTED)
    waiting = enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})

    outcome = reconcile(settle_seconds=0)

    assert outcome.total == 0
    assert status_of(running) == Job.Status.STARTED
    assert status_of(waiting) == Job.Status.QUEUED
    wait_for(lambda: status_of(running) == Job.Status.SUCCEEDED)


def test_a_job_whose_worker_was_killed_is_rescued_and_retried(tenant, worker_process):
    job = enqueue_job(tenant=tenant, kind="jobs.sleep", payload={"seconds": 60}, max_attempts=2)
    process = worker_process("default", heartbeat=1, heartbeat_grace=2)
    wait_for(lambda: status_of(job) == Job.Status.STARTED)

    kill_machine(process)
    wait_for(lambda: reconcile(settle_seconds=0).rescued.get("retrying") == 1, every=0.5)

    job.refresh_from_db()
    assert (job.status, job.attempt) == (Job.Status.RETRYING, 1)
    assert JobLog.objects.filter(job=job, event=JobLog.Event.RESCUED).exists()
    assert queueing.rq_state(job) is not None


def test_a_rescued_job_without_attempts_left_fails_visibly(tenant, worker_process):
    job = enqueue_job(tenant=tenant, kind="jobs.sleep", payload={"seconds": 60}, max_attempts=1)
    process = worker_process("default", heartbeat=1, heartbeat_grace=2)
    wait_for(lambda: status_of(job) == Job.Status.STARTED)

    kill_machine(process)
    wait_for(lambda: bool(reconcile(settle_seconds=0).rescued), every=0.5)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "worker is gone" in job.error_message


def test_queue_health_exits_non_zero_unless_healthy(tenant, capsys):
    call_command("queue_health")
    healthy = capsys.readouterr().out
    enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    with pytest.raises(SystemExit) as exited:
        call_command("queue_health")

    assert healthy.startswith("HEALTHY")
    assert exited.value.code == 2
    assert "no live worker" in capsys.readouterr().out


def test_metrics_are_prometheus_text_and_honour_the_token(tenant, client, settings):
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 2)

    open_answer = client.get("/metrics")
    settings.CONVEYOR_METRICS_TOKEN = "s3cret"
    refused = client.get("/metrics")
    allowed = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})

    assert open_answer.status_code == 200
    assert 'conveyor_queue_jobs{queue="default",state="waiting"} 2' in open_answer.text
    assert "conveyor_health_status 2" in open_answer.text
    assert refused.status_code == 401
    assert allowed.status_code == 200


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_lines_logged_while_a_job_runs_carry_its_id_and_tenant(tenant, run_worker):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    collect, runner_log = _Collect(), logging.getLogger("jobs.runtime.runner")
    runner_log.addHandler(collect)
    runner_log.setLevel(logging.DEBUG)

    try:
        run_worker()
    finally:
        runner_log.removeHandler(collect)

    tags = {(record.job_id, record.tenant) for record in collect.records}  # type: ignore[attr-defined]
    assert tags == {(str(job.pk), tenant.slug)}


def test_recording_an_outcome_is_retried_while_the_database_is_unreachable(monkeypatch):
    monkeypatch.setattr(runner, "RECORD_RETRY_WAITS", (0, 0, 0))
    calls: list[int] = []

    @runner.persisting
    def record() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("server closed the connection")
        return "recorded"

    assert record() == "recorded"
    assert len(calls) == 3


def test_overdue_delayed_jobs_reach_their_queue_even_when_no_rq_scheduler_runs(tenant, run_worker):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, delay=1)
    wait_for(lambda: queueing.rq_state(job)["status"] == "scheduled")  # type: ignore[index]
    time.sleep(2.5)  # RQ rounds the due time up to the next whole second

    early = reconcile(settle_seconds=0, overdue_seconds=60)
    overdue = reconcile(settle_seconds=0, overdue_seconds=0)
    worker = FastWorker(["default"], connection=queueing.connection())
    worker.work(burst=True)

    assert (early.overdue, overdue.overdue) == (0, 1)
    assert status_of(job) == Job.Status.SUCCEEDED
