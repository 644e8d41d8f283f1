"""The schedules API: CRUD, run now, filters and pages, validation, roles and other tenants."""

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job, Schedule
from jobs.services.schedules import create_schedule, ensure_system_schedules
from tenants.models import Role, Tenant
from tests.factories import make_member

LIST = "/api/v1/schedules/"
NIGHTLY = {
    "name": "nightly",
    "kind": "jobs.noop",
    "cron": "30 2 * * *",
    "time_zone": "Europe/London",
}


def detail(schedule: Schedule) -> str:
    return f"{LIST}{schedule.pk}/"


def make_schedule(tenant: Tenant, **fields: Any) -> Schedule:
    return create_schedule(tenant=tenant, **{**NIGHTLY, **fields})


def client_as(user: Any, tenant: Tenant | None = None) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    if tenant is not None:
        client.credentials(HTTP_X_TENANT=tenant.slug)
    return client


@pytest.fixture
def admin_api(tenant: Tenant, tenant_admin: Any) -> APIClient:
    return client_as(tenant_admin, tenant)


def test_an_admin_creates_a_schedule_and_gets_its_next_runs(admin_api):
    response = admin_api.post(LIST, {**NIGHTLY, "payload": {"token": "abc", "n": 1}}, format="json")

    body = response.json()
    schedule = Schedule.objects.get()
    assert response.status_code == 201
    assert body["id"] == str(schedule.pk)
    assert body["trigger"] == "cron 30 2 * * * (Europe/London)"
    assert body["payload"] == {"token": "••••••", "n": 1}
    assert schedule.payload == {"token": "abc", "n": 1}
    assert body["next_run_at"] is not None
    assert len(body["next_runs"]) == 5
    assert (body["enabled"], body["overlap_policy"], body["missed_run_policy"]) == (
        True,
        "skip",
        "run_once",
    )


def test_a_schedule_is_read_changed_in_part_replaced_and_deleted(tenant, admin_api):
    schedule = make_schedule(tenant)

    read = admin_api.get(detail(schedule))
    patched = admin_api.patch(detail(schedule), {"cron": "*/5 * * * *"}, format="json")
    replaced = admin_api.put(
        detail(schedule), {"name": "hourly", "kind": "jobs.noop", "interval_seconds": 3600}, "json"
    )
    deleted = admin_api.delete(detail(schedule))

    assert read.status_code == patched.status_code == replaced.status_code == 200
    assert read.json()["name"] == "nightly"
    assert patched.json()["cron"] == "*/5 * * * *"
    assert patched.json()["time_zone"] == "Europe/London"  # a partial update keeps the rest
    assert (replaced.json()["cron"], replaced.json()["interval_seconds"]) == ("", 3600)
    assert replaced.json()["time_zone"] == "UTC"  # a full update resets what it leaves out
    assert deleted.status_code == 204
    assert not Schedule.objects.exists()


def test_an_edit_moves_the_next_run_at_once(tenant, admin_api):
    schedule = make_schedule(tenant, cron="0 3 1 1 *")

    response = admin_api.patch(detail(schedule), {"cron": "* * * * *"}, format="json")

    moved = datetime.fromisoformat(response.json()["next_run_at"])
    assert moved < schedule.next_run_at  # type: ignore[operator]
    assert moved - timezone.now() <= timedelta(minutes=1)
    assert Schedule.objects.get().next_run_at == moved


def test_run_now_enqueues_a_job_of_the_schedule(tenant, tenant_admin, admin_api):
    schedule = make_schedule(tenant)

    response = admin_api.post(f"{detail(schedule)}run/")

    job = Job.objects.get()
    assert response.status_code == 202
    assert response.json()["job"]["id"] == str(job.pk)
    assert (job.schedule, job.created_by) == (schedule, tenant_admin)
    assert admin_api.get(detail(schedule)).json()["last_job"]["id"] == str(job.pk)


def test_the_list_is_paginated_and_filtered_by_enabled_and_kind(tenant, admin_api):
    make_schedule(tenant, name="a")
    make_schedule(tenant, name="b", enabled=False)
    make_schedule(tenant, name="c", kind="jobs.sleep", payload={"seconds": 1})

    everything = admin_api.get(LIST).json()
    disabled = admin_api.get(LIST, {"enabled": "false"}).json()
    sleepers = admin_api.get(LIST, {"kind": "jobs.sleep"}).json()

    assert everything["count"] == 3
    assert [s["name"] for s in everything["results"]] == ["a", "b", "c"]
    assert [s["name"] for s in disabled["results"]] == ["b"]
    assert [s["name"] for s in sleepers["results"]] == ["c"]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({**NIGHTLY, "cron": "61 * * * *"}, {"cron"}),
        ({**NIGHTLY, "time_zone": "Europe/Londn"}, {"time_zone"}),
        ({**NIGHTLY, "interval_seconds": 60}, {"interval_seconds"}),
        ({**NIGHTLY, "cron": ""}, {"cron"}),
        ({**NIGHTLY, "kind": "jobs.sleep", "payload": {}}, {"payload"}),
        ({**NIGHTLY, "kind": "nope.nothing"}, {"kind"}),
        ({**NIGHTLY, "payload": [1, 2]}, {"payload"}),
        ({**NIGHTLY, "interval_seconds": 0, "cron": ""}, {"interval_seconds"}),
    ],
)
def test_invalid_input_answers_400_with_messages_per_field(admin_api, body, errors):
    response = admin_api.post(LIST, body, format="json")

    assert response.status_code == 400
    assert set(response.json()) == errors
    assert not Schedule.objects.exists()


