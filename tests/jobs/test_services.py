"""Services' promises and refusals, the enqueue command, backoff and graceful shutdown."""

import json
import signal
import statistics
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rq.job import Job as RQJob

from jobs.errors import InvalidTransition, UnknownKind, UnknownQueue
from jobs.kinds import get_kind
from jobs.models import Job, JobLog, Priority
from jobs.runtime.runner import backoff
from jobs.services.jobs import cancel_jobs, enqueue_job, enqueue_jobs, retry_job, retry_jobs
from jobs.services.queues import clean_queue, empty_queue
from jobs.transport import queueing
from tests.jobs.conftest import status_of, wait_for


def test_a_payload_the_kind_refuses_is_answered_with_field_errors(tenant):
    with pytest.raises(ValidationError) as refused:
        enqueue_job(tenant=tenant, kind="jobs.sleep", payload={"seconds": -1})

    assert "seconds" in refused.value.detail
    assert Job.objects.count() == 0


def test_unknown_kinds_queues_and_priorities_are_refused_clearly(tenant):
    with pytest.raises(UnknownKind, match="nope"):
        enqueue_job(tenant=tenant, kind="nope", payload={})
    with pytest.raises(UnknownQueue, match="the queues are"):
        enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, queue="bogus")
    with pytest.raises(ValidationError, match="priority"):
        enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, priority="urgent")


def test_an_inactive_tenant_cannot_enqueue(tenant):
    tenant.is_active = False
    tenant.save()

    with pytest.raises(InvalidTransition, match="inactive"):
        enqueue_job(tenant=tenant, kind="jobs.noop", payload={})


def test_a_delayed_job_is_scheduled_in_redis_and_runs_when_due(tenant, work_until):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, delay=1)
    assert status_of(job) == Job.Status.SCHEDULED
    assert queueing.rq_state(job)["status"] == "scheduled"  # type: ignore[index]

    work_until(lambda: status_of(job) == Job.Status.SUCCEEDED, timeout=10)

    job.refresh_from_db()
    assert job.started_at
    assert job.scheduled_at
    assert job.started_at >= job.scheduled_at


def test_bulk_enqueue_records_every_job_and_refuses_all_if_one_payload_is_bad(tenant):
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.sleep", payloads=[{"seconds": 0}] * 300)
    with pytest.raises(ValidationError) as refused:
        enqueue_jobs(tenant=tenant, kind="jobs.sleep", payloads=[{"seconds": 0}, {"seconds": "x"}])

    assert len(jobs) == 300
    assert Job.objects.filter(status=Job.Status.QUEUED).count() == 300
    assert JobLog.objects.filter(event=JobLog.Event.ENQUEUED).count() == 300
    assert queueing.get_rq_queue("default").count == 300
    assert "1" in refused.value.detail["payloads"]  # type: ignore[call-overload]


def test_bulk_enqueued_log_lines_belong_to_their_jobs_and_go_with_them(tenant, other_tenant):
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 60)
    others = enqueue_jobs(tenant=other_tenant, kind="jobs.noop", payloads=[{}] * 3)

    lines = JobLog.objects.filter(job__in=jobs)
    assert sorted(lines.values_list("job_id", flat=True)) == sorted(job.pk for job in jobs)
    assert set(lines.values_list("tenant_id", "event", "level")) == {
        (tenant.pk, JobLog.Event.ENQUEUED, JobLog.Level.INFO)
    }
    assert all(line.created_at == line.job.created_at for line in lines.select_related("job"))

    # PostgreSQL does not check log lines' keys: Django deletes them with their job or tenant.
    jobs[0].delete()
    assert lines.count() == 59
    tenant.delete()
    assert not JobLog.objects.exclude(job__in=others).exists()
    assert JobLog.objects.filter(job__in=others).count() == 3


def test_retrying_a_failed_job_gives_it_fresh_attempts_and_other_jobs_cannot_be_retried(
    tenant, run_worker
):
    job = enqueue_job(tenant=tenant, kind="jobs.fail", payload={"permanent": True})
    fine = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    run_worker()

    retry_job(job)

    assert status_of(job) == Job.Status.QUEUED
    assert Job.objects.get(pk=job.pk).attempt == 0
    with pytest.raises(InvalidTransition, match="only failed or canceled"):
        retry_job(fine)


def test_bulk_cancel_and_retry_report_what_they_did(tenant, run_worker):
    done = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    run_worker()
    waiting = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 3)

    canceled = cancel_jobs(Job.objects.for_tenant(tenant))
    retried = retry_jobs(Job.objects.for_tenant(tenant))

    assert canceled == {"canceled": 3, "cancel_requested": 0, "skipped": 1}
    assert retried == {"retried": 3, "skipped": 1}
    assert status_of(done) == Job.Status.SUCCEEDED
    assert {status_of(job) for job in waiting} == {Job.Status.QUEUED}


