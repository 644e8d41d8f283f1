"""Tenants see figures about their own jobs only: queues, workers and health; superusers all."""

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job
from jobs.services.jobs import enqueue_job
from tenants.models import Tenant
from tests.jobs.conftest import status_of, wait_for


def api_as(user: Any, tenant: Tenant | None = None) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    if tenant is not None:
        client.credentials(HTTP_X_TENANT=tenant.slug)
    return client


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


def test_queue_counts_are_the_tenants_own_and_operators_see_everyones(
    tenant, other_tenant, tenant_admin, admin_user
):
    for _ in range(3):
        enqueue_job(tenant=other_tenant, kind="jobs.noop", payload={})
    enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, priority="high")

    mine = by_name(api_as(tenant_admin, tenant).get("/api/v1/queues/").json())["default"]
    everyone = by_name(api_as(admin_user).get("/api/v1/queues/").json())["default"]

    assert (mine["waiting"], mine["waiting_by_priority"]["high"]) == (1, 1)
    assert mine["oldest_waiting_seconds"] is not None
    assert everyone["waiting"] == 4


def test_health_reports_the_tenants_own_failure_rate(
    tenant, other_tenant, tenant_admin, admin_user
):
    now = timezone.now()
    Job.objects.bulk_create(
        Job(
            tenant=other_tenant,
            kind="jobs.fail",
            queue="default",
            timeout=60,
            status=Job.Status.FAILED,
            finished_at=now - timedelta(minutes=1),
        )
        for _ in range(10)
    )

    def failure_rate(client: APIClient) -> str:
        components = client.get("/api/v1/health/").json()["components"]
        return next(c["reason"] for c in components if c["name"] == "failure_rate")

    assert failure_rate(api_as(tenant_admin, tenant)).startswith("0% of 0 jobs")
    assert failure_rate(api_as(admin_user)).startswith("100% of 10 jobs")


def test_workers_name_only_the_tenants_own_running_job(
    tenant, other_tenant, tenant_admin, admin_user, worker_process
):
    theirs = enqueue_job(tenant=other_tenant, kind="jobs.sleep", payload={"seconds": 3})
    worker_process("default")
    wait_for(lambda: status_of(theirs) == Job.Status.STARTED, timeout=30)

    def busy(client: APIClient) -> list[Any]:
        return [w["current_job_id"] for w in client.get("/api/v1/workers/").json()]

    assert str(theirs.pk) in busy(api_as(admin_user))
    assert str(theirs.pk) not in busy(api_as(tenant_admin, tenant))
    assert all(
        w["successful_jobs"] == 0
        for w in api_as(tenant_admin, tenant).get("/api/v1/workers/").json()
    )
