"""Leases and fencing: a rescued attempt writes nothing, attempts never pass max_attempts, the
reconciler cannot lock itself out, and job bodies get tools to make their effects once."""

import contextlib
import os
import signal
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.errors import LeaseLost, RetryableError
from jobs.models import Job, JobLog, OnceMarker
from jobs.runtime import runner
from jobs.runtime.context import JobContext
from jobs.runtime.reconciler import reconcile, rescue_orphans
from jobs.runtime.supervisor import Death, settle_dead_worker
from jobs.selectors.queues import health_report
from jobs.services.cleanup import clean_up_jobs
from jobs.services.jobs import enqueue_job
from jobs.transport import queueing
from tenants.models import Tenant


def _started(tenant: Tenant, **options) -> Job:
    job = enqueue_job(tenant=tenant, kind="tests.step_then_record", payload={}, **options)
    claimed = runner.claim(job.rq_id, tenant)
    assert claimed is not None
    return claimed


def _rescue(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert rescue_orphans(limit=10) == {Job.Status.RETRYING: 1}


def test_a_rescued_attempt_can_write_nothing_and_its_successor_is_untouched(tenant):
    stale = _started(tenant)
    _rescue(stale)
    Job.objects.filter(pk=stale.pk).update(scheduled_at=None)
    fresh = runner.claim(stale.rq_id, tenant)
    assert fresh is not None
    lines = JobLog.objects.filter(job=stale).count()

    with pytest.raises(LeaseLost):
        JobContext(stale).progress(50, "late")
    with pytest.raises(LeaseLost):
        JobContext(stale).log("late")
    runner._retry(stale, RetryableError("late"), delay=0)
    runner._fail(stale, RetryableError("late"))
    runner._succeed(stale, {"late": True})

    job = Job.objects.get(pk=stale.pk)
    assert (job.status, job.attempt, job.lease, job.progress) == (Job.Status.STARTED, 2, 2, 0)
    assert JobLog.objects.filter(job=stale).count() == lines
    assert queueing.is_cancel_requested(stale)  # the old attempt was told to stop
    assert not queueing.is_cancel_requested(fresh)


def test_an_attempt_past_max_attempts_never_begins_the_job_fails_instead(tenant):
    job = enqueue_job(tenant=tenant, kind="tests.step_then_record", payload={}, max_attempts=2)
    Job.objects.filter(pk=job.pk).update(attempt=2, status=Job.Status.RETRYING)

    assert runner.claim(job.rq_id, tenant) is None

    job.refresh_from_db()
    assert (job.status, job.attempt, job.error_type) == (Job.Status.FAILED, 2, "AttemptsExhausted")
    assert not JobLog.objects.filter(job=job, event=JobLog.Event.STARTED).exists()


def test_a_started_job_with_a_fresh_lease_is_not_rescued_though_redis_lost_its_heartbeat(tenant):
    job = _started(tenant)
    queueing.connection().flushdb()  # Redis restarted empty under a live worker

    outcome = reconcile(settle_seconds=0)

    assert outcome.rescued == {}
    assert Job.objects.get(pk=job.pk).status == Job.Status.STARTED


def test_renewing_a_lease_extends_it_only_for_the_worker_running_the_attempt(tenant):
    job = _started(tenant)
    before = Job.objects.get(pk=job.pk).lease_expires_at
    assert before is not None

    assert not runner.renew_lease(job.rq_id, worker="someone-else")
    time.sleep(0.01)
    assert runner.renew_lease(job.rq_id, worker=job.worker_name)
    after = Job.objects.get(pk=job.pk).lease_expires_at
    assert after is not None
    assert after > before


def test_once_is_true_once_per_tenant_and_a_rolled_back_effect_leaves_no_marker(tenant):
    ctx = JobContext(_started(tenant))

    with pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        ctx.once("charge:1")
    with contextlib.suppress(ValueError), transaction.atomic():
        assert ctx.once("charge:1")
        raise ValueError("rolled back")
    with transaction.atomic():
        first = ctx.once("charge:1")
    with transaction.atomic():
        again = ctx.once("charge:1")

    assert (first, again) == (True, False)
    assert OnceMarker.objects.for_tenant(tenant).filter(name="charge:1").count() == 1


def test_once_refuses_an_attempt_that_lost_its_lease(tenant):
    stale = _started(tenant)
    _rescue(stale)

    with pytest.raises(LeaseLost), transaction.atomic():
        JobContext(stale).once("charge:1")
    assert not OnceMarker.objects.exists()


def test_the_idempotency_key_is_the_same_for_every_attempt(tenant):
    first = _started(tenant)
    _rescue(first)
    Job.objects.filter(pk=first.pk).update(scheduled_at=None)
    second = runner.claim(first.rq_id, tenant)
    assert second is not None

    assert JobContext(first).idempotency_key == JobContext(second).idempotency_key
    assert JobContext(first).idempotency_key == f"conveyor-{first.pk}"


def test_health_is_degraded_when_no_reconcile_pass_completed_recently(tenant, settings):
    assert _reconciler(health_report())["status"] == "healthy"  # never scheduled here
    job = enqueue_job(tenant=tenant, kind="jobs.reconcile_jobs", payload={})
    long_ago = timezone.now() - timedelta(minutes=10)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.SUCCEEDED, created_at=long_ago, finished_at=long_ago
    )

    stale = _reconciler(health_report())
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now())
    fresh = _reconciler(health_report())

    assert stale["status"] == "degraded"
    assert "completed 600 s ago" in stale["reason"]
    assert fresh["status"] == "healthy"


