"""Every endpoint × role × tenant: who may do what (PRODUCT.md §2), and 404 across tenants."""

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from jobs.models import Job
from jobs.services.jobs import enqueue_job
from tenants.models import Role, Tenant
from tests.factories import UserFactory, make_member


@pytest.fixture(autouse=True)
def _committed(db: None) -> None:
    """Who may do what needs no committed transactions: roll each test back, which is faster."""


ROLES = ["viewer", "agent", "admin", "owner", "superuser", "anonymous"]
SUPERUSER = "superuser"
PUBLIC = "public"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # "{job}" is replaced by the target job's id
    needs: str  # the lowest role allowed, "superuser" or "public"
    ok: int = 200
    body: Any = None
    job_status: str = Job.Status.QUEUED  # the target job's status, so that the action can succeed

    @property
    def about_a_job(self) -> bool:
        return "{job}" in self.path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("get", "/api/v1/jobs/", Role.VIEWER),
    Endpoint("post", "/api/v1/jobs/", Role.AGENT, 202, {"kind": "jobs.noop", "payload": {}}),
    Endpoint("get", "/api/v1/jobs/{job}/", Role.VIEWER),
    Endpoint("post", "/api/v1/jobs/{job}/cancel/", Role.AGENT),
    Endpoint("post", "/api/v1/jobs/{job}/retry/", Role.AGENT, 202, job_status=Job.Status.FAILED),
    Endpoint("get", "/api/v1/jobs/{job}/logs/", Role.VIEWER),
    Endpoint("post", "/api/v1/jobs/bulk-cancel/?status=queued", Role.AGENT, body={}),
    Endpoint("post", "/api/v1/jobs/bulk-retry/?status=failed", Role.AGENT, body={}),
    Endpoint("post", "/api/v1/jobs/bulk-discard/?status=failed", Role.ADMIN, body={}),
    Endpoint(
        "post", "/api/v1/jobs/bulk/", Role.AGENT, 202, {"kind": "jobs.noop", "payloads": [{}]}
    ),
    Endpoint("get", "/api/v1/jobs/logs/", Role.VIEWER),
    Endpoint("get", "/api/v1/batches/", Role.VIEWER),
    Endpoint("post", "/api/v1/batches/", Role.AGENT, 202, {"members": [{"kind": "jobs.noop"}]}),
    Endpoint(
        "post", "/api/v1/jobs/{job}/retry-now/", Role.AGENT, 202, job_status=Job.Status.SCHEDULED
    ),
    Endpoint("get", "/api/v1/jobs/stats/?window=1h", Role.ADMIN),
    Endpoint("get", "/api/v1/kinds/", Role.VIEWER),
    Endpoint("get", "/api/v1/queues/", Role.ADMIN),
    Endpoint("post", "/api/v1/queues/email/pause/", SUPERUSER),
    Endpoint("post", "/api/v1/queues/email/resume/", SUPERUSER),
    Endpoint("post", "/api/v1/queues/email/empty/", SUPERUSER),
    Endpoint("post", "/api/v1/queues/email/clean/", SUPERUSER, body={"older_than": 60}),
    Endpoint("get", "/api/v1/workers/", Role.ADMIN),
    Endpoint("get", "/api/v1/health/", Role.ADMIN),
    Endpoint("get", "/api/v1/health/live", PUBLIC),
    Endpoint("get", "/api/v1/health/ready", PUBLIC),
]


def expected_status(endpoint: Endpoint, role: str, tenant: str) -> int:
    if endpoint.needs == PUBLIC:
        return endpoint.ok
    if role == "anonymous":
        return 401
    if endpoint.needs == SUPERUSER:  # queues are shared: no tenant is involved
        return endpoint.ok if role == SUPERUSER else 403
    if tenant == "other" and role != SUPERUSER and not endpoint.about_a_job:
        return 404  # the X-Tenant header names a tenant the caller is not in
    if role != SUPERUSER and Role.rank(role) < Role.rank(endpoint.needs):
        return 403  # checked in the caller's own tenant, before any job is looked up
    if tenant == "other" and endpoint.about_a_job:
        return 404  # the job belongs to another tenant
    return endpoint.ok


def caller(role: str, tenant: Tenant) -> User | None:
    if role == "anonymous":
        return None
    if role == SUPERUSER:
        return UserFactory.create(is_superuser=True, is_staff=True)
    return make_member(tenant, role)


def target_job(tenant: Tenant, status: str) -> Job:
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    Job.objects.filter(pk=job.pk).update(status=status)
    return job


@pytest.mark.parametrize("tenant_case", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_each_endpoint_answers_each_role_and_tenant_as_the_role_matrix_says(
    api_client: APIClient,
    tenant: Tenant,
    other_tenant: Tenant,
    endpoint: Endpoint,
    role: str,
    tenant_case: str,
) -> None:
    job_tenant = other_tenant if tenant_case == "other" and endpoint.about_a_job else tenant
    job = target_job(job_tenant, endpoint.job_status)
    header = "globex" if tenant_case == "other" and not endpoint.about_a_job else "acme"
    user = caller(role, tenant)
    if user is not None:
        api_client.force_authenticate(user)

    response = getattr(api_client, endpoint.method)(
        endpoint.path.format(job=job.pk), endpoint.body, format="json", HTTP_X_TENANT=header
    )

    assert response.status_code == expected_status(endpoint, role, tenant_case), response.json()
    if response.status_code == 403:
        assert endpoint.needs in response.json()["detail"]


@pytest.mark.parametrize(
    "path", ["/api/v1/jobs/{job}/", "/api/v1/jobs/{job}/logs/", "/api/v1/jobs/{job}/cancel/"]
)
def test_another_tenants_job_and_a_missing_one_answer_alike(
    api_client: APIClient, tenant: Tenant, other_tenant: Tenant, agent: User, path: str
) -> None:
    theirs = target_job(other_tenant, Job.Status.QUEUED)
    api_client.force_authenticate(agent)
    method = api_client.post if path.endswith("cancel/") else api_client.get

    foreign = method(path.format(job=theirs.pk))
    missing = method(path.format(job="00000000-0000-4000-8000-000000000000"))

    assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())
    assert foreign.status_code == 404
    assert Job.objects.get(pk=theirs.pk).status == Job.Status.QUEUED


def test_bulk_operations_never_touch_another_tenants_jobs_named_by_id(
    api_client: APIClient, tenant: Tenant, other_tenant: Tenant, agent: User
) -> None:
    theirs = target_job(other_tenant, Job.Status.QUEUED)
    api_client.force_authenticate(agent)

    response = api_client.post(
        "/api/v1/jobs/bulk-cancel/", {"ids": [str(theirs.pk)]}, format="json"
    )

    assert response.json() == {"canceled": 0, "cancel_requested": 0, "skipped": 0}
    assert Job.objects.get(pk=theirs.pk).status == Job.Status.QUEUED
