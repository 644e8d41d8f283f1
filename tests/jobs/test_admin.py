"""The operator console: job pages, actions, tenant scope, the queues dashboard."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.urls import reverse

from jobs.admin.listing import EstimatedCountPaginator
from jobs.models import Job, JobLog
from jobs.services.jobs import enqueue_job, enqueue_jobs
from jobs.transport import queueing
from tenants.models import Role, Tenant
from tests.factories import make_member
from tests.jobs.conftest import status_of


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:jobs_{name}", args=args)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def enqueue(
    tenant: Tenant, kind: str = "jobs.noop", *, delay: float | None = None, **payload: Any
) -> Job:
    return enqueue_job(tenant=tenant, kind=kind, payload=payload, delay=delay)


def failed_job(tenant: Tenant, run_worker: Callable[..., bool]) -> Job:
    job = enqueue(tenant, "jobs.fail", permanent=True, message="boom")
    run_worker(["default"])
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    return job


def act(client: Client, action: str, jobs: list[Job], *, confirm: bool = True, **extra: Any) -> Any:
    data = {"action": action, "index": 0, "_selected_action": [str(job.pk) for job in jobs]}
    if confirm:
        data["confirm"] = "yes"
    return client.post(url("job_changelist") + extra.pop("query", ""), {**data, **extra})


@pytest.fixture
def staff_agent(tenant: Tenant) -> User:
    return make_member(tenant, Role.AGENT, username="sam-agent", is_staff=True)


@pytest.fixture
def staff_viewer(tenant: Tenant) -> User:
    return make_member(tenant, Role.VIEWER, username="vera-viewer", is_staff=True)


@pytest.fixture
def user_of(
    admin_user: User, tenant_admin: User, staff_agent: User, staff_viewer: User
) -> Callable[[str], User]:
    people = {
        "superuser": admin_user,
        "tenant admin": tenant_admin,
        "agent": staff_agent,
        "viewer": staff_viewer,
    }
    return people.__getitem__


ROLES = ["superuser", "tenant admin", "agent", "viewer"]


# --- Pages open, for every role --------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_job_page_opens_for_every_role(tenant, user_of, role, run_worker):
    job = failed_job(tenant, run_worker)
    client = client_for(user_of(role))
    log = JobLog.objects.filter(job=job).first()
    assert log is not None

    pages = [
        url("job_changelist"),
        url("job_change", job.pk),
        url("joblog_changelist"),
        url("joblog_change", log.pk),
        url("job_changelist") + "?status__exact=failed&queue=default&kind=jobs.fail",
        url("job_changelist") + f"?q={job.pk}",
        url("job_changelist") + "?created_at__year=2020",
    ]

    for page in pages:
        assert client.get(page).status_code == 200, page


@pytest.mark.parametrize(
    ("role", "expected"),
    [("superuser", 200), ("tenant admin", 200), ("agent", 403), ("viewer", 403)],
)
def test_the_dashboard_opens_for_operators_and_tenant_admins_only(tenant, user_of, role, expected):
    client = client_for(user_of(role))

    page = client.get(reverse("queues-dashboard"))
    fragment = client.get(reverse("queues-dashboard-fragment"))

    assert (page.status_code, fragment.status_code) == (expected, expected)


@pytest.mark.parametrize(
    ("role", "expected"),
    [("superuser", 200), ("tenant admin", 403), ("agent", 403), ("viewer", 403)],
)
def test_queue_controls_and_django_rq_are_for_superusers_only(tenant, user_of, role, expected):
    client = client_for(user_of(role))

    pages = [
        reverse("queues-operate", args=["email", operation])
        for operation in ("pause", "resume", "empty", "clean")
    ] + [reverse("django_rq:home")]

    assert {client.get(page).status_code for page in pages} == {expected}


@pytest.mark.parametrize(
    ("role", "expected"), [("superuser", 200), ("tenant admin", 200), ("agent", 200), ("viewer", 0)]
)
def test_the_cancel_confirmation_page_opens_for_roles_that_may_cancel(
    tenant, user_of, role, expected
):
    job = enqueue(tenant, delay=3600)

    response = act(client_for(user_of(role)), "cancel", [job], confirm=False)

    asked = "Yes, cancel 1 job" in response.content.decode()
    assert asked == (expected == 200)
    assert status_of(job) == Job.Status.SCHEDULED


def test_the_index_links_the_dashboard_for_tenant_admins_but_not_for_agents(
    tenant_admin, staff_agent
):
    admin_index = client_for(tenant_admin).get(reverse("admin:index")).content.decode()
    agent_index = client_for(staff_agent).get(reverse("admin:index")).content.decode()

    assert reverse("queues-dashboard") in admin_index
    assert reverse("queues-dashboard") not in agent_index


# --- Queries -------------------------------------------------------------------------------


def test_the_changelist_costs_a_fixed_number_of_queries_however_many_jobs(
    admin_client, tenant, other_tenant, django_assert_num_queries
):
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 3)
    with django_assert_num_queries(8):
        admin_client.get(url("job_changelist"))
    enqueue_jobs(tenant=other_tenant, kind="jobs.noop", payloads=[{}] * 40)

    # session, user, tenant and schedule choices, estimate, capped count, the page, date bounds
    with django_assert_num_queries(8):
        response = admin_client.get(url("job_changelist"))

    assert len(response.context["cl"].result_list) == 43


def test_a_tenant_admins_changelist_costs_a_fixed_number_of_queries_too(
    tenant_admin, tenant, django_assert_num_queries
):
    enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 30)
    client = client_for(tenant_admin)

    # as above, plus the roles, and the sidebar's check of Django permissions (2), less the
    # estimate (a tenant's list is always filtered)
    with django_assert_num_queries(10):
        response = client.get(url("job_changelist") + "?status__exact=queued")

    assert len(response.context["cl"].result_list) == 30


def test_the_detail_page_costs_a_fixed_number_of_queries(
    admin_client, tenant, run_worker, django_assert_num_queries
):
    parent = enqueue(tenant)
    job = enqueue_job(
        tenant=tenant, kind="jobs.fail", payload={"times": 2}, max_attempts=3, parent=parent
    )
    for _ in range(3):
        enqueue_job(tenant=tenant, kind="jobs.noop", payload={}, depends_on=[job])
    run_worker(["default"])

    # session, user, job, the error logs, children, depends on, dependents, the timeline, ...
    with django_assert_num_queries(9):
        response = admin_client.get(url("job_change", job.pk))

    assert response.status_code == 200


# --- What the pages show -------------------------------------------------------------------


def test_the_detail_shows_redacted_payload_errors_per_attempt_and_live_rq_state(
    admin_client, tenant, run_worker
):
    job = enqueue(tenant, "jobs.fail", permanent=True, message="card declined")
    run_worker(["default"])
    Job.objects.filter(pk=job.pk).update(payload={"api_key": "sk-live-123", "to": "a@b.c"})

    page = admin_client.get(url("job_change", job.pk)).content.decode()

    assert "sk-live-123" not in page
    assert "a@b.c" in page
    assert "PermanentError" in page
    assert "Traceback (most recent call last)" in page
    assert "RQ (live)" in page
    assert "Dead-lettered after a permanent error." in page  # the timeline


def test_the_changelist_shows_status_progress_attempts_and_times(admin_client, tenant, run_worker):
    enqueue(tenant, "jobs.sleep", seconds=0, steps=2)
    run_worker(["default"])

    page = admin_client.get(url("job_changelist")).content.decode()

    assert 'class="cv-badge cv-succeeded"' in page
    assert '<progress max="100" value="100">' in page
    assert "2 of 2 steps" in page
    assert "1/3" in page
    assert "1 job" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=failed", {"fail"}),
        ("queue=email", {"email"}),
        ("kind=jobs.sleep", {"sleep"}),
        ("priority__exact=high", {"high"}),
        ("tenant={other}", {"other"}),
        (
            "created_at__gte=2000-01-01T00:00:00%2B00:00",
            {"fail", "email", "sleep", "high", "other"},
        ),
        ("q=jobs.sl", {"sleep"}),
        ("q=seconds=0", {"sleep"}),
        ("q=key-42", {"high"}),
    ],
)
def test_each_filter_and_search_narrows_the_list(
    admin_client, tenant, other_tenant, run_worker, query, expected
):
    jobs = {
        "fail": failed_job(tenant, run_worker),
        "email": enqueue(tenant, "tests.email_noop"),
        "sleep": enqueue(tenant, "jobs.sleep", seconds=0),
        "high": enqueue_job(
            tenant=tenant, kind="jobs.noop", payload={}, priority="high", idempotency_key="key-42"
        ),
        "other": enqueue(other_tenant),
    }

    response = admin_client.get(url("job_changelist") + "?" + query.format(other=other_tenant.pk))

    shown = {job.pk for job in response.context["cl"].result_list}
    assert shown == {jobs[name].pk for name in expected}


def test_searching_a_job_id_finds_that_job_and_its_logs(admin_client, tenant):
    job, other = enqueue(tenant), enqueue(tenant)

    jobs = admin_client.get(url("job_changelist") + f"?q={job.pk}")
    logs = admin_client.get(url("joblog_changelist") + f"?q={job.pk}")

    assert [found.pk for found in jobs.context["cl"].result_list] == [job.pk]
    assert {log.job_id for log in logs.context["cl"].result_list} == {job.pk}
    assert other.pk not in {log.job_id for log in logs.context["cl"].result_list}


def test_a_large_unfiltered_list_shows_an_estimate_and_a_filtered_one_a_capped_count(
    admin_client, tenant
):
    rows = [Job(tenant=tenant, kind="jobs.noop", queue="default", timeout=1) for _ in range(10_050)]
    Job.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")

    unfiltered = admin_client.get(url("job_changelist")).context["cl"].paginator
    filtered = admin_client.get(url("job_changelist") + "?queue=default").context["cl"].paginator
    few = admin_client.get(url("job_changelist") + "?queue=email").context["cl"].paginator

    assert unfiltered.summary.startswith("about 10,")
    assert filtered.summary == f"over {EstimatedCountPaginator.CAP:,} jobs"
    assert few.summary == "0 jobs"


# --- Tenant scope --------------------------------------------------------------------------


def test_a_tenant_admin_sees_only_their_tenants_jobs_logs_and_tenant_choices(
    tenant, other_tenant, tenant_admin
):
    mine, theirs = enqueue(tenant), enqueue(other_tenant)
    client = client_for(tenant_admin)

    jobs = client.get(url("job_changelist"))
    logs = client.get(url("joblog_changelist"))
    other_page = client.get(url("job_change", theirs.pk))

    assert [job.pk for job in jobs.context["cl"].result_list] == [mine.pk]
    assert {log.job_id for log in logs.context["cl"].result_list} == {mine.pk}
    assert "Globex" not in jobs.content.decode()
    assert other_page.status_code == 302  # the admin's "does not exist" redirect


def test_a_viewer_sees_jobs_but_no_actions(tenant, staff_viewer):
    enqueue(tenant)

    response = client_for(staff_viewer).get(url("job_changelist"))

    assert response.status_code == 200
    assert response.context["action_form"] is None or not response.context["cl"].actions


def test_an_agent_acts_only_in_tenants_where_the_role_allows_it(tenant, other_tenant, staff_agent):
    other_tenant.memberships.create(user=staff_agent, role=Role.VIEWER)
    mine, theirs = enqueue(tenant, delay=3600), enqueue(other_tenant, delay=3600)

    response = act(client_for(staff_agent), "cancel", [mine, theirs])

    assert status_of(mine) == Job.Status.CANCELED
    assert status_of(theirs) == Job.Status.SCHEDULED
    assert messages_of(response) == ["1 canceled, 1 outside the tenants where your role allows it."]


def test_an_agent_may_not_discard_dead_letters(tenant, staff_agent, run_worker):
    job = failed_job(tenant, run_worker)

    response = act(client_for(staff_agent), "discard", [job])

    assert response.status_code == 302
    assert Job.objects.filter(pk=job.pk).exists()


# --- Actions -------------------------------------------------------------------------------


def test_cancel_asks_first_with_counts_then_reports_what_happened(
    admin_client, admin_user, tenant, run_worker
):
    waiting = [enqueue(tenant, delay=3600), enqueue(tenant, delay=3600)]
    done = enqueue(tenant)
    run_worker(["default"])
    chosen = [*waiting, done]

    asked = act(admin_client, "cancel", chosen, confirm=False)
    response = act(admin_client, "cancel", chosen)

    page = asked.content.decode()
    assert "You chose <strong>3</strong> jobs" in page
    assert '<strong id="cv-eligible">2</strong> will be canceled' in page
    assert [status_of(job) for job in waiting] == [Job.Status.CANCELED] * 2
    assert messages_of(response) == ["2 canceled, 1 already finished."]
    entries = LogEntry.objects.filter(user=admin_user, action_flag=CHANGE)
    assert sorted(str(entry.object_id) for entry in entries) == sorted(str(j.pk) for j in waiting)
    assert {entry.change_message for entry in entries} == {"Canceled from the admin."}


def test_retry_gives_failed_jobs_fresh_attempts_and_they_run(
    admin_client, admin_user, tenant, run_worker
):
    job = failed_job(tenant, run_worker)
    Job.objects.filter(pk=job.pk).update(payload={"times": 0})  # the cause is fixed
    fine = enqueue(tenant)

    response = act(admin_client, "retry", [job, fine])
    run_worker(["default"])

    assert messages_of(response) == ["1 retried, 1 not failed or canceled."]
    assert status_of(job) == Job.Status.SUCCEEDED
    assert LogEntry.objects.get(user=admin_user).object_id == str(job.pk)


def test_retry_now_runs_a_scheduled_job_without_waiting(admin_client, tenant, run_worker):
    job = enqueue(tenant, delay=3600)

    response = act(admin_client, "retry_now", [job])
    run_worker(["default"])

    assert messages_of(response) == ["1 moved to now."]
    assert status_of(job) == Job.Status.SUCCEEDED
    assert JobLog.objects.filter(job=job, event=JobLog.Event.STARTED).count() == 1


def test_retry_now_is_refused_for_jobs_that_do_not_wait_for_a_due_time(admin_client, tenant):
    job = enqueue(tenant)

    response = act(admin_client, "retry_now", [job])

    assert messages_of(response) == ["1 not waiting for a due time."]
    assert status_of(job) == Job.Status.QUEUED


def test_discard_deletes_dead_letters_with_their_logs_and_keeps_the_rest(
    admin_client, admin_user, tenant, run_worker
):
    dead = failed_job(tenant, run_worker)
    alive = enqueue(tenant, delay=3600)

    response = act(admin_client, "discard", [dead, alive])

    assert messages_of(response) == ["1 discarded, 1 not failed."]
    assert not Job.objects.filter(pk=dead.pk).exists()
    assert not JobLog.objects.filter(job_id=dead.pk).exists()
    assert Job.objects.filter(pk=alive.pk).exists()
    entry = LogEntry.objects.get(user=admin_user)
    assert (entry.action_flag, entry.object_id) == (DELETION, str(dead.pk))


def test_an_action_on_all_jobs_matching_the_filter_reaches_jobs_beyond_the_page(
    admin_client, tenant, run_worker
):
    scheduled = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 60, delay=3600)
    kept = failed_job(tenant, run_worker)
    query = "?status__exact=scheduled"
    on_page = scheduled[:1]

    asked = act(admin_client, "cancel", on_page, confirm=False, select_across=1, query=query)
    response = act(admin_client, "cancel", on_page, select_across=1, query=query)

    assert "every job matching the current filter" in asked.content.decode()
    assert "You chose <strong>60</strong> jobs" in asked.content.decode()
    assert messages_of(response) == ["60 canceled."]
    assert Job.objects.filter(status=Job.Status.CANCELED).count() == 60
    assert status_of(kept) == Job.Status.FAILED


def test_the_detail_page_offers_the_actions_for_its_job(admin_client, tenant):
    job = enqueue(tenant, delay=3600)
    detail = url("job_change", job.pk)

    page = admin_client.get(detail).content.decode()
    response = admin_client.post(
        detail,
        {"CHANGE_FORM-action": "cancel", "_selected_action": str(job.pk), "confirm": "yes"},
    )

    assert 'name="CHANGE_FORM-action"' in page
    assert response.status_code == 302
    assert status_of(job) == Job.Status.CANCELED


# --- Dashboard -----------------------------------------------------------------------------


def test_the_dashboard_shows_queues_health_workers_and_svg_charts(admin_client, tenant, run_worker):
    failed_job(tenant, run_worker)
    enqueue(tenant)
    enqueue(tenant, "tests.email_noop")

    page = admin_client.get(reverse("queues-dashboard")).content.decode()
    fragment = admin_client.get(reverse("queues-dashboard-fragment")).content.decode()

    assert 'id="cv-health"' in page
    assert 'id="cv-queue-email"' in page
    assert 'id="cv-workers"' in page
    assert page.count('<figure class="cv-chart">') == 2
    assert "<polyline" in page  # the failure above is on the failures chart
    assert "jobs/dashboard.js" in page
    assert 'src="http' not in page  # nothing from the internet
    assert 'href="http' not in page
    assert fragment.lstrip().startswith('<div class="cv-banner')
    assert "<html" not in fragment


def test_a_tenant_admin_sees_their_own_counts_and_no_controls_or_workers(
    tenant, other_tenant, tenant_admin
):
    enqueue(tenant, "tests.email_noop")
    for _ in range(3):
        enqueue(other_tenant, "tests.email_noop")

    page = client_for(tenant_admin).get(reverse("queues-dashboard"))

    email = next(row for row in page.context["queues"] if row["name"] == "email")
    assert email["tenant_counts"][Job.Status.QUEUED] == 1
    assert 'id="cv-workers"' not in page.content.decode()
    assert "Pause" not in page.content.decode()


def test_pausing_and_resuming_a_queue_asks_first_and_is_logged(admin_client, admin_user):
    pause = reverse("queues-operate", args=["email", "pause"])
    resume = reverse("queues-operate", args=["email", "resume"])

    asked = admin_client.get(pause)
    admin_client.post(pause)
    paused = queueing.paused_queues()
    response = admin_client.post(resume)

    assert "Yes, pause email" in asked.content.decode()
    assert paused == {"email"}
    assert queueing.paused_queues() == set()
    assert messages_of(response)[-1] == "Resumed queue email."
    assert [entry.change_message for entry in LogEntry.objects.filter(user=admin_user)] == [
        "Resumed queue email.",
        "Paused queue email.",
    ]


def test_emptying_a_queue_cancels_its_waiting_jobs(admin_client, tenant):
    jobs = [enqueue(tenant) for _ in range(3)]

    asked = admin_client.get(reverse("queues-operate", args=["default", "empty"]))
    response = admin_client.post(reverse("queues-operate", args=["default", "empty"]))

    assert "<strong>3</strong> jobs wait" in asked.content.decode()
    assert {status_of(job) for job in jobs} == {Job.Status.CANCELED}
    assert "3 waiting job(s) canceled" in messages_of(response)[-1]


def test_a_tenant_admin_cannot_pause_a_queue(tenant_admin):
    response = client_for(tenant_admin).post(reverse("queues-operate", args=["email", "pause"]))

    assert response.status_code == 403
    assert queueing.paused_queues() == set()


def test_an_unknown_queue_or_operation_is_not_found(admin_client):
    assert admin_client.get(reverse("queues-operate", args=["nope", "pause"])).status_code == 404
    assert admin_client.get(reverse("queues-operate", args=["email", "melt"])).status_code == 404


def test_the_date_hierarchy_offers_the_periods_between_the_first_and_the_last_job(
    admin_client, tenant
):
    first, last = enqueue(tenant), enqueue(tenant)
    Job.objects.filter(pk=first.pk).update(created_at="2025-12-30T12:00:00+00:00")
    Job.objects.filter(pk=last.pk).update(created_at="2026-02-02T12:00:00+00:00")

    def titles(query: str) -> list[str]:
        response = admin_client.get(url("job_changelist") + query)
        return [choice["title"] for choice in response.context["cl"].date_nav["choices"]]

    assert titles("") == ["2025", "2026"]
    assert titles("?created_at__year=2026") == ["Jan 2026", "Feb 2026"]
    assert titles("?created_at__year=2025&created_at__month=12") == ["12-30", "12-31"]
    assert titles("?created_at__year=2026&created_at__month=2") == ["02-01", "02-02"]


def test_the_detail_says_so_when_redis_holds_no_record_of_the_job(admin_client, tenant):
    job = enqueue(tenant)
    queueing.connection().flushdb()  # as after a Redis restart without persistence

    page = admin_client.get(url("job_change", job.pk)).content.decode()

    assert "Redis holds no record of it" in page
