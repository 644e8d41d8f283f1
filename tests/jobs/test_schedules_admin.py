"""The schedules admin: pages, the form's validation, actions, built-in rows, tenant scoping."""

from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobs.models import Job, Schedule
from jobs.services.schedules import create_schedule, ensure_system_schedules
from tenants.models import Role, Tenant
from tests.factories import make_member

pytestmark = pytest.mark.django_db


def url(view: str, *args: object) -> str:
    return reverse(f"admin:jobs_schedule_{view}", args=args)


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_schedule(tenant: Tenant, **fields: Any) -> Schedule:
    defaults = {"name": "nightly", "kind": "jobs.noop", "cron": "30 2 * * *"}
    return create_schedule(tenant=tenant, **{**defaults, **fields})


def form_data(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """The add form as a browser posts it: every field, blank where not given."""
    data = {
        "tenant": tenant.pk,
        "name": "nightly",
        "kind": "jobs.noop",
        "payload": "{}",
        "enabled": "on",
        "cron": "30 2 * * *",
        "time_zone": "America/New_York",
        "interval_seconds": "",
        "queue": "",
        "priority": "",
        "overlap_policy": Schedule.OverlapPolicy.SKIP,
        "missed_run_policy": Schedule.MissedRunPolicy.RUN_ONCE,
    }
    for name in ("run_at", "starts_at", "ends_at"):
        data[f"{name}_0"] = data[f"{name}_1"] = ""
    return {**data, **fields}


def messages_of(response: Any) -> list[str]:
    """The messages this response added (earlier ones wait, unread, in the same session)."""
    return [str(message) for message in get_messages(response.wsgi_request)]


def last_message(response: Any) -> str:
    return messages_of(response)[-1]


@pytest.mark.parametrize("view", ["changelist", "add"])
def test_the_schedule_list_and_add_pages_open_for_a_superuser(admin_client, tenant, view):
    make_schedule(tenant)
    ensure_system_schedules()

    response = admin_client.get(url(view))

    assert response.status_code == 200


def test_the_list_shows_next_run_last_run_and_the_last_jobs_status(admin_client, tenant):
    schedule = make_schedule(tenant, time_zone="Europe/London")
    admin_client.post(
        url("changelist"), {"action": "run_now_selected", "_selected_action": [schedule.pk]}
    )

    response = admin_client.get(url("changelist"))

    content = response.content.decode()
    assert "Europe/London" in content  # the next run on the schedule's own clock
    assert (
        f'href="{reverse("admin:jobs_job_change", args=[schedule.jobs.get().pk])}">queued'
        in content
    )


def test_the_change_page_previews_the_next_five_runs_on_the_schedules_clock(admin_client, tenant):
    schedule = make_schedule(tenant, cron="30 2 * * *", time_zone="America/New_York")

    response = admin_client.get(url("change", schedule.pk))

    content = response.content.decode()
    assert response.status_code == 200
    assert "Next 5 runs" in content
    assert content.count(" America/New_York)</li>") == 5
    assert "All jobs of this schedule" in content


def test_a_tenant_admin_creates_a_schedule_with_the_form_and_its_next_run_is_set(
    tenant, tenant_admin
):
    response = client_for(tenant_admin).post(url("add"), form_data(tenant))

    schedule = Schedule.objects.get()
    assert response.status_code == 302
    assert (schedule.tenant, schedule.cron, schedule.time_zone) == (
        tenant,
        "30 2 * * *",
        "America/New_York",
    )
    assert schedule.next_run_at is not None


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cron": "30 25 * * *"}, "cron", "is not a valid cron expression"),
        ({"time_zone": "Europe/Londn"}, "time_zone", "Unknown time zone 'Europe/Londn'"),
        ({"interval_seconds": "60"}, "interval_seconds", "Give only one trigger"),
        ({"kind": "jobs.sleep", "payload": '{"seconds": -1}'}, "payload", "seconds:"),
        ({"queue": "bogus"}, "queue", "There is no queue 'bogus'"),
    ],
)
def test_invalid_input_is_shown_at_its_field_in_the_form(
    tenant, tenant_admin, fields, field, message
):
    response = client_for(tenant_admin).post(url("add"), form_data(tenant, **fields))

    errors = response.context["adminform"].form.errors
    assert response.status_code == 200
    assert message in " ".join(errors[field])
    assert not Schedule.objects.exists()


def test_two_triggers_are_refused_at_the_second_one(tenant, tenant_admin):
    data = form_data(tenant, run_at_0="2099-01-01", run_at_1="10:00:00")

    response = client_for(tenant_admin).post(url("add"), data)

    errors = response.context["adminform"].form.errors
    assert errors["run_at"] == ["Give only one trigger: this schedule has a cron expression."]
    assert not Schedule.objects.exists()


