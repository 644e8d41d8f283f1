"""The API while Redis is down, and per-tenant and per-user throttling (429 with Retry-After)."""

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from jobs.models import Job
from jobs.services.jobs import enqueue_job
from tenants.models import Role, Tenant
from tests.factories import MembershipFactory, UserFactory, make_member

JOBS = "/api/v1/jobs/"


@pytest.fixture
def redis_down() -> Iterator[None]:
    with override_settings(RQ_QUEUES=_unreachable()):
        yield


def _unreachable() -> dict:
    """Every queue pointed at a closed port, as when Redis is unreachable."""
    return {
        name: {**config, "URL": "redis://127.0.0.1:1/0"}
        for name, config in settings.RQ_QUEUES.items()
    }


@pytest.fixture
def as_agent(api_client: APIClient, agent: User) -> APIClient:
    api_client.force_authenticate(agent)
    return api_client


@pytest.fixture
def as_operator(api_client: APIClient) -> APIClient:
    api_client.force_authenticate(UserFactory.create(is_superuser=True, is_staff=True))
    return api_client


def a_job(tenant: Tenant, status: str) -> Job:
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    Job.objects.filter(pk=job.pk).update(status=status)
    job.refresh_from_db()
    return job


# --- Redis down --------------------------------------------------------------------------------


def test_enqueue_still_answers_202_with_a_pending_job_while_redis_is_down(as_agent, redis_down):
    response = as_agent.post(JOBS, {"kind": "jobs.noop"}, format="json")

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert Job.objects.get(pk=response.json()["id"]).status == Job.Status.PENDING


def test_reading_jobs_and_cancelling_a_waiting_one_work_while_redis_is_down(as_agent, tenant):
    job = a_job(tenant, Job.Status.QUEUED)

    with override_settings(RQ_QUEUES=_unreachable()):
        listed = as_agent.get(JOBS)
        canceled = as_agent.post(f"{JOBS}{job.pk}/cancel/")

    assert listed.status_code == 200
    assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")


@pytest.mark.parametrize(
    ("status", "action"),
    [(Job.Status.STARTED, "cancel"), (Job.Status.FAILED, "retry")],
)
def test_stopping_or_retrying_a_job_answers_503_and_changes_nothing_while_redis_is_down(
    as_agent, tenant, redis_down, status, action
):
    job = a_job(tenant, status)

    response = as_agent.post(f"{JOBS}{job.pk}/{action}/")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "Redis is unreachable" in response.json()["detail"]
    job.refresh_from_db()
    assert (job.status, job.cancel_requested_at) == (status, None)


@pytest.mark.parametrize("url", [f"{JOBS}bulk-cancel/", f"{JOBS}bulk-retry/"])
def test_bulk_operations_answer_503_while_redis_is_down(as_agent, tenant, redis_down, url):
    job = a_job(tenant, Job.Status.FAILED)

    response = as_agent.post(url, {"ids": [str(job.pk)]}, format="json")

    assert response.status_code == 503
    assert Job.objects.get(pk=job.pk).status == Job.Status.FAILED


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/queues/"),
        ("get", "/api/v1/workers/"),
        ("post", "/api/v1/queues/email/pause/"),
        ("post", "/api/v1/queues/email/resume/"),
        ("post", "/api/v1/queues/email/empty/"),
        ("post", "/api/v1/queues/email/clean/"),
    ],
)
def test_queue_operations_answer_503_while_redis_is_down(as_operator, redis_down, method, url):
    response = getattr(as_operator, method)(url)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"


def test_emptying_a_queue_while_redis_is_down_cancels_nothing(as_operator, tenant):
    job = enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})

    with override_settings(RQ_QUEUES=_unreachable()):
        response = as_operator.post("/api/v1/queues/email/empty/")

    assert response.status_code == 503
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


def test_health_reports_the_outage_and_readiness_fails(as_operator, redis_down):
    health = as_operator.get("/api/v1/health/")
    ready = as_operator.get("/api/v1/health/ready")
    live = as_operator.get("/api/v1/health/live")

    assert (health.status_code, health.json()["status"]) == (200, "error")
    redis = next(c for c in health.json()["components"] if c["name"] == "redis")
    assert redis["status"] == "error"
    assert ready.status_code == 503
    assert ready.json()["components"][1] == {"name": "redis", "status": "error"}
    assert live.status_code == 200


# --- Throttling --------------------------------------------------------------------------------


@pytest.fixture
def three_a_day() -> Iterator[None]:
    """A tenant budget of three requests; a day long, so no window ends during the test."""
    rates = {"user": "100000/min", "tenant": "3/day"}
    with override_settings(
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    ):
        yield


def test_a_tenant_over_its_budget_gets_429_with_retry_after(as_agent, three_a_day):
    responses = [as_agent.get(JOBS) for _ in range(4)]

    assert [response.status_code for response in responses] == [200, 200, 200, 429]
    assert 0 < int(responses[-1]["Retry-After"]) <= 24 * 3600
    assert responses[-1].json()["detail"].startswith("Request was throttled.")


def test_the_budget_is_shared_by_the_tenants_users_and_separate_per_tenant(
    api_client, tenant, other_tenant, agent, viewer, three_a_day
):
    outsider = make_member(other_tenant, Role.AGENT)
    for user in (agent, agent, viewer):
        api_client.force_authenticate(user)
        api_client.get(JOBS)

    api_client.force_authenticate(viewer)
    same_tenant = api_client.get(JOBS)
    api_client.force_authenticate(outsider)
    other = api_client.get(JOBS)

    assert (same_tenant.status_code, other.status_code) == (429, 200)


def test_a_users_budget_is_shared_by_their_tenants(api_client, tenant, other_tenant, agent):
    MembershipFactory.create(user=agent, tenant=other_tenant, role=Role.AGENT)
    rates = {"user": "3/day", "tenant": "100000/min"}
    api_client.force_authenticate(agent)

    with override_settings(
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    ):
        answers = [
            api_client.get(JOBS, HTTP_X_TENANT=slug).status_code
            for slug in ("acme", "globex", "acme", "globex")
        ]

    assert answers == [200, 200, 200, 429]


def test_health_checks_for_load_balancers_are_never_throttled(api_client, three_a_day):
    answers = {api_client.get("/api/v1/health/live").status_code for _ in range(5)}

    assert answers == {200}


def test_requests_are_not_throttled_while_redis_is_down(as_agent, three_a_day, redis_down):
    answers = [as_agent.get(JOBS).status_code for _ in range(5)]

    assert answers == [200] * 5