def test_emptying_a_queue_cancels_its_waiting_jobs_and_drops_them_from_redis(tenant, run_worker):
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 5)
    later = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, delay=60)
    deferred = enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, depends_on=[later])
    # On another queue, but waiting on a job the emptying cancels: canceled with it.
    follower = enqueue_job(
        tenant=tenant, kind="tests.email_noop", payload={}, depends_on=[deferred]
    )
    other = enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})

    count = empty_queue("default")
    run_worker()

    assert count == 7
    assert {status_of(job) for job in [*jobs, later, deferred, follower]} == {Job.Status.CANCELED}
    assert status_of(other) == Job.Status.SUCCEEDED
    assert queueing.get_rq_queue("default").count == 0
    assert queueing.get_rq_queue("default").scheduled_job_registry.count == 0


def test_cleaning_a_queue_drops_old_finished_rq_records_only(tenant, run_worker):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    run_worker()

    kept = clean_queue("default", older_than=3600)
    dropped = clean_queue("default", older_than=0)

    assert (kept, dropped) == (0, 1)
    assert not RQJob.exists(job.rq_id, connection=queueing.connection())


def test_backoff_grows_exponentially_with_full_jitter_and_stays_under_the_cap():
    kind = get_kind("jobs.fail")  # base 1 s

    samples = {attempt: [backoff(kind, attempt) for _ in range(400)] for attempt in range(1, 16)}

    for attempt, delays in samples.items():
        ceiling = min(kind.max_delay, kind.base_delay * 2 ** (attempt - 1))
        assert all(0 <= delay <= ceiling for delay in delays)
        assert statistics.mean(delays) == pytest.approx(ceiling / 2, rel=0.2)
    assert max(max(delays) for delays in samples.values()) <= kind.max_delay
    assert len({round(delay, 6) for delay in samples[5]}) > 300


def test_the_enqueue_command_enqueues_with_the_same_validation_as_the_api(tenant, capsys):
    call_command("enqueue", "jobs.sleep", '{"seconds": 1}', "--tenant", tenant.slug)
    job_id, status = capsys.readouterr().out.split()

    assert Job.objects.get(pk=job_id).payload == {"seconds": 1.0, "steps": 10}
    assert status == Job.Status.QUEUED
    with pytest.raises(CommandError, match="seconds"):
        call_command("enqueue", "jobs.sleep", '{"seconds": "soon"}', "--tenant", tenant.slug)
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("enqueue", "jobs.sleep", "{seconds", "--tenant", tenant.slug)
    with pytest.raises(CommandError, match="No tenant"):
        call_command("enqueue", "jobs.noop", "--tenant", "ghost")
    with pytest.raises(CommandError, match="No job kind"):
        call_command("enqueue", "jobs.nope", "--tenant", tenant.slug)


def test_the_enqueue_command_takes_priority_and_delay(tenant, capsys):
    call_command(
        "enqueue", "jobs.noop", "--tenant", tenant.slug, "--priority", "high", "--delay", "30"
    )
    job = Job.objects.get(pk=capsys.readouterr().out.split()[0])

    assert (job.priority, job.status) == (Priority.HIGH, Job.Status.SCHEDULED)
    assert job.scheduled_at
    assert job.scheduled_at > timezone.now() + timedelta(seconds=20)
    assert json.loads(json.dumps(job.payload)) == {}


def test_sigterm_lets_the_running_job_finish_within_the_grace_period(tenant, worker_process):
    job = enqueue_job(tenant=tenant, kind="jobs.sleep", payload={"seconds": 1, "steps": 4})
    process = worker_process("default")
    wait_for(lambda: status_of(job) == Job.Status.STARTED)

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=15) == 0
    assert status_of(job) == Job.Status.SUCCEEDED


@pytest.mark.parametrize(
    "worker_class", ["jobs.runtime.worker.FastWorker", "jobs.runtime.worker.Worker"]
)
def test_a_job_outliving_the_grace_period_is_stopped_and_retried_not_lost(
    tenant, worker_process, worker_class
):
    job = enqueue_job(
        tenant=tenant, kind="jobs.sleep", payload={"seconds": 30, "steps": 30}, max_attempts=3
    )
    process = worker_process("default", worker_class=worker_class, grace=2)
    wait_for(lambda: status_of(job) == Job.Status.STARTED)

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)

    job.refresh_from_db()
    assert job.status == Job.Status.RETRYING
    assert job.attempt == 1
    assert queueing.rq_state(job) is not None