def test_enable_disable_and_run_now_actions_use_the_services_and_are_logged(tenant, tenant_admin):
    schedule = make_schedule(tenant)
    client = client_for(tenant_admin)

    def act(action: str) -> Any:
        return client.post(url("changelist"), {"action": action, "_selected_action": [schedule.pk]})

    disabled = act("disable_selected")
    after_disable = Schedule.objects.get(pk=schedule.pk)
    enabled = act("enable_selected")
    ran = act("run_now_selected")

    schedule.refresh_from_db()
    job = Job.objects.get()
    assert last_message(disabled) == "Disabled 1 schedule(s)."
    assert (after_disable.enabled, after_disable.next_run_at) == (False, None)
    assert last_message(enabled) == "Enabled 1 schedule(s)."
    assert last_message(ran) == "Enqueued 1 job(s)."
    assert (schedule.enabled, schedule.run_count, schedule.last_job) == (True, 1, job)
    assert job.created_by == tenant_admin
    logged = LogEntry.objects.filter(object_id=str(schedule.pk), action_flag=CHANGE)
    assert sorted(entry.get_change_message() for entry in logged) == sorted(
        ["Disabled.", "Enabled.", f"Run now: enqueued job {job.pk}."]
    )


def test_run_now_of_a_schedule_that_cannot_run_says_why(admin_client, tenant):
    orphan = Schedule.objects.create(
        tenant=tenant, name="orphan", kind="tests.not_registered", cron="* * * * *"
    )

    response = admin_client.post(
        url("changelist"), {"action": "run_now_selected", "_selected_action": [orphan.pk]}
    )

    assert messages_of(response) == [
        "Enqueued 0 job(s).",
        "Not run: orphan: Schedule 'orphan' cannot run: "
        "No job kind is registered as 'tests.not_registered'.",
    ]


def test_the_enabled_toggle_in_the_list_saves_through_the_service(tenant, tenant_admin):
    schedule = make_schedule(tenant)
    formset = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(schedule.pk),
        "_save": "Save",
    }  # "form-0-enabled" left out: the box is unticked

    response = client_for(tenant_admin).post(url("changelist"), formset)

    schedule.refresh_from_db()
    assert response.status_code == 302
    assert (schedule.enabled, schedule.next_run_at) == (False, None)


def test_a_built_in_schedule_can_be_changed_but_not_deleted(admin_client):
    built_in = ensure_system_schedules()[0]

    change = admin_client.get(url("change", built_in.pk))
    delete = admin_client.post(url("delete", built_in.pk), {"post": "yes"})
    bulk = admin_client.post(
        url("changelist"),
        {"action": "delete_selected", "_selected_action": [built_in.pk], "post": "yes"},
    )

    assert change.status_code == 200
    assert url("delete", built_in.pk) not in change.content.decode()
    assert delete.status_code == 403
    assert bulk.status_code == 403
    assert Schedule.objects.filter(pk=built_in.pk).exists()


def test_a_tenant_admin_deletes_their_schedule_in_the_admin(tenant, tenant_admin):
    schedule = make_schedule(tenant)

    response = client_for(tenant_admin).post(url("delete", schedule.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Schedule.objects.exists()


def test_staff_see_only_their_tenants_schedules(tenant, other_tenant, tenant_admin):
    make_schedule(tenant, name="ours")
    theirs = make_schedule(other_tenant, name="theirs")
    client = client_for(tenant_admin)

    listed = client.get(url("changelist"))
    opened = client.get(url("change", theirs.pk))

    assert [s.name for s in listed.context["cl"].result_list] == ["ours"]
    assert opened.status_code == 302  # the admin's "does not exist" redirect


def test_a_viewer_may_look_but_not_change_and_sees_secrets_redacted(tenant):
    viewer = make_member(tenant, Role.VIEWER, is_staff=True)
    schedule = make_schedule(tenant, payload={"api_key": "s3cret", "to": "ops"})
    client = client_for(viewer)

    listed = client.get(url("changelist"))
    page = client.get(url("change", schedule.pk))
    change = client.post(url("change", schedule.pk), form_data(tenant, name="renamed"))

    assert listed.status_code == page.status_code == 200
    assert "s3cret" not in page.content.decode()
    assert "ops" in page.content.decode()
    assert change.status_code == 403
    assert Schedule.objects.get().name == "nightly"


def test_the_schedule_changelist_costs_the_same_queries_for_more_rows(tenant, tenant_admin):
    client = client_for(tenant_admin)
    make_schedule(tenant, name="first")
    client.get(url("changelist"))
    with CaptureQueriesContext(connection) as few:
        client.get(url("changelist"))
    for number in range(5):
        client.post(
            url("changelist"),
            {
                "action": "run_now_selected",
                "_selected_action": [make_schedule(tenant, name=f"s{number}").pk],
            },
        )

    with CaptureQueriesContext(connection) as many:
        response = client.get(url("changelist"))

    assert len(response.context["cl"].result_list) == 6
    assert len(many) == len(few)
