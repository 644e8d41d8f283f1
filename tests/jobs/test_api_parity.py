"""What the admin could do and the API could not: bulk enqueue, bulk discard of dead letters,
"retry now", and the tenant-wide log."""

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job, JobLog
from jobs.services.jobs import add_log
from tests.jobs.test_api_jobs import JOBS, make_job


@pytest.fixture
def as_agent(api_client: APIClient, agent: User) -> APIClient:
    api_client.force_authenticate(agent)
    return api_client


@pytest.fixture
def as_admin(api_client: APIClient, tenant_admin: User) -> APIClient:
    api_client.force_authenticate(tenant_admin)
    return api_client


# --- Bulk enqueue ------------------------------------------------------------------------------


def test_bulk_enqueue_records_one_job_per_payload_in_order(as_agent, tenant, agent):
    payloads = [{"note": str(n)} for n in range(5)]

    response = as_agent.post(
        f"{JOBS}bulk/", {"kind": "jobs.noop", "payloads": payloads, "priority": "low"}, "json"
    )

    assert response.status_code == 202
    body = response.json()
    assert body["count"] == 5
    assert [row["payload"] for row in body["jobs"]] == payloads
    jobs = Job.objects.filter(tenant=tenant)
    assert jobs.count() == 5
    assert set(jobs.values_list("status", "priority", "created_by")) == {
        (Job.Status.QUEUED, "low", agent.pk)
    }


def test_bulk_enqueue_is_all_or_nothing_and_names_each_bad_payload(as_agent, tenant):
    payloads = [{"seconds": 1}, {"seconds": "soon"}, {"seconds": 2}, {"seconds": -1}]

    response = as_agent.post(f"{JOBS}bulk/", {"kind": "jobs.sleep", "payloads": payloads}, "json")

    assert response.status_code == 400
    assert sorted(response.json()["payloads"]) == ["1", "3"]
    assert not Job.objects.filter(tenant=tenant).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "jobs.noop", "payloads": []}, "payloads"),
        ({"kind": "jobs.noop", "payloads": [{}] * 1001}, "payloads"),
        ({"kind": "jobs.nothing", "payloads": [{}]}, "kind"),
        ({"kind": "jobs.clean_up_jobs", "payloads": [{}]}, "kind"),
        ({"kind": "jobs.noop", "payloads": [{}], "delay": -1}, "delay"),
        ({"kind": "jobs.noop", "payloads": [{"note": "a\x00b"}]}, "payloads"),
    ],
)
def test_bulk_enqueue_refuses_bad_input_with_400(as_agent, tenant, body, field):
    response = as_agent.post(f"{JOBS}bulk/", body, "json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Job.objects.filter(tenant=tenant).exists()


# --- Bulk discard ------------------------------------------------------------------------------


def test_an_admin_discards_the_chosen_dead_letters_and_nothing_else(as_admin, tenant, other_tenant):
    dead = [make_job(tenant, status=Job.Status.FAILED) for _ in range(3)]
    alive = make_job(tenant, status=Job.Status.QUEUED)
    theirs = make_job(other_tenant, status=Job.Status.FAILED)

    response = as_admin.post(
        f"{JOBS}bulk-discard/",
        {"ids": [str(job.pk) for job in [*dead[:2], alive, theirs]]},
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {"discarded": 2, "skipped": 1}
    remaining = set(Job.objects.values_list("pk", flat=True))
    assert remaining == {dead[2].pk, alive.pk, theirs.pk}
    assert not JobLog.objects.filter(job_id__in=[dead[0].pk, dead[1].pk]).exists()


def test_bulk_discard_by_filter_takes_every_dead_letter_of_the_tenant(as_admin, tenant):
    for _ in range(2):
        make_job(tenant, status=Job.Status.FAILED)
    make_job(tenant, status=Job.Status.SUCCEEDED)

    response = as_admin.post(f"{JOBS}bulk-discard/?status=failed", {}, format="json")

    assert response.json() == {"discarded": 2, "skipped": 0}
    assert list(Job.objects.values_list("status", flat=True)) == [Job.Status.SUCCEEDED]


# --- Retry now ---------------------------------------------------------------------------------


def test_retry_now_hands_a_retrying_job_over_at_once_without_a_fresh_attempt(
    as_agent, tenant, run_worker
):
    later = timezone.now() + timedelta(hours=1)
    job = make_job(
        tenant, status=Job.Status.RETRYING, attempt=1, max_attempts=3, scheduled_at=later
    )

    response = as_agent.post(f"{JOBS}{job.pk}/retry-now/")

    assert response.status_code == 202
    assert response.json()["status"] == Job.Status.QUEUED
    run_worker(["default"])
    job.refresh_from_db()
    assert (job.status, job.attempt) == (Job.Status.SUCCEEDED, 2)


def test_retry_now_of_a_job_that_is_not_waiting_for_its_time_answers_409(as_agent, tenant):
    job = make_job(tenant, status=Job.Status.SUCCEEDED)

    response = as_agent.post(f"{JOBS}{job.pk}/retry-now/")

    assert response.status_code == 409
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED


# --- The tenant's log ----------------------------------------------------------------------------


def test_the_tenant_log_lists_every_job_line_of_the_tenant_only_newest_first(
    as_agent, tenant, other_tenant
):
    first, second = make_job(tenant), make_job(tenant)
    add_log(second, JobLog.Event.NOTE, "careful", level=JobLog.Level.WARNING)
    make_job(other_tenant)

    body = as_agent.get(f"{JOBS}logs/").json()

    rows = body["results"]
    assert [(row["job"], row["event"]) for row in rows] == [
        (str(second.pk), "note"),
        (str(second.pk), "enqueued"),
        (str(first.pk), "enqueued"),
    ]


def test_the_tenant_log_filters_by_job_event_level_and_time(as_agent, tenant):
    first, second = make_job(tenant), make_job(tenant)
    add_log(second, JobLog.Event.NOTE, "careful", level=JobLog.Level.WARNING)
    now = quote(timezone.now().isoformat())

    def events(query: str) -> list[tuple[str, str]]:
        rows = as_agent.get(f"{JOBS}logs/?{query}").json()["results"]
        return [(row["job"], row["event"]) for row in rows]

    assert events(f"job={first.pk}") == [(str(first.pk), "enqueued")]
    assert events("event=note") == [(str(second.pk), "note")]
    assert events("level=warning&level=error") == [(str(second.pk), "note")]
    assert events(f"created_after={now}") == []
    assert len(events(f"created_before={now}")) == 3


@pytest.mark.parametrize("query", ["event=exploded", "level=loud", "job=12", "created_after=soon"])
def test_a_bad_tenant_log_filter_answers_400(as_agent, query):
    response = as_agent.get(f"{JOBS}logs/?{query}")

    assert response.status_code == 400
