"""The daily digest (opt-in, per tenant) and the figures workers report with their heartbeat."""

import pytest
from django.core import mail
from rest_framework.test import APIClient

from alerts.services.digests import send_digests, subscribe
from jobs.models import Schedule
from jobs.runtime.worker import FastWorker
from jobs.services.jobs import enqueue_job
from jobs.services.schedules import ensure_system_schedules
from jobs.transport import queueing
from tenants.models import Role
from tests.factories import UserFactory, make_member

pytestmark = pytest.mark.django_db


def test_the_digest_tells_each_subscribed_member_their_own_tenants_day(
    tenant, other_tenant, viewer, run_worker, django_capture_on_commit_callbacks
):
    theirs = make_member(other_tenant, Role.ADMIN, username="globex-admin")
    subscribe(tenant=tenant, user=viewer)
    subscribe(tenant=other_tenant, user=theirs)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            enqueue_job(tenant=tenant, kind="jobs.fail", payload={"permanent": True})
        enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    run_worker(["default"])

    with django_capture_on_commit_callbacks(execute=True):
        queued = send_digests()
    run_worker(["email"])

    mine = next(m for m in mail.outbox if m.to == [viewer.email])
    other = next(m for m in mail.outbox if m.to == [theirs.email])
    assert queued == 2
    assert mine.subject == "Conveyor daily digest: Acme"
    assert "Jobs run: 3 (1 succeeded, 2 failed)" in mine.body
    assert "Dead letters waiting: 2" in mine.body
    assert "jobs.fail: 2" in mine.body
    assert "Jobs run: 0 (0 succeeded, 0 failed)" in other.body


def test_the_digest_is_a_built_in_daily_schedule():
    ensure_system_schedules()

    digest = Schedule.objects.get(is_system=True, kind="alerts.send_digests")

    assert (digest.cron, digest.enabled) == ("0 7 * * *", True)


def test_workers_report_their_memory_cpu_load_and_disk_to_the_api_and_metrics(client, settings):
    settings.CONVEYOR_FIGURES_SECONDS = 0
    worker = FastWorker(["default"], connection=queueing.connection())
    worker.register_birth()
    worker.heartbeat()
    worker.report_figures()
    operator_api = APIClient()
    operator_api.force_authenticate(UserFactory.create(is_superuser=True))

    [listed] = operator_api.get("/api/v1/workers/").json()
    metrics = client.get("/metrics").content.decode()
    worker.register_death()

    assert listed["figures"]["rss_mb"] > 1
    assert 0 <= listed["figures"]["disk_free_percent"] <= 100
    assert f'conveyor_worker_memory_bytes{{worker="{worker.name}"' in metrics
    assert "conveyor_worker_host_disk_free_bytes{" in metrics
