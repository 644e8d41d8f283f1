"""Statistics, queue and worker state, and health, read from real PostgreSQL and Redis."""

from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from jobs.models import Job
from jobs.selectors.queues import health_report, list_workers, queue_stats
from jobs.selectors.stats import hourly_activity, job_stats
from jobs.services.jobs import cancel_job, enqueue_job, enqueue_jobs
from jobs.services.queues import empty_queue, pause_queue
from tests.factories import TenantFactory
from tests.jobs.conftest import status_of, wait_for


def _finish(job: Job, *, status: str, waited: float, ran: float) -> None:
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        status=status,
        enqueued_at=now - timedelta(seconds=waited + ran),
        started_at=now - timedelta(seconds=ran),
        finished_at=now,
    )


def test_job_stats_count_statuses_and_measure_waits_runs_and_failures(tenant):
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 10)
    for index, job in enumerate(jobs[:8]):
        _finish(job, status=Job.Status.SUCCEEDED, waited=index + 1, ran=2 * (index + 1))
    for job in jobs[8:]:
        _finish(job, status=Job.Status.FAILED, waited=1, ran=1)
    other = TenantFactory.create()
    enqueue_job(tenant=other, kind="jobs.noop", payload={})

    stats = job_stats(tenant=tenant, window=timedelta(hours=1))

    assert stats["counts"][Job.Status.SUCCEEDED] == 8
    assert stats["counts"][Job.Status.FAILED] == 2
    assert sum(stats["counts"].values()) == 10
    assert stats["failure_rate"] == 0.2
    assert stats["wait_seconds"]["p50"] is not None
    assert 1 <= stats["wait_seconds"]["p50"] <= 8
    assert stats["run_seconds"]["p95"] >= stats["run_seconds"]["p50"]
    assert stats["by_kind"] == [
        {"kind": "jobs.noop", "total": 10, "succeeded": 8, "failed": 2, "failure_rate": 0.2}
    ]


def test_queue_stats_show_waiting_by_priority_paused_flag_and_oldest_wait(tenant):
    enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, priority="high")
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 2)
    pause_queue("default")

    stats = {queue["name"]: queue for queue in queue_stats()}

    default = stats["default"]
    assert default["waiting"] == 3
    assert default["waiting_by_priority"] == {"critical": 0, "high": 1, "normal": 2, "low": 0}
    assert default["paused"] is True
    assert default["oldest_waiting_seconds"] is not None
    assert stats["email"]["waiting"] == 0


def test_workers_are_listed_with_their_queues_and_current_job(tenant, worker_process):
    job = enqueue_job(tenant=tenant, kind="jobs.sleep", payload={"seconds": 5})
    worker_process("default", "email")
    wait_for(lambda: status_of(job) == Job.Status.STARTED)

    workers = list_workers()

    assert len(workers) == 1
    assert workers[0]["queues"] == ["default", "email"]
    assert workers[0]["current_job_id"] == str(job.pk)
    assert workers[0]["stale"] is False
    cancel_job(job)


def test_health_is_an_error_when_jobs_wait_with_no_worker_and_healthy_when_idle(tenant):
    healthy = health_report()
    enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    report = health_report()

    assert healthy["status"] == "healthy"
    assert report["status"] == "error"
    queue = next(c for c in report["components"] if c["name"] == "queue:default")
    assert queue["reason"] == "1 waiting, no live worker."


def test_health_degrades_at_ten_percent_failures_and_errors_at_twenty_five(tenant):
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 20)
    empty_queue("default")
    for job in jobs[:17]:
        _finish(job, status=Job.Status.SUCCEEDED, waited=0, ran=0)
    for job in jobs[17:]:
        _finish(job, status=Job.Status.FAILED, waited=0, ran=0)

    degraded = health_report()
    Job.objects.filter(pk__in=[job.pk for job in jobs[:3]]).update(status=Job.Status.FAILED)
    failing = health_report()

    assert degraded["status"] == "degraded"
    assert failing["status"] == "error"
    rate = next(c for c in failing["components"] if c["name"] == "failure_rate")
    assert rate["reason"].startswith("30% of 20 jobs failed")


def test_health_reports_redis_down_as_an_error():
    unreachable = {"default": {"URL": "redis://127.0.0.1:1/0"}}

    with override_settings(RQ_QUEUES=unreachable):
        report = health_report()

    assert report["status"] == "error"
    redis = next(c for c in report["components"] if c["name"] == "redis")
    assert redis["status"] == "error"


def test_hourly_activity_buckets_finished_jobs_by_queue_and_hour(tenant):
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 3)
    for job in jobs[:2]:
        _finish(job, status=Job.Status.SUCCEEDED, waited=0, ran=0)
    _finish(jobs[2], status=Job.Status.FAILED, waited=0, ran=0)

    rows = hourly_activity(tenant=tenant)

    assert [(row["queue"], row["succeeded"], row["failed"]) for row in rows] == [("default", 2, 1)]
