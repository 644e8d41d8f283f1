"""Queues, workers, health, statistics and kinds through the API."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job
from jobs.runtime.worker import FastWorker
from jobs.services.jobs import enqueue_job, enqueue_jobs
from jobs.transport import queueing
from tests.factories import UserFactory

QUEUES = "/api/v1/queues/"


@pytest.fixture
def as_operator(api_client: APIClient) -> APIClient:
    api_client.force_authenticate(UserFactory.create(is_superuser=True, is_staff=True))
    return api_client


@pytest.fixture
def as_admin(api_client: APIClient, tenant_admin: User) -> APIClient:
    api_client.force_authenticate(tenant_admin)
    return api_client


@pytest.fixture
def email_worker() -> Iterator[FastWorker]:
    """An RQ worker registered in Redis as a live one is, without running it."""
    worker = FastWorker(["email"], connection=queueing.connection(), name="api-test-worker")
    worker.register_birth()
    yield worker
    worker.register_death()


def queue_named(response_json: list[dict], name: str) -> dict:
    return next(queue for queue in response_json if queue["name"] == name)


# --- Queues ------------------------------------------------------------------------------------


def test_queue_stats_list_every_queue_with_its_waiting_jobs_by_priority(as_admin, tenant):
    enqueue_job(tenant=tenant, kind="tests.email_noop", payload={}, priority="high")
    enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})

    response = as_admin.get(QUEUES)

    assert response.status_code == 200
    assert [queue["name"] for queue in response.json()] == list(settings.CONVEYOR_QUEUES)
    email = queue_named(response.json(), "email")
    assert (email["waiting"], email["paused"], email["workers"]) == (2, False, 0)
    assert email["waiting_by_priority"] == {"critical": 0, "high": 1, "normal": 1, "low": 0}


def test_an_operator_pauses_and_resumes_a_queue(as_operator):
    paused = as_operator.post(f"{QUEUES}email/pause/")
    while_paused = queue_named(as_operator.get(QUEUES).json(), "email")["paused"]
    resumed = as_operator.post(f"{QUEUES}email/resume/")

    assert paused.json() == {"name": "email", "paused": True}
    assert while_paused is True
    assert resumed.json() == {"name": "email", "paused": False}
    assert queueing.paused_queues() == set()


def test_emptying_a_queue_cancels_its_waiting_jobs_of_every_tenant(
    as_operator, tenant, other_tenant
):
    mine = enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})
    theirs = enqueue_job(tenant=other_tenant, kind="tests.email_noop", payload={})
    elsewhere = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})

    response = as_operator.post(f"{QUEUES}email/empty/")

    assert response.json() == {"name": "email", "canceled": 2}
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert (statuses[mine.pk], statuses[theirs.pk]) == ("canceled", "canceled")
    assert statuses[elsewhere.pk] == "queued"
    assert queueing.get_rq_queue("email").count == 0


def test_cleaning_a_queue_answers_how_many_records_it_removed(as_operator):
    response = as_operator.post(f"{QUEUES}email/clean/", {"older_than": 0}, format="json")

    assert response.json() == {"name": "email", "removed": 0}


@pytest.mark.parametrize("older_than", [-1, "soon", 10**12])
def test_cleaning_with_an_invalid_age_answers_400(as_operator, older_than):
    response = as_operator.post(f"{QUEUES}email/clean/", {"older_than": older_than}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["older_than"]


@pytest.mark.parametrize("operation", ["pause", "resume", "empty", "clean"])
def test_an_unknown_queue_answers_404(as_operator, operation):
    response = as_operator.post(f"{QUEUES}nowhere/{operation}/", {}, format="json")

    assert response.status_code == 404
    assert response.json()["detail"].startswith("There is no queue 'nowhere'")


# --- Workers and health ------------------------------------------------------------------------


def test_workers_are_listed_with_their_queues_and_state(as_admin, email_worker):
    response = as_admin.get("/api/v1/workers/")

    assert response.status_code == 200
    [worker] = response.json()
    assert (worker["name"], worker["queues"], worker["stale"]) == (
        "api-test-worker",
        ["email"],
        False,
    )


def test_the_full_health_report_names_each_component(as_admin, tenant):
    enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})

    body = as_admin.get("/api/v1/health/").json()

    components = {component["name"]: component for component in body["components"]}
    assert body["status"] == "error"
    figures = components["queue:email"].pop("figures")
    assert components["queue:email"] == {
        "name": "queue:email",
        "status": "error",
        "reason": "1 waiting, no live worker.",
    }
    assert (figures["waiting"], figures["workers"], figures["paused"]) == (1, 0, False)
    assert (components["database"]["status"], components["redis"]["status"]) == (
        "healthy",
        "healthy",
    )


def test_liveness_and_readiness_answer_without_credentials(api_client):
    live = api_client.get("/api/v1/health/live")
    ready = api_client.get("/api/v1/health/ready")

    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "components": [
            {"name": "database", "status": "healthy"},
            {"name": "redis", "status": "healthy"},
        ],
    }


# --- Statistics and kinds ----------------------------------------------------------------------


def _finish(job: Job, *, status: str, waited: float, ran: float) -> None:
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        status=status,
        enqueued_at=now - timedelta(seconds=waited + ran),
        started_at=now - timedelta(seconds=ran),
        finished_at=now,
    )


def test_stats_count_the_tenants_jobs_in_the_window(as_admin, tenant, other_tenant):
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 4)
    for job in jobs[:3]:
        _finish(job, status=Job.Status.SUCCEEDED, waited=1, ran=2)
    _finish(jobs[3], status=Job.Status.FAILED, waited=1, ran=1)
    enqueue_job(tenant=other_tenant, kind="jobs.noop", payload={})

    body = as_admin.get("/api/v1/jobs/stats/", {"window": "1h"}).json()

    assert body["window_seconds"] == 3600
    assert (body["counts"]["succeeded"], body["counts"]["failed"]) == (3, 1)
    assert sum(body["counts"].values()) == 4
    assert body["failure_rate"] == 0.25
    assert body["run_seconds"]["p50"] == pytest.approx(2, abs=0.1)
    assert body["by_kind"] == [
        {"kind": "jobs.noop", "total": 4, "succeeded": 3, "failed": 1, "failure_rate": 0.25}
    ]


def test_stats_narrow_to_a_queue_and_a_kind(as_admin, tenant):
    enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})

    by_queue = as_admin.get("/api/v1/jobs/stats/", {"queue": "email"}).json()
    by_kind = as_admin.get("/api/v1/jobs/stats/", {"kind": "jobs.noop"}).json()

    assert [row["kind"] for row in by_queue["by_kind"]] == ["tests.email_noop"]
    assert [row["kind"] for row in by_kind["by_kind"]] == ["jobs.noop"]
    assert by_kind["window_seconds"] == 24 * 3600


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"window": "1x"}, "Write the window as a number and m, h or d: 1h, 24h, 7d."),
        ({"window": "1h30m"}, "Write the window as a number and m, h or d: 1h, 24h, 7d."),
        ({"window": "0m"}, "The window must be between 1m and 90d."),
        ({"window": "91d"}, "The window must be between 1m and 90d."),
        ({"queue": "nowhere"}, '"nowhere" is not a valid choice.'),
    ],
)
def test_invalid_stats_parameters_answer_400(as_admin, query, message):
    response = as_admin.get("/api/v1/jobs/stats/", query)

    assert response.status_code == 400
    assert response.json() == {next(iter(query)): [message]}


def test_kinds_show_their_payload_fields_and_defaults_for_the_tenant(as_admin, tenant):
    tenant.concurrency_limits = {"tests.two_at_once": 5}
    tenant.save()

    kinds = {kind["name"]: kind for kind in as_admin.get("/api/v1/kinds/").json()}

    assert kinds["jobs.sleep"] == {
        "name": "jobs.sleep",
        "description": (
            "Sleep for `seconds` in `steps`, reporting progress and stopping if canceled."
        ),
        "queue": "default",
        "role": "agent",
        "timeout": 180,
        "max_attempts": 3,
        "rate_limit": None,
        "concurrency": None,
        "payload_schema": {
            "seconds": {"type": "float", "required": True},
            "steps": {"type": "integer", "required": False},
        },
    }
    assert kinds["tests.rate_limited"]["rate_limit"] == "10/s"
    assert kinds["tests.two_at_once"]["concurrency"] == 5
    assert "jobs.reconcile_jobs" not in kinds
    assert "communications.finish_campaign" not in kinds


def test_the_kinds_list_costs_one_query_however_many_kinds(as_admin, django_assert_num_queries):
    with django_assert_num_queries(1):  # the caller's role
        response = as_admin.get("/api/v1/kinds/")

    assert len(response.json()) > 5
