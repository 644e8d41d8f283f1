"""Each injected cause makes `queue_health` and `/api/v1/health/` say degraded or error, naming
the component: no live worker, Redis down, a high failure rate, an old backlog."""

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
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
from jobs.services.jobs import enqueue_job
from jobs.transport import queueing
from tenants.models import Tenant
from tests.factories import UserFactory


@contextmanager
def _idle_worker() -> Iterator[None]:
    """A live worker listening on `default` that takes no job."""
    worker = FastWorker(["default"], connection=queueing.connection())
    worker.register_birth()
    worker.heartbeat()
    try:
        yield
    finally:
        worker.register_death()


def _jobs_waiting_with_no_worker(tenant: Tenant) -> AbstractContextManager:
    enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    return nullcontext()


def _redis_down(tenant: Tenant) -> AbstractContextManager:
    unreachable = {
        name: {**config, "URL": "redis://127.0.0.1:1/0"}
        for name, config in settings.RQ_QUEUES.items()
    }
    return override_settings(RQ_QUEUES=unreachable)


def _ended_jobs(tenant: Tenant, *, failed: int, succeeded: int) -> None:
    now = timezone.now()
    Job.objects.bulk_create(
        Job(tenant=tenant, kind="jobs.noop", queue="default", timeout=60, status=status,
            finished_at=now)
        for status in [Job.Status.FAILED] * failed + [Job.Status.SUCCEEDED] * succeeded
    )  # fmt: skip


def _many_failures(tenant: Tenant) -> AbstractContextManager:
    _ended_jobs(tenant, failed=6, succeeded=14)  # 30 %
    return nullcontext()


def _some_failures(tenant: Tenant) -> AbstractContextManager:
    _ended_jobs(tenant, failed=3, succeeded=17)  # 15 %
    return nullcontext()


def _old_backlog(tenant: Tenant) -> AbstractContextManager:
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    enqueued = timezone.now() - timedelta(seconds=600)
    queueing.connection().hset(f"rq:job:{job.rq_id}", "enqueued_at", utcformat(enqueued))
    return _idle_worker()


CAUSES: dict[str, tuple[Callable[[Tenant], AbstractContextManager], str, str, str]] = {
    # cause: (inject, overall status, component, words of its reason)
    "no live worker": (_jobs_waiting_with_no_worker, "error", "queue:default", "no live worker"),
    "Redis down": (_redis_down, "error", "redis", "Redis unreachable"),
    "failure rate over 25 %": (_many_failures, "error", "failure_rate", "30% of 20 jobs failed"),
    "failure rate over 10 %": (_some_failures, "degraded", "failure_rate", "15% of 20 jobs"),
    "old backlog": (_old_backlog, "degraded", "queue:default", "(threshold 300 s)"),
}


@pytest.mark.parametrize("cause", CAUSES)
def test_the_command_and_the_api_report_each_cause(cause, tenant, capsys):
    inject, expected, component, reason = CAUSES[cause]
    api = APIClient()
    api.force_authenticate(UserFactory.create(is_superuser=True, is_staff=True))
    healthy = api.get("/api/v1/health/").json()["status"]

    with ExitStack() as stack:
        stack.enter_context(inject(tenant))
        with pytest.raises(SystemExit) as exited:
            call_command("queue_health", "--json")
        answer = api.get("/api/v1/health/").json()

    report = json.loads(capsys.readouterr().out)
    assert healthy == "healthy"
    assert (report["status"], answer["status"]) == (expected, expected)
    assert exited.value.code == {"degraded": 1, "error": 2}[expected]
    for said in (report, answer):
        named = {c["name"]: c for c in said["components"]}
        assert named[component]["status"] == expected
        assert reason in named[component]["reason"]
