"""Operators' per-tenant controls (pause, caps, weights, overrides) and per-tenant visibility."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.urls import reverse
from rest_framework.test import APIClient

from jobs.errors import BacklogFull
from jobs.models import Job
from jobs.services.jobs import enqueue_job, enqueue_jobs
from jobs.transport import fair, queueing
from tenants.models import Tenant
from tenants.services import pause_tenant, resume_tenant, set_dispatch
from tests.factories import UserFactory
from tests.jobs.conftest import status_of

JOBS = "/api/v1/jobs/"


@pytest.fixture
def operator() -> User:
    return UserFactory.create(is_superuser=True, is_staff=True)


@pytest.fixture
def as_operator(api_client: APIClient, operator: User) -> APIClient:
    api_client.force_authenticate(operator)
    return api_client


def test_a_paused_tenants_jobs_wait_while_others_run_and_run_after_resume(
    tenant, other_tenant, operator, run_worker
):
    paused = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    pause_tenant(tenant, by=operator)
    other = enqueue_job(tenant=other_tenant, kind="jobs.noop", payload={})

    run_worker(["default"])
    while_paused = (status_of(paused), status_of(other))
    resume_tenant(tenant, by=operator)
    run_worker(["default"])

    assert while_paused == (Job.Status.QUEUED, Job.Status.SUCCEEDED)
    assert status_of(paused) == Job.Status.SUCCEEDED
    messages = LogEntry.objects.filter(object_id=str(tenant.pk)).values_list(
        "change_message", flat=True
    )
    assert len(messages) == 2
    assert all("paused_queues" in message for message in messages)


def test_pausing_one_queue_leaves_the_tenants_other_queues_running(tenant, run_worker):
    pause_tenant(tenant, queue="default")
    held = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    email = enqueue_job(tenant=tenant, kind="tests.email_noop", payload={})

    run_worker(["default", "email"])

    assert (status_of(held), status_of(email)) == (Job.Status.QUEUED, Job.Status.SUCCEEDED)


def test_a_capped_tenant_gets_429_naming_the_cap_and_nothing_is_enqueued(tenant, agent, api_client):
    set_dispatch(tenant, backlog_caps={"default": 3})
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 3)
    api_client.force_authenticate(agent)

    response = api_client.post(JOBS, {"kind": "jobs.noop", "payload": {}}, format="json")

    assert response.status_code == 429
    assert "at most 3 job(s) waiting on default" in response.json()["detail"]
    assert response["Retry-After"]
    assert Job.objects.filter(tenant=tenant).count() == 3
    assert queueing.queue_counts("default")["waiting"] == 3


def test_bulk_enqueue_past_the_cap_is_all_or_nothing(tenant, other_tenant):
    set_dispatch(tenant, backlog_caps={"default": 10})
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 8)

    with pytest.raises(BacklogFull, match="8 wait already and this adds 5"):
        enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 5)
    enqueue_jobs(tenant=other_tenant, kind="jobs.noop", payloads=[{}] * 5)  # not capped

    assert Job.objects.filter(tenant=tenant).count() == 8
    assert queueing.queue_counts("default")["waiting"] == 13


def test_operators_change_dispatch_through_the_api_and_it_is_in_the_admin_log(tenant, as_operator):
    url = f"/api/v1/tenants/{tenant.slug}/dispatch/"
    change = {
        "weight": 4,
        "backlog_caps": {"email": 100},
        "rate_limits": {"email": "20/s"},
        "concurrency_limits": {"imports": 1},
    }

    response = as_operator.patch(url, change, format="json")

    assert response.status_code == 200
    assert response.json() == {"tenant": tenant.slug, "paused_queues": [], **change}
    tenant.refresh_from_db()
    assert (tenant.weight, tenant.rate_limits) == (4, {"email": "20/s"})
    assert queueing.connection().hget(fair.WEIGHTS_KEY, str(tenant.pk)) == b"4"
    entry = LogEntry.objects.get(object_id=str(tenant.pk))
    assert "weight: 1 → 4" in entry.change_message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weight": 0}, "weight"),
        ({"paused_queues": ["nope"]}, "paused_queues"),
        ({"backlog_caps": {"nope": 3}}, "backlog_caps"),
        ({"rate_limits": {"email": "fast"}}, "rate_limits"),
    ],
)
def test_bad_dispatch_changes_answer_400_naming_the_field(tenant, as_operator, change, field):
    response = as_operator.patch(f"/api/v1/tenants/{tenant.slug}/dispatch/", change, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert Tenant.objects.get(pk=tenant.pk).weight == 1


def test_only_superusers_control_dispatch(tenant, tenant_owner, api_client):
    api_client.force_authenticate(tenant_owner)

    responses = [
        api_client.get(f"/api/v1/tenants/{tenant.slug}/dispatch/"),
        api_client.patch(f"/api/v1/tenants/{tenant.slug}/dispatch/", {"weight": 5}),
        api_client.post(f"/api/v1/tenants/{tenant.slug}/pause/"),
        api_client.post(f"/api/v1/tenants/{tenant.slug}/resume/"),
    ]

    assert [response.status_code for response in responses] == [403] * 4
    assert Tenant.objects.get(pk=tenant.pk).weight == 1


def test_pause_and_resume_through_the_api(tenant, as_operator):
    paused = as_operator.post(f"/api/v1/tenants/{tenant.slug}/pause/", {"queue": "email"})
    resumed = as_operator.post(f"/api/v1/tenants/{tenant.slug}/resume/", {"queue": "email"})
    unknown = as_operator.post(f"/api/v1/tenants/{tenant.slug}/pause/", {"queue": "nope"})

    assert paused.json()["paused_queues"] == ["email"]
    assert resumed.json()["paused_queues"] == []
    assert unknown.status_code == 400
    assert as_operator.post("/api/v1/tenants/missing/pause/").status_code == 404


def test_the_admin_pauses_and_resumes_tenants_and_logs_it(admin_client, tenant):
    url = reverse("admin:tenants_tenant_changelist")

    admin_client.post(url, {"action": "pause_work", "_selected_action": [tenant.pk]})
    paused = Tenant.objects.get(pk=tenant.pk).paused_queues
    admin_client.post(url, {"action": "resume_work", "_selected_action": [tenant.pk]})

    assert paused == ["*"]
    assert Tenant.objects.get(pk=tenant.pk).paused_queues == []
    assert LogEntry.objects.filter(object_id=str(tenant.pk)).count() == 2
    assert not queueing.connection().sismember(fair.PAUSED_KEY, str(tenant.pk))


def test_tenant_owners_see_but_cannot_change_dispatch_in_the_admin(client, tenant, tenant_owner):
    tenant_owner.is_staff = True
    tenant_owner.save()
    client.force_login(tenant_owner)

    page = client.get(reverse("admin:tenants_tenant_change", args=[tenant.pk]))
    changelist = client.get(reverse("admin:tenants_tenant_changelist"))

    assert page.status_code == 200
    assert 'name="weight"' not in page.content.decode()
    assert "pause_work" not in changelist.content.decode()


def test_tenant_backlog_stats_show_operators_the_top_tenants_and_members_their_own(
    tenant, other_tenant, tenant_admin, as_operator, api_client
):
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 3)
    enqueue_jobs(tenant=other_tenant, kind="jobs.noop", payloads=[{}] * 5)
    url = "/api/v1/jobs/stats/tenants/"

    everyone = as_operator.get(url, {"top": 1}).json()
    member = APIClient()
    member.force_authenticate(tenant_admin)
    own = member.get(url).json()

    assert [(row["tenant"], row["waiting"]) for row in everyone] == [
        (other_tenant.slug, 5),
        ("other", 3),
    ]
    assert own == [
        {
            "tenant": tenant.slug,
            "queue": "default",
            "waiting": 3,
            "running": 0,
            "wait_p95_seconds": None,
        }
    ]


def test_the_dashboard_lists_top_tenants_and_a_tenant_admin_only_their_own(
    admin_client, client, tenant, other_tenant, tenant_admin
):
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 2)
    enqueue_jobs(tenant=other_tenant, kind="jobs.noop", payloads=[{}] * 4)
    tenant_admin.is_staff = True
    tenant_admin.save()
    client.force_login(tenant_admin)

    operator_page = admin_client.get(reverse("queues-dashboard-fragment")).content.decode()
    own_page = client.get(reverse("queues-dashboard-fragment")).content.decode()

    assert "Top tenants by backlog" in operator_page
    assert operator_page.index(other_tenant.slug) < operator_page.index(tenant.slug)
    assert tenant.slug in own_page
    assert other_tenant.slug not in own_page


def test_metrics_label_the_top_tenants_and_sum_the_rest_as_other(
    tenant, other_tenant, client, settings
):
    settings.CONVEYOR_METRICS_TOP_TENANTS = 1
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 2)
    enqueue_jobs(tenant=other_tenant, kind="jobs.noop", payloads=[{}] * 4)

    text = client.get("/metrics").content.decode()

    assert f'conveyor_tenant_waiting_jobs{{queue="default",tenant="{other_tenant.slug}"}} 4' in text
    assert 'conveyor_tenant_waiting_jobs{queue="default",tenant="other"} 2' in text
    assert f'tenant="{tenant.slug}"' not in text