def _reconciler(report: dict) -> dict:
    return next(c for c in report["components"] if c["name"] == "reconciler")


def test_a_dead_workers_jobs_are_settled_saying_how_it_died(tenant):
    job = _started(tenant)
    killed = Death(signal.SIGKILL)  # a wait status: killed by signal 9

    settle_dead_worker(job.worker_name, killed)

    job.refresh_from_db()
    reason = "its worker process died (signal 9 (SIGKILL)) while running it"
    assert (job.status, job.error_message) == (Job.Status.RETRYING, reason)
    assert JobLog.objects.filter(job=job, event=JobLog.Event.STOPPED).exists()
    assert Death(1 << 8).describe() == "exit code 1"
    assert os.WIFSIGNALED(killed.status)


def test_once_markers_in_the_admin_are_read_only_and_scoped_to_the_users_tenants(
    admin_client, tenant, other_tenant, tenant_admin
):
    mine = OnceMarker.objects.create(tenant=tenant, name="invoice-paid:1")
    OnceMarker.objects.create(tenant=other_tenant, name="invoice-paid:2")
    staff = Client()
    staff.force_login(tenant_admin)
    listing = reverse("admin:jobs_oncemarker_changelist")

    everyone = admin_client.get(listing)
    own = staff.get(listing)
    page = staff.get(reverse("admin:jobs_oncemarker_change", args=[mine.pk]))
    added = staff.get(reverse("admin:jobs_oncemarker_add"))
    job_page = admin_client.get(reverse("admin:jobs_job_change", args=[_started(tenant).pk]))

    assert len(everyone.context["cl"].result_list) == 2
    assert [m.name for m in own.context["cl"].result_list] == ["invoice-paid:1"]
    assert page.status_code == 200
    assert "Save" not in page.content.decode()
    assert added.status_code == 403
    assert job_page.status_code == 200
    assert "Lease expires at" in job_page.content.decode()


def test_the_clean_up_drops_once_markers_past_their_days_and_keeps_the_rest(tenant, settings):
    settings.CONVEYOR_ONCE_MARKER_DAYS = 30
    old = OnceMarker.objects.create(tenant=tenant, name="welcome:1")
    OnceMarker.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    recent = OnceMarker.objects.create(tenant=tenant, name="welcome:2")

    assert clean_up_jobs(dry_run=True).once_markers == 1
    assert clean_up_jobs().once_markers == 1
    assert list(OnceMarker.objects.values_list("pk", flat=True)) == [recent.pk]

    settings.CONVEYOR_ONCE_MARKER_DAYS = 0
    OnceMarker.objects.filter(pk=recent.pk).update(created_at=timezone.now() - timedelta(days=999))
    assert clean_up_jobs().once_markers == 0