def test_field_messages_say_what_is_wrong(admin_api):
    cron = admin_api.post(LIST, {**NIGHTLY, "cron": "* * *"}, format="json").json()
    zone = admin_api.post(LIST, {**NIGHTLY, "time_zone": "europe/london"}, format="json").json()
    payload = admin_api.post(
        LIST, {**NIGHTLY, "kind": "jobs.sleep", "payload": {"seconds": -1}}, format="json"
    ).json()

    assert cron == {
        "cron": [
            "'* * *' has 3 field(s); a cron expression has five: "
            "minute hour day-of-month month day-of-week."
        ]
    }
    assert "Did you mean Europe/London?" in zone["time_zone"][0]
    assert list(payload["payload"]) == ["seconds"]


def test_a_built_in_schedule_cannot_be_deleted_409(admin_user):
    built_in = ensure_system_schedules()[0]
    client = client_as(admin_user, built_in.tenant)

    response = client.delete(detail(built_in))

    assert response.status_code == 409
    assert "is built in: disable it instead" in response.json()["detail"]
    assert Schedule.objects.filter(pk=built_in.pk).exists()


def test_run_now_of_a_kind_that_is_not_registered_answers_409(tenant, admin_api):
    orphan = Schedule.objects.create(
        tenant=tenant, name="orphan", kind="tests.not_registered", cron="* * * * *"
    )

    response = admin_api.post(f"{detail(orphan)}run/")

    assert response.status_code == 409
    assert "No job kind is registered" in response.json()["detail"]


# --- Roles and tenants ----------------------------------------------------------------------------

READS = [("get", LIST), ("get", "{detail}")]
WRITES = [
    ("post", LIST),
    ("patch", "{detail}"),
    ("put", "{detail}"),
    ("post", "{detail}run/"),
    ("delete", "{detail}"),
]


def call(client: APIClient, method: str, path: str, schedule: Schedule) -> Any:
    body = {**NIGHTLY, "name": "another"} if method in ("post", "put") else {"enabled": False}
    return getattr(client, method)(path.format(detail=detail(schedule)), body, format="json")


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AGENT, Role.ADMIN, Role.OWNER])
@pytest.mark.parametrize(("method", "path"), READS + WRITES)
def test_members_read_and_only_admins_and_owners_write(tenant, role, method, path):
    schedule = make_schedule(tenant)
    client = client_as(make_member(tenant, role), tenant)

    response = call(client, method, path, schedule)

    may_write = role in (Role.ADMIN, Role.OWNER)
    if (method, path) in READS or may_write:
        assert response.status_code in (200, 201, 202, 204)
    else:
        assert response.status_code == 403
        assert (
            f"needs the admin role or higher in acme; yours is {role}" in response.json()["detail"]
        )


@pytest.mark.parametrize(("method", "path"), [("get", "{detail}"), *WRITES[1:]])
def test_another_tenants_schedule_answers_404_like_a_missing_one(
    tenant, other_tenant, admin_api, method, path
):
    theirs = make_schedule(other_tenant)

    response = call(admin_api, method, path, theirs)

    assert response.status_code == 404
    assert Schedule.objects.get(pk=theirs.pk).enabled
    assert not Job.objects.exists()


def test_the_list_shows_only_the_requests_tenant(tenant, other_tenant, admin_api):
    make_schedule(tenant, name="ours")
    make_schedule(other_tenant, name="theirs")

    response = admin_api.get(LIST)

    assert [s["name"] for s in response.json()["results"]] == ["ours"]


def test_the_list_costs_the_same_queries_for_more_schedules(tenant, admin_api):
    make_schedule(tenant, name="first")
    admin_api.get(LIST)
    with CaptureQueriesContext(connection) as few:
        admin_api.get(LIST)
    for number in range(6):
        admin_api.post(f"{detail(make_schedule(tenant, name=f's{number}'))}run/")

    with CaptureQueriesContext(connection) as many:
        response = admin_api.get(LIST)

    assert response.json()["count"] == 7
    assert len(many) == len(few)


def test_the_schema_documents_every_schedule_operation(admin_client):
    schema = admin_client.get("/api/schema/", {"format": "json"}).json()

    operations = {
        operation["operationId"]
        for path, methods in schema["paths"].items()
        if path.startswith("/api/v1/schedules/")
        for operation in methods.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    assert operations == {
        "schedules_list",
        "schedules_create",
        "schedules_retrieve",
        "schedules_update",
        "schedules_partial_update",
        "schedules_destroy",
        "schedules_run",
    }
