"""Only public kinds reach tenants: the API, schedules (API and admin) and the scheduler's tick."""

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.kinds import all_kinds, public_kinds
from jobs.models import Job, Schedule
from jobs.services.schedules import run_due_schedules, run_schedule_now
from tenants.models import Role, Tenant

INTERNAL = [
    "communications.finish_campaign",
    "communications.send_campaign_batch",
    "communications.launch_campaign",
    "communications.import_contacts",
    "communications.export_contacts",
    "communications.deliver_webhook",
    "reports.generate_report",
    "reports.roll_up_analytics",
    "jobs.clean_up_jobs",
    "jobs.reconcile_jobs",
]


def api_as(user: Any, tenant: Tenant) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    client.credentials(HTTP_X_TENANT=tenant.slug)
    return client


def registered_internal() -> list[str]:
    names = {kind.name for kind in all_kinds()}
    return [name for name in INTERNAL if name in names]


def test_every_workload_kind_is_internal_and_the_demo_kinds_are_public():
    public = {kind.name for kind in public_kinds()}

    assert set(registered_internal()) == set(INTERNAL)
    assert not public & set(INTERNAL)
    assert {"jobs.noop", "jobs.sleep", "jobs.fail"} <= public


@pytest.mark.parametrize("kind", INTERNAL)
def test_an_owner_cannot_enqueue_an_internal_kind_through_the_api(tenant, tenant_owner, kind):
    response = api_as(tenant_owner, tenant).post(
        "/api/v1/jobs/", {"kind": kind, "payload": {"campaign_id": 1}}, format="json"
    )

    assert response.status_code == 400
    assert "internal" in response.json()["kind"][0]
    assert not Job.objects.exists()


def test_kinds_lists_only_the_public_kinds_the_role_may_enqueue(tenant, viewer, agent):
    offered = api_as(agent, tenant).get("/api/v1/kinds/").json()
    for_viewer = api_as(viewer, tenant).get("/api/v1/kinds/").json()

    names = {kind["name"] for kind in offered}
    assert names == {kind.name for kind in public_kinds(Role.AGENT)}
    assert not names & set(INTERNAL)
    assert for_viewer == []  # every public kind needs the agent role at least


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", "jobs.clean_up_jobs"), ("kind", "communications.finish_campaign")],
)
def test_a_schedule_of_an_internal_kind_is_refused_by_the_api(tenant, tenant_admin, field, value):
    body = {"name": "sneaky", "kind": "jobs.noop", "interval_seconds": 1, field: value}

    response = api_as(tenant_admin, tenant).post("/api/v1/schedules/", body, format="json")

    assert response.status_code == 400
    assert "internal" in response.json()["kind"][0]
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"priority": "critical"}, "priority"), ({"queue": "maintenance"}, "queue")],
)
def test_a_schedule_cannot_take_the_operators_priority_or_queue(
    tenant, tenant_admin, changes, field
):
    client = api_as(tenant_admin, tenant)
    body = {"name": "nightly", "kind": "jobs.noop", "cron": "@daily"}
    created = client.post("/api/v1/schedules/", {**body, **changes}, format="json")
    plain = client.post("/api/v1/schedules/", body, format="json")
    changed = client.patch(f"/api/v1/schedules/{plain.json()['id']}/", changes, format="json")

    assert created.status_code == changed.status_code == 400
    assert field in created.json()
    assert field in changed.json()
    assert (Schedule.objects.get().priority, Schedule.objects.get().queue) == ("", "")


def admin_form(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    data = {
        "tenant": tenant.pk,
        "name": "sneaky",
        "kind": "jobs.noop",
        "payload": "{}",
        "enabled": "on",
        "cron": "",
        "time_zone": "UTC",
        "interval_seconds": "1",
        "queue": "",
        "priority": "",
        "overlap_policy": Schedule.OverlapPolicy.SKIP,
        "missed_run_policy": Schedule.MissedRunPolicy.RUN_ONCE,
    }
    for name in ("run_at", "starts_at", "ends_at"):
        data[f"{name}_0"] = data[f"{name}_1"] = ""
    return {**data, **fields}


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "jobs.clean_up_jobs"},
        {"kind": "communications.finish_campaign"},
        {"priority": "critical"},
        {"queue": "maintenance"},
    ],
)
def test_the_admin_refuses_what_the_api_refuses(tenant, tenant_admin, fields):
    client = Client()
    client.force_login(tenant_admin)

    form = client.get(reverse("admin:jobs_schedule_add")).content.decode()
    response = client.post(reverse("admin:jobs_schedule_add"), admin_form(tenant, **fields))

    assert 'value="jobs.clean_up_jobs"' not in form
    assert 'value="communications.finish_campaign"' not in form
    assert response.status_code == 200  # the form again, with its errors
    assert not Schedule.objects.exists()


def test_a_stored_schedule_of_an_internal_kind_never_runs(tenant):
    now = timezone.now()
    sneaky = Schedule.objects.create(
        tenant=tenant,
        name="written before the fence",
        kind="jobs.clean_up_jobs",
        interval_seconds=1,
        next_run_at=now - timedelta(seconds=1),
    )

    run_due_schedules(now=now)

    assert not Job.objects.exists()
    with pytest.raises(Exception, match="internal"):
        run_schedule_now(sneaky)
    assert not Job.objects.exists()
