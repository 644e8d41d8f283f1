"""An old backlog with a live worker makes health `degraded`, in selectors, command and API."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient
from rq.utils import utcformat

from jobs.models import Job
from jobs.runtime.worker import FastWorker
from jobs.selectors.queues import health_report
from jobs.services.jobs import enqueue_job
from jobs.transport import queueing
from tests.factories import UserFactory


@pytest.fixture
def idle_worker() -> Iterator[FastWorker]:
    """A live worker listening on `default` that takes no job."""
    worker = FastWorker(["default"], connection=queueing.connection())
    worker.register_birth()
    worker.heartbeat()
    yield worker
    worker.register_death()


def _waiting_since(job: Job, *, seconds_ago: int) -> None:
    enqueued = timezone.now() - timedelta(seconds=seconds_ago)
    queueing.connection().hset(f"rq:job:{job.rq_id}", "enqueued_at", utcformat(enqueued))


def _queue_check(report: dict) -> dict:
    return next(c for c in report["components"] if c["name"] == "queue:default")


def test_a_backlog_older_than_the_threshold_degrades_health(tenant, idle_worker):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    fresh = health_report()
    _waiting_since(job, seconds_ago=600)

    report = health_report()

    assert fresh["status"] == "healthy"
    assert report["status"] == "degraded"
    assert _queue_check(report)["status"] == "degraded"
    assert "threshold 300 s" in _queue_check(report)["reason"]


def test_the_command_and_the_api_say_degraded_for_an_old_backlog(tenant, idle_worker, capsys):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    _waiting_since(job, seconds_ago=5)
    api = APIClient()
    api.force_authenticate(UserFactory.create(is_superuser=True, is_staff=True))

    limits = {**settings.CONVEYOR_HEALTH, "max_wait_seconds": 1}
    with override_settings(CONVEYOR_HEALTH=limits):
        with pytest.raises(SystemExit) as exited:
            call_command("queue_health")
        answer = api.get("/api/v1/health/")

    assert exited.value.code == 1
    assert capsys.readouterr().out.startswith("DEGRADED")
    assert answer.json()["status"] == "degraded"
    assert _queue_check(answer.json())["status"] == "degraded"
